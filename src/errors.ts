/**
 * One error vocabulary. Every failure the gateway reports is an AppError (or becomes one in the global
 * handler), rendered as the contract's body: {error, code, request_id, details?}.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    options?: { cause?: unknown; headers?: Record<string, string> },
  ) {
    super(message, options)
    this.name = 'AppError'
    this.headers = options?.headers
  }

  /** response headers that belong to this error (Retry-After, RateLimit-*) */
  readonly headers?: Record<string, string>
}

export const badRequest = (code: string, message: string, details?: unknown) =>
  new AppError(400, code, message, details)
export const notFound = (message = 'Not found', code = 'NOT_FOUND') => new AppError(404, code, message)

export interface ErrorBody {
  error: string
  code: string
  request_id: string
  details?: unknown
}

export function errorBody(err: AppError, requestId: string): ErrorBody {
  const body: ErrorBody = { error: err.message, code: err.code, request_id: requestId }
  if (err.details !== undefined) body.details = err.details
  return body
}
