/**
 * Request metrics by route template (never raw paths, so ids cannot explode the label set) and one
 * access-log line per request.
 */
import { Elysia } from 'elysia'
import { metaOf } from '../http/errors-plugin'
import type { Logger } from './logger'
import type { Metrics } from './metrics'

/** Paths polled by probes and scrapers: logged at debug so they do not drown the access log. */
const QUIET_ROUTES = new Set(['/health', '/ready', '/metrics'])

export function httpObservabilityPlugin({ logger, metrics }: { logger: Logger; metrics: Metrics }) {
  return new Elysia({ name: 'voicehelper.http-observability' }).onAfterResponse(
    { as: 'global' },
    function recordRequest(ctx) {
      const { request, set } = ctx
      const route = (ctx as { route?: string }).route
      const response = (ctx as { response?: unknown }).response
      const endpoint = route || 'unmatched'
      const status = response instanceof Response ? response.status : Number(set.status ?? 200) || 200
      const meta = metaOf(request)
      const seconds = (performance.now() - meta.startedAt) / 1000
      metrics.httpRequests.inc({ method: request.method, endpoint, status: String(status) })
      metrics.httpDuration.observe({ method: request.method, endpoint }, seconds)
      const entry = {
        request_id: meta.id,
        method: request.method,
        route: endpoint,
        status,
        duration_ms: Math.round(seconds * 1e4) / 10,
      }
      if (QUIET_ROUTES.has(endpoint) && status < 500) logger.debug(entry, 'request')
      else logger.info(entry, 'request')
    },
  )
}
