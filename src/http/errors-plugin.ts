/**
 * The first plugin of the app: request ids, body parsing and the one global error handler that turns
 * every failure into the contract's body {error, code, request_id, details?}.
 */
import { Elysia, type ValidationError } from 'elysia'
import { isDatabaseUnreachable, pgErrorCode } from '../db'
import { AppError, errorBody } from '../errors'
import type { Logger } from '../observability/logger'
import { checkDeclaredLength, createJsonBodyParser } from './body'
import { createMethodIndex } from './method-not-allowed'
import { requestIdFrom } from './request-id'

export interface RequestMeta {
  readonly id: string
  readonly startedAt: number
  /** set once the request has been counted and logged */
  recorded?: boolean
}

/** Per-request facts that hooks before and after the handler (and the error handler) need. */
export const requestMeta = new WeakMap<Request, RequestMeta>()

export function metaOf(request: Request): RequestMeta {
  let meta = requestMeta.get(request)
  if (!meta) {
    meta = { id: requestIdFrom(request.headers), startedAt: performance.now() }
    requestMeta.set(request, meta)
  }
  return meta
}

interface ErrorsPluginOptions {
  logger: Logger
  /** JSON body limit in bytes */
  bodyLimit: number
  /** the app's routes, read once on the first 404 */
  routes: () => readonly { method: string; path: string }[]
  /** called with every error response (metrics and access log) */
  onErrorResponse: (request: Request, route: string | undefined, status: number) => void
}

export function errorsPlugin({ logger, bodyLimit, routes, onErrorResponse }: ErrorsPluginOptions) {
  const allowedMethods = createMethodIndex(routes)
  const parseJsonBody = createJsonBodyParser(bodyLimit)

  return new Elysia({ name: 'voicehelper.errors' })
    .onRequest(function assignRequestId({ request, set }) {
      set.headers['x-request-id'] = metaOf(request).id
      checkDeclaredLength(request, bodyLimit)
    })
    .onParse({ as: 'global' }, parseJsonBody)
    .onError({ as: 'global' }, function renderError(ctx) {
      const { code, error, request, set, path } = ctx
      const appError = toAppError(code, error, request, path, allowedMethods)
      if (appError.status >= 500) {
        logger.error({ err: error, request_id: metaOf(request).id, method: request.method, path }, 'request failed')
      }
      if (appError.headers) Object.assign(set.headers, appError.headers)
      if (appError.status === 405) set.headers.allow = allowedMethods(path).join(', ')
      set.status = appError.status
      onErrorResponse(request, (ctx as { route?: string }).route, appError.status)
      // A Response rather than an object: on Elysia 1.4's not-found path an object body is lost when a
      // global mapResponse hook (the metrics plugin) is present.
      return Response.json(errorBody(appError, metaOf(request).id), { status: appError.status })
    })
}

function toAppError(
  code: string | number,
  error: unknown,
  request: Request,
  path: string,
  allowedMethods: (path: string) => string[],
): AppError {
  if (error instanceof AppError) return error
  const cause = (error as { cause?: unknown } | undefined)?.cause
  if (cause instanceof AppError) return cause
  switch (code) {
    case 'VALIDATION':
      return validationError(error as ValidationError, request)
    case 'PARSE':
      return new AppError(400, 'INVALID_JSON', 'Request body could not be parsed')
    case 'NOT_FOUND': {
      const allowed = allowedMethods(path)
      if (allowed.length > 0 && !allowed.includes(request.method)) {
        return new AppError(405, 'METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path}`, { allowed })
      }
      return new AppError(404, 'NOT_FOUND', `No route for ${request.method} ${path}`)
    }
    case 'INVALID_COOKIE_SIGNATURE':
      return new AppError(400, 'INVALID_COOKIE', 'Cookie signature is invalid')
    default: {
      // text Postgres cannot store (a NUL, or one escaped in JSON) reached a write: the input's fault, not ours
      const sqlState = pgErrorCode(error)
      if (sqlState === '22021' || sqlState === '22P05') {
        return new AppError(400, 'VALIDATION_FAILED', 'Text must not contain NUL characters (\\u0000)', undefined, { cause: error })
      }
      // Postgres went away (refused, reset, shutting down), or cancelled a statement past DB_STATEMENT_TIMEOUT_S
      // (a lock held elsewhere, an overloaded server): a retryable 503, not an internal error
      const timedOut = sqlState === '57014'
      if (timedOut || isDatabaseUnreachable(error)) {
        const message = timedOut ? 'The database did not answer in time; try again shortly' : 'The database cannot be reached right now; try again shortly'
        return new AppError(503, 'SERVICE_UNAVAILABLE', message, undefined, {
          cause: error,
          headers: { 'retry-after': '1' },
        })
      }
      const status = typeof code === 'number' ? code : 500
      if (status >= 400 && status < 500) {
        return new AppError(status, 'BAD_REQUEST', error instanceof Error ? error.message : 'Bad request')
      }
      return new AppError(500, 'INTERNAL_ERROR', 'Internal server error', undefined, { cause: error })
    }
  }
}

/**
 * Elysia 1.4 validates a converted query number on its own (type 'property') and drops its name; the name is
 * recovered from the query string by the value that failed.
 */
function queryParamNamed(request: Request, value: unknown): string | undefined {
  for (const [name, raw] of new URL(request.url).searchParams) if (raw === String(value)) return name
  return undefined
}

function validationError(error: ValidationError, request: Request): AppError {
  const lostName = error.type === 'property'
  const where = lostName ? 'query' : (error.type ?? 'body')
  const details = (error.all ?? []).slice(0, 20).map((issue) => {
    const path = 'path' in issue && typeof issue.path === 'string' ? issue.path : ''
    const field =
      path.replace(/^\//, '').replaceAll('/', '.') || (lostName ? queryParamNamed(request, error.value) : undefined) || where
    const message = ('summary' in issue && issue.summary) || issue.message
    return { field, in: where, message }
  })
  const first = details[0]
  const message = first ? `Invalid ${first.field}: ${first.message}` : `Invalid ${where}`
  return new AppError(400, 'VALIDATION_FAILED', message, details)
}
