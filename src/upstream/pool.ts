/**
 * The algorithm-service pool: picks an upstream (least outstanding requests among the healthy ones whose breaker
 * allows, ties in turn), sends `POST /query`, and hands back the NDJSON lines once the first one has arrived.
 *
 * Why wait for the first line: until then nothing has reached the caller, so a refused connection, a non-2xx or
 * a first-byte timeout can still be retried on another upstream. After it, a failure is the caller's to report.
 * There is no total timeout: long answers are fine as long as the upstream is never silent past the idle timeout.
 */
import { createBreaker, type BreakerOptions, type BreakerState } from './breaker.ts'
import { LINE_TOO_LONG, UpstreamError } from './errors.ts'
import { checkUpstreamHealth } from './health.ts'
import type { NdjsonItem } from './ndjson.ts'
import { openUpstreamStream, type Upstream } from './stream.ts'

export interface UpstreamLogger {
  info(o: object, msg?: string): void
  warn(o: object, msg?: string): void
}

export interface UpstreamPoolOptions {
  /** Base URLs without a trailing slash. */
  urls: string[]
  /** No first line within this → ALGO_TIMEOUT (and a retry elsewhere). */
  firstByteTimeoutMs: number
  /** Silence between lines past this → ALGO_TIMEOUT. */
  idleTimeoutMs: number
  /** Period of GET /health checks; 0 turns them off. @default 10000 */
  healthIntervalMs?: number
  /** One health check's time limit. @default min(healthIntervalMs, 2000) */
  healthTimeoutMs?: number
  /** Longest NDJSON line. @default 1 MiB */
  maxLineBytes?: number
  /** e.g. `VoiceHelper-Gateway/2.0.0` */
  userAgent: string
  logger?: UpstreamLogger
  /** Breaker settings; `now` below is its clock unless it brings its own. */
  breaker?: BreakerOptions
  /** @default Date.now */
  now?: () => number
}

export interface UpstreamQuery {
  /** Sent as JSON. */
  body: unknown
  requestId: string
  traceparent?: string
  /** Aborting cancels the upstream request at any stage. */
  signal: AbortSignal
}

export interface UpstreamStream {
  /** The base URL that is answering. */
  upstream: string
  /**
   * Items from the first line on, those of one network read together. Throws UpstreamError (STREAM_ERROR,
   * ALGO_TIMEOUT) or the abort reason.
   */
  batches: AsyncGenerator<NdjsonItem[]>
  /** Aborts the upstream request (its socket closes) and releases its slot; safe to call more than once. */
  cancel(reason?: string): void
}

export interface UpstreamHealth {
  url: string
  healthy: boolean
  outstanding: number
  breaker: BreakerState
}

export interface UpstreamPool {
  /** Resolves once the first line arrived; rejects with UpstreamError, or the abort reason when `signal` aborts. */
  query(req: UpstreamQuery): Promise<UpstreamStream>
  health(): UpstreamHealth[]
  /** Runs one round of health checks now (also what the timer does). */
  checkHealth(): Promise<void>
  close(): void
}

const MIB = 1024 * 1024

/** Worth trying another upstream? Not for a request the upstream rejected as bad, nor an oversized line. */
function retryable(err: unknown): boolean {
  if (!(err instanceof UpstreamError)) return false
  if (err.code === 'STREAM_ERROR') return err.message !== LINE_TOO_LONG
  const s = err.upstreamStatus
  return s === undefined || s >= 500 || s === 408 || s === 429
}

export function createUpstreamPool(opts: UpstreamPoolOptions): UpstreamPool {
  if (opts.urls.length === 0) throw new Error('upstream pool needs at least one URL')
  const now = opts.now ?? Date.now
  const upstreams: Upstream[] = opts.urls.map((url) => ({
    url: url.replace(/\/+$/, ''),
    healthy: true, // optimistic until a check says otherwise, so the first request need not wait for one
    outstanding: 0,
    breaker: createBreaker({ now, ...opts.breaker }),
  }))
  const settings = {
    firstByteTimeoutMs: opts.firstByteTimeoutMs,
    idleTimeoutMs: opts.idleTimeoutMs,
    maxLineBytes: opts.maxLineBytes ?? MIB,
    userAgent: opts.userAgent,
  }
  let turn = 0

  function pick(exclude: Set<Upstream>): Upstream | undefined {
    let best: Upstream | undefined
    let bestIndex = 0
    // Scanning from a rotating start makes the first of several equally loaded upstreams a different one each time.
    for (let i = 0; i < upstreams.length; i++) {
      const index = (turn + i) % upstreams.length
      const u = upstreams[index]!
      if (exclude.has(u) || !u.healthy || !u.breaker.available()) continue
      if (!best || u.outstanding < best.outstanding) {
        best = u
        bestIndex = index
      }
    }
    if (best) turn = bestIndex + 1
    return best
  }

  async function query(req: UpstreamQuery): Promise<UpstreamStream> {
    const tried = new Set<Upstream>()
    let lastError: unknown
    while (true) {
      if (req.signal.aborted) throw req.signal.reason
      const u = pick(tried)
      if (!u) throw lastError ?? new UpstreamError('ALGO_SERVICE_ERROR', 'no algorithm service available')
      tried.add(u)
      try {
        return await openUpstreamStream(u, req, settings)
      } catch (err) {
        if (req.signal.aborted || !retryable(err)) throw err
        lastError = err
        opts.logger?.warn({ upstream: u.url, request_id: req.requestId, err }, 'upstream failed before the first line')
      }
    }
  }

  let checking: Promise<void> | undefined
  function checkHealth(): Promise<void> {
    const timeoutMs = opts.healthTimeoutMs ?? Math.min(opts.healthIntervalMs || 2000, 2000)
    checking ??= Promise.all(
      upstreams.map(async (u) => {
        const healthy = await checkUpstreamHealth(u.url, timeoutMs).then(
          () => true,
          () => false,
        )
        if (healthy !== u.healthy) {
          opts.logger?.[healthy ? 'info' : 'warn']({ upstream: u.url }, `upstream ${healthy ? 'healthy' : 'unhealthy'}`)
        }
        u.healthy = healthy
      }),
    ).then(
      () => {
        checking = undefined
      },
      () => {
        checking = undefined
      },
    )
    return checking
  }

  const intervalMs = opts.healthIntervalMs ?? 10_000
  // unref: a pending check must not keep the process (or a test run) alive.
  const timer = intervalMs > 0 ? setInterval(() => void checkHealth(), intervalMs) : undefined
  timer?.unref()

  return {
    query,
    checkHealth,
    health: () =>
      upstreams.map((u) => ({ url: u.url, healthy: u.healthy, outstanding: u.outstanding, breaker: u.breaker.state() })),
    close() {
      if (timer) clearInterval(timer)
    },
  }
}
