/**
 * Prometheus metrics. One registry per app instance so that several instances in one process (tests,
 * benchmarks) keep their own counts.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { createHotHistogram } from './hot-histogram'

/** The seed's buckets for request durations, in seconds. */
export const HTTP_DURATION_BUCKETS = [0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10]

export function createMetrics() {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  // Two observations per audio frame: kept in plain numbers and read when scraped (see hot-histogram.ts).
  const voiceRelayLatency = createHotHistogram({
    name: 'voice_relay_latency_seconds',
    help: 'Time a voice frame spent in the gateway, from receipt to its hand-off to the other socket',
    labelNames: ['direction'],
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
    registers: [registry],
  })
  // every relayed frame has its latency observed: the counter is brought up to the histogram's counts when scraped
  const countedFrames = new Map<string, number>()
  const voiceFramesRelayed = new Counter({
    name: 'voice_frames_relayed_total',
    help: 'Voice frames relayed, by direction (upstream: client audio to the algorithm service; downstream: its events to the client)',
    labelNames: ['direction'] as const,
    registers: [registry],
    collect() {
      for (const { labels, count } of voiceRelayLatency.counts()) {
        const direction = labels.direction!
        const delta = count - (countedFrames.get(direction) ?? 0)
        if (delta > 0) this.inc({ direction }, delta)
        countedFrames.set(direction, count)
      }
    },
  })
  return {
    registry,
    httpRequests: new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests by method, route template and status',
      labelNames: ['method', 'endpoint', 'status'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by method and route template',
      labelNames: ['method', 'endpoint'] as const,
      buckets: HTTP_DURATION_BUCKETS,
      registers: [registry],
    }),
    websocketConnections: new Gauge({
      name: 'websocket_connections_active',
      help: 'Open WebSocket connections by type',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'auth_failures_total',
      help: 'Refused authentications and authorisations by error code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    rateLimitRejections: new Counter({
      name: 'rate_limit_rejections_total',
      help: 'Requests refused by a rate limit, by scope',
      labelNames: ['scope'] as const,
      registers: [registry],
    }),
    chatStreamsActive: new Gauge({
      name: 'chat_streams_active',
      help: 'Chat streams running on this instance (watched or within their disconnect grace)',
      registers: [registry],
    }),
    chatFirstEvent: new Histogram({
      name: 'chat_upstream_first_event_seconds',
      help: 'Time from the chat request to the first upstream event',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    chatUpstreamRequests: new Counter({
      name: 'chat_upstream_requests_total',
      help: 'Chat calls to the algorithm service by upstream and outcome (completed, failed, timeout, unavailable, cancelled)',
      labelNames: ['upstream', 'outcome'],
      registers: [registry],
    }),
    chatStreamEndings: new Counter({
      name: 'chat_stream_endings_total',
      help: 'Chat streams ended, by reason (completed, error code, or cancel reason)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    chatInvalidLines: new Counter({
      name: 'chat_upstream_invalid_lines_total',
      help: 'Upstream NDJSON lines skipped as invalid',
      registers: [registry],
    }),
    voiceFramesRelayed,
    voiceFramesDropped: new Counter({
      name: 'voice_frames_dropped_total',
      help: 'Voice audio frames dropped because the receiving side was too slow, by direction',
      labelNames: ['direction'] as const,
      registers: [registry],
    }),
    voiceRelayLatency,
    voiceSessionEndings: new Counter({
      name: 'voice_session_endings_total',
      help: 'Voice sessions ended, by reason (client_ended, client_disconnected, message_too_large, idle, shutdown, token_revoked, deleted, upstream_error, internal_error)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    dependencyUp: new Gauge({
      name: 'gateway_dependency_up',
      help: 'Last readiness result per dependency (1 up, 0 down)',
      labelNames: ['dependency'] as const,
      registers: [registry],
    }),
  }
}

export type Metrics = ReturnType<typeof createMetrics>
