/**
 * Request bodies: JSON only (multipart too is refused until a route takes files), bounded in size whether
 * or not the client sends Content-Length, and every failure in the contract's vocabulary.
 */
import { AppError } from '../errors'
import { SUSPECT_ESCAPE, unstorablePath } from '../lib/storable'

const JSON_TYPE = /^application\/([a-z0-9.+-]*\+)?json$/

export function payloadTooLarge(limit: number): AppError {
  return new AppError(413, 'PAYLOAD_TOO_LARGE', `Request body exceeds ${limit} bytes`, { limit_bytes: limit })
}

const unsupportedType = (type: string) => new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', `Content-Type ${type} is not supported; send application/json`)

/** Rejects a declared Content-Length over the limit before any byte is read. */
export function checkDeclaredLength(request: Request, limit: number): void {
  const declared = Number(request.headers.get('content-length') ?? 0)
  if (declared > limit) throw payloadTooLarge(limit)
}

/**
 * Elysia parse hook. Returns null for an empty body so that validation (not the parser) reports what is missing.
 */
export function createJsonBodyParser(limit: number) {
  return async function parseJsonBody({ request, contentType }: { request: Request; contentType: string }) {
    const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
    // no route takes files: a form would go to Elysia's own parser, which reads a chunked body without a bound
    if (type === 'multipart/form-data') throw unsupportedType(type)
    const text = await readText(request, limit)
    if (text.trim() === '') return null
    if (type !== '' && !JSON_TYPE.test(type) && type !== 'text/plain') {
      throw unsupportedType(type)
    }
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch (err) {
      throw new AppError(400, 'INVALID_JSON', 'Request body is not valid JSON', {
        reason: err instanceof Error ? err.message : String(err),
      })
    }
    // Every route takes an object. Elysia skips validating a body whose fields are all optional when it is not
    // a non-empty object, so `[]` or `"x"` would reach such a handler as if no body were sent.
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new AppError(400, 'VALIDATION_FAILED', 'The body must be a JSON object', [
        { field: 'body', in: 'body', message: `expected an object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}` },
      ])
    }
    if (nestedPast(value, MAX_DEPTH)) {
      throw new AppError(400, 'VALIDATION_FAILED', `The body must not nest objects or arrays more than ${MAX_DEPTH} deep`, [
        { field: 'body', in: 'body', message: `nested more than ${MAX_DEPTH} deep` },
      ])
    }
    // text that could not be stored (or relayed) as sent is refused here, not silently changed further on
    if (SUSPECT_ESCAPE.test(text)) {
      const at = unstorablePath(value)
      if (at !== undefined) {
        throw new AppError(400, 'VALIDATION_FAILED', 'Text must not contain NUL characters (\\u0000) or lone surrogates', [
          { field: at || 'body', in: 'body', message: 'contains \\u0000 or a lone UTF-16 surrogate' },
        ])
      }
    }
    return value
  }
}

/**
 * Deeper than any route's body goes. Past a few thousand levels Elysia's report of a validation failure overflows
 * the stack (a 500), so such a body is refused before validation.
 */
const MAX_DEPTH = 32

function nestedPast(value: unknown, levels: number): boolean {
  if (typeof value !== 'object' || value === null) return false
  if (levels === 0) return true
  for (const v of Array.isArray(value) ? value : Object.values(value)) if (nestedPast(v, levels - 1)) return true
  return false
}

async function readText(request: Request, limit: number): Promise<string> {
  // a declared length was held to the limit on arrival and Bun reads no further than it: read it natively
  // (~20 µs a request less than iterating the body stream, which `request.body` alone creates)
  if (request.headers.has('content-length')) return request.text()
  if (!request.body) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength
    if (size > limit) throw payloadTooLarge(limit)
    chunks.push(chunk)
  }
  return new TextDecoder().decode(Buffer.concat(chunks))
}
