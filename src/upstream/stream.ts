/**
 * One `/query` attempt on one upstream, from the request to the last line.
 *
 * Everything that ends the attempt goes through one AbortController: the caller's signal, `cancel()`, the
 * first-byte and idle timers. Aborting it aborts the fetch (so the upstream socket closes, whatever stage the
 * request is in) and releases the upstream's outstanding slot, exactly once. The Response is held until then:
 * a collected Response can cut a stream short (Portkey-AI/gateway#1659).
 */
import type { Breaker } from './breaker.ts'
import { UpstreamError } from './errors.ts'
import { type NdjsonItem, NdjsonReader } from './ndjson.ts'
import type { UpstreamQuery, UpstreamStream } from './pool.ts'

/** The pool's bookkeeping for one base URL. */
export interface Upstream {
  readonly url: string
  healthy: boolean
  outstanding: number
  readonly breaker: Breaker
}

export interface StreamSettings {
  firstByteTimeoutMs: number
  idleTimeoutMs: number
  maxLineBytes: number
  userAgent: string
}

export async function openUpstreamStream(u: Upstream, req: UpstreamQuery, s: StreamSettings): Promise<UpstreamStream> {
  const ctrl = new AbortController()
  const { signal } = ctrl
  let held: { response?: Response } = {}
  let verdict: 'pending' | 'given' = 'pending'
  let timer: ReturnType<typeof setTimeout> | undefined

  u.outstanding++
  u.breaker.attempt()
  const onCallerAbort = () => abort(req.signal.reason)
  req.signal.addEventListener('abort', onCallerAbort, { once: true })

  let released = false
  function release() {
    if (released) return
    released = true
    u.outstanding--
    clearTimeout(timer)
    req.signal.removeEventListener('abort', onCallerAbort)
    // The caller left before the upstream proved itself either way: no verdict, but free a half-open trial.
    if (verdict === 'pending') u.breaker.abandon()
    held = {}
  }
  /** every abort goes through here (not an abort listener: one fewer per stream) */
  function abort(reason: unknown) {
    ctrl.abort(reason)
    release()
  }

  /**
   * Records the upstream's failure once. Timeouts, broken streams and 5xx/408/429 count; the caller's own abort
   * and a 4xx (the upstream is alive, it disliked the request) do not.
   */
  function judge(err: unknown) {
    if (!(err instanceof UpstreamError) || verdict === 'given') return
    const status = err.upstreamStatus
    if (status !== undefined && status < 500 && status !== 408 && status !== 429) return
    verdict = 'given'
    u.breaker.failure()
  }

  /** Aborting with an UpstreamError makes the fetch and the reader throw it, so the timeout surfaces as itself. */
  function arm(ms: number, message: string) {
    clearTimeout(timer)
    timer = setTimeout(() => abort(new UpstreamError('ALGO_TIMEOUT', message, { upstream: u.url })), ms)
  }

  /**
   * Idle timeout without a timer per line: only the upstream's silence counts, so the relay notes when it
   * starts waiting for a line (-1 while the caller holds one), and the one timer, when it fires, re-arms for
   * whatever part of the timeout has not passed in silence yet. Bytes without a line (blank keep-alive lines)
   * are not silence.
   */
  let waitingSince = -1
  function armIdle(delay: number) {
    timer = setTimeout(() => {
      if (waitingSince < 0) return armIdle(s.idleTimeoutMs)
      const silent = performance.now() - Math.max(waitingSince, opened?.lastBytesAt ?? -1)
      if (silent + 1 < s.idleTimeoutMs) return armIdle(s.idleTimeoutMs - silent)
      abort(new UpstreamError('ALGO_TIMEOUT', `algorithm service silent for ${s.idleTimeoutMs} ms`, { upstream: u.url }))
    }, delay)
  }

  if (req.signal.aborted) abort(req.signal.reason)
  arm(s.firstByteTimeoutMs, `no answer from the algorithm service within ${s.firstByteTimeoutMs} ms`)

  let opened: NdjsonReader | undefined
  let first: NdjsonItem[] | undefined
  try {
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      Accept: 'application/x-ndjson',
      'X-Request-ID': req.requestId,
      'User-Agent': s.userAgent,
    }
    if (req.traceparent) headers.traceparent = req.traceparent
    let response: Response
    try {
      response = await fetch(`${u.url}/query`, { method: 'POST', headers, body: JSON.stringify(req.body), signal })
    } catch (err) {
      if (signal.aborted) throw signal.reason
      throw new UpstreamError('ALGO_SERVICE_ERROR', 'The algorithm service is unreachable', {
        upstream: u.url,
        cause: err,
      })
    }
    held.response = response
    if (!response.ok) {
      await response.body?.cancel().catch(() => {})
      throw new UpstreamError('ALGO_SERVICE_ERROR', `algorithm service answered HTTP ${response.status}`, {
        status: response.status,
        upstream: u.url,
      })
    }
    opened = new NdjsonReader(response.body ?? new ReadableStream(), { maxLineBytes: s.maxLineBytes, signal })
    first = await opened.read()
  } catch (err) {
    judge(err)
    // Closes the connection if it is still open (timeout, bad status) and releases the slot.
    abort(err)
    opened?.close()
    throw err
  }

  const lines = opened
  clearTimeout(timer)
  verdict = 'given'
  // An answer is enough to pass a half-open trial (the trial slot must not stay taken for a whole long stream),
  // but only a clean end resets the failure count: an upstream that always breaks mid-stream must still trip.
  if (first === undefined || u.breaker.state() === 'half_open') u.breaker.success()
  if (first === undefined) {
    lines.close()
    release()
  }

  /** nothing more is handed out: `clean`, the upstream ended; otherwise it is aborted (it stops generating) */
  let over = first === undefined
  function stop(clean: boolean): void {
    if (over) return
    over = true
    if (!clean) abort(new DOMException('upstream stream closed by the caller', 'AbortError'))
    lines.close()
    release()
  }

  const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }
  /**
   * The batches, written out rather than as an async generator: a read reaches the caller through two plain
   * async calls, without a generator's extra turns (bench/RESULTS.md). Not for concurrent next() calls (a
   * for await never makes them).
   */
  const batches: AsyncGenerator<NdjsonItem[]> = {
    [Symbol.asyncIterator]() {
      return this
    },
    async next(): Promise<IteratorResult<NdjsonItem[]>> {
      if (over) return DONE
      try {
        // cancel() may come before the caller ever reads: nothing more is handed out after it.
        if (signal.aborted) throw signal.reason
        let batch: NdjsonItem[] | undefined
        if (first !== undefined) {
          batch = first
          first = undefined
          armIdle(s.idleTimeoutMs)
        } else {
          waitingSince = performance.now()
          batch = await lines.read()
          waitingSince = -1
        }
        if (batch !== undefined) return { done: false, value: batch }
        u.breaker.success()
        stop(true)
        return DONE
      } catch (err) {
        // A break after a good start counts against the upstream; the caller's own abort (not an UpstreamError) does not.
        if (err instanceof UpstreamError) u.breaker.failure()
        stop(false)
        throw err
      }
    },
    async return(): Promise<IteratorResult<NdjsonItem[]>> {
      stop(false)
      return DONE
    },
    async throw(err: unknown): Promise<IteratorResult<NdjsonItem[]>> {
      stop(false)
      throw err
    },
    [Symbol.asyncDispose]: async () => stop(false),
  }

  return {
    upstream: u.url,
    batches,
    cancel(reason = 'cancelled') {
      abort(new DOMException(reason, 'AbortError'))
    },
  }
}

