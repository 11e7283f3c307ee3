/**
 * Quotas: rate limits enforced across gateway instances through the shared store. No routes of its own —
 * the auth macro applies the per-user and per-tenant limits, and login throttling uses peek/reset.
 */
export {
  createRateLimiter,
  type RateLimiter,
  type RateLimiterLogger,
  type RateLimiterOptions,
  type RateResult,
  type RateRule,
} from './rate-limiter.ts'
export { rateLimitHeaders, writeRateLimitHeaders } from './headers.ts'
