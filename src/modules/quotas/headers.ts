/**
 * The response headers of a rate-limit decision (IETF RateLimit header fields, the widely deployed
 * `RateLimit-Limit/-Remaining/-Reset` form, plus Retry-After on a denial). Values are whole numbers: clients
 * parse them as integers, and seconds are rounded up so nobody retries before the window really ends.
 */
import type { RateResult } from './rate-limiter.ts'

export function rateLimitHeaders(result: RateResult): Record<string, string> {
  return writeRateLimitHeaders({}, result)
}

/** the same headers written into `headers` (a response's header object), which is returned */
export function writeRateLimitHeaders<H extends Record<string, string | number>>(headers: H, result: RateResult): H {
  // unlimited: there is no limit to advertise, and Infinity is no header value
  if (result.limit === 0) return headers
  const h = headers as Record<string, string | number>
  h['RateLimit-Limit'] = String(wholeAtLeast(0, result.limit))
  h['RateLimit-Remaining'] = String(wholeAtLeast(0, result.remaining))
  h['RateLimit-Reset'] = String(wholeAtLeast(0, result.resetMs / 1000))
  if (!result.allowed) h['Retry-After'] = String(wholeAtLeast(1, result.retryAfterS))
  return headers
}

function wholeAtLeast(min: number, n: number): number {
  return Number.isFinite(n) ? Math.max(min, Math.ceil(n)) : min
}
