/**
 * The response headers of a rate-limit decision (IETF RateLimit header fields, the widely deployed
 * `RateLimit-Limit/-Remaining/-Reset` form, plus Retry-After on a denial). Values are whole numbers: clients
 * parse them as integers, and seconds are rounded up so nobody retries before the window really ends.
 */
import type { RateResult } from './rate-limiter.ts'

export function rateLimitHeaders(result: RateResult): Record<string, string> {
  const headers: Record<string, string> = {}
  writeRateLimitHeaders(headers, result)
  return headers
}

/** the same headers, written into a response's header object */
export function writeRateLimitHeaders(headers: Record<string, string | number>, result: RateResult): void {
  // unlimited: there is no limit to advertise, and Infinity is no header value
  if (result.limit === 0) return
  headers['RateLimit-Limit'] = String(wholeAtLeast(0, result.limit))
  headers['RateLimit-Remaining'] = String(wholeAtLeast(0, result.remaining))
  headers['RateLimit-Reset'] = String(wholeAtLeast(0, result.resetMs / 1000))
  if (!result.allowed) headers['Retry-After'] = String(wholeAtLeast(1, result.retryAfterS))
}

function wholeAtLeast(min: number, n: number): number {
  return Number.isFinite(n) ? Math.max(min, Math.ceil(n)) : min
}
