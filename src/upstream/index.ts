/** The algorithm-service client: the pool the chat service calls, and the pieces it is built from. */
export { createUpstreamPool } from './pool.ts'
export type { UpstreamHealth, UpstreamLogger, UpstreamPool, UpstreamPoolOptions, UpstreamQuery, UpstreamStream } from './pool.ts'
export { UpstreamError, LINE_TOO_LONG, type UpstreamErrorCode } from './errors.ts'
export { readNdjsonBatches, type NdjsonItem, type NdjsonOptions } from './ndjson.ts'
export { createBreaker, type Breaker, type BreakerOptions, type BreakerState } from './breaker.ts'
export { checkUpstreamHealth } from './health.ts'
