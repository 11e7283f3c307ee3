/**
 * Request metrics by route template (never raw paths, so ids cannot explode the label set) and one
 * access-log line per request.
 *
 * Successful responses are recorded in a global mapResponse hook that maps nothing (an onAfterResponse
 * hook measured ~4 µs per request on Elysia 1.4; this costs almost nothing); error responses are recorded
 * by the error handler, which sees every failure. Each request is recorded once. Streams are timed to
 * their first byte; their own metrics cover the rest.
 */
import { Elysia } from 'elysia'
import { metaOf } from '../http/errors-plugin'
import { createAccessLogger, type Logger } from './logger'
import type { Metrics } from './metrics'

/** Paths polled by probes and scrapers: logged at debug so they do not drown the access log. */
const QUIET_ROUTES = new Set(['/health', '/ready', '/metrics'])

export type RecordRequest = (request: Request, route: string | undefined, status: number) => void

export function createRequestRecorder({ logger: appLogger, metrics }: { logger: Logger; metrics: Metrics }): RecordRequest {
  const count = createMetricChildren(metrics)
  // fixed fields only (request id, method, route template, status, duration): nothing to redact
  const logger = createAccessLogger(appLogger)
  return function recordRequest(request, route, status) {
    const meta = metaOf(request)
    if (meta.recorded) return
    meta.recorded = true
    const endpoint = route || 'unmatched'
    const seconds = (performance.now() - meta.startedAt) / 1000
    count(request.method, endpoint, status, seconds)
    const level = QUIET_ROUTES.has(endpoint) && status < 500 ? 'debug' : 'info'
    if (!logger.isLevelEnabled(level)) return
    logger[level](
      { request_id: meta.id, method: request.method, route: endpoint, status, duration_ms: Math.round(seconds * 1e4) / 10 },
      'request',
    )
  }
}

export function httpObservabilityPlugin(record: RecordRequest) {
  return new Elysia({ name: 'voicehelper.http-observability' }).mapResponse(
    { as: 'global' },
    function recordResponse(ctx) {
      const route = (ctx as { route?: string }).route
      const value = (ctx as { responseValue?: unknown }).responseValue
      const status = value instanceof Response ? value.status : Number(ctx.set.status ?? 200) || 200
      record(ctx.request, route, status)
    },
  )
}

/**
 * prom-client hashes the label object on every call; the label sets here are few (route templates ×
 * methods × statuses), so their children are looked up once and kept.
 */
function createMetricChildren(metrics: Metrics) {
  const counters = new Map<string, { inc(): void }>()
  const histograms = new Map<string, { observe(v: number): void }>()
  return function count(method: string, endpoint: string, status: number, seconds: number): void {
    const route = `${method} ${endpoint}`
    const counterKey = `${route} ${status}`
    let counter = counters.get(counterKey)
    if (!counter) {
      counter = metrics.httpRequests.labels({ method, endpoint, status: String(status) })
      counters.set(counterKey, counter)
    }
    counter.inc()
    let histogram = histograms.get(route)
    if (!histogram) {
      histogram = metrics.httpDuration.labels({ method, endpoint })
      histograms.set(route, histogram)
    }
    histogram.observe(seconds)
  }
}
