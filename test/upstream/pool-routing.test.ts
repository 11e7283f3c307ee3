/** Several upstreams: balancing, failover before the first line only, breakers, health checks. */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { startSimulator, type Simulator } from '../../src/simulator/server.ts'
import { createUpstreamPool, type UpstreamPool, type UpstreamPoolOptions, type UpstreamStream } from '../../src/upstream/index.ts'
import { ask, collect, failure, items, waitFor } from './helpers.ts'

const live = () => new AbortController().signal
const pools: UpstreamPool[] = []
afterEach(() => {
  for (const p of pools.splice(0)) p.close()
})

function pool(urls: string[], over: Partial<UpstreamPoolOptions> = {}) {
  const p = createUpstreamPool({
    urls,
    firstByteTimeoutMs: 2000,
    idleTimeoutMs: 2000,
    healthIntervalMs: 0,
    userAgent: 'VoiceHelper-Gateway/test',
    ...over,
  })
  pools.push(p)
  return p
}

/** A URL where nothing listens: a port that was just freed. */
function refusedUrl(): string {
  const s = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
  const url = `http://127.0.0.1:${s.port}`
  s.stop(true)
  return url
}

/** A fake upstream whose answers the test switches: ok (NDJSON), a status, or a slow ok. */
function fakeUpstream() {
  const state = { mode: 'ok' as 'ok' | 'slow' | number, queries: 0, health: 200 }
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      if (new URL(req.url).pathname === '/health') return new Response('{}', { status: state.health })
      state.queries++
      if (typeof state.mode === 'number') return new Response('{"error":"x"}', { status: state.mode })
      if (state.mode === 'slow') await Bun.sleep(150)
      return new Response('{"type":"generation_chunk","content":"hi"}\n{"type":"generation_done"}\n')
    },
  })
  return { state, url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) }
}

let a: Simulator
let b: Simulator
beforeAll(async () => {
  ;[a, b] = await Promise.all([startSimulator({ port: 0 }), startSimulator({ port: 0 })])
})
afterAll(() => Promise.all([a.stop(), b.stop()]))

const started = () => [a.stats.queriesStarted, b.stats.queriesStarted]
const delta = (before: number[]) => started().map((n, i) => n - before[i]!)

describe('balancing', () => {
  test('open streams spread evenly; the least loaded upstream gets the next one', async () => {
    const p = pool([a.url, b.url])
    const before = started()
    const open: UpstreamStream[] = []
    for (let i = 0; i < 4; i++) open.push(await p.query({ body: ask('chunks=100000 delay_ms=20'), requestId: `b${i}`, signal: live() }))
    expect(p.health().map((h) => h.outstanding)).toEqual([2, 2])
    expect(delta(before)).toEqual([2, 2])
    // Free two slots on B: the next two go to B, although round robin alone would alternate.
    for (const s of open.filter((s) => s.upstream === b.url)) s.cancel()
    expect(p.health().map((h) => h.outstanding)).toEqual([2, 0])
    for (let i = 0; i < 2; i++) open.push(await p.query({ body: ask('chunks=100000 delay_ms=20'), requestId: `c${i}`, signal: live() }))
    expect(p.health().map((h) => h.outstanding)).toEqual([2, 2])
    for (const s of open) s.cancel()
    expect(p.health().map((h) => h.outstanding)).toEqual([0, 0])
    await waitFor(() => a.stats.queriesOpen + b.stats.queriesOpen === 0, 'both simulators to close their queries')
  })

  test('sequential requests with nothing outstanding alternate', async () => {
    const p = pool([a.url, b.url])
    const served: string[] = []
    for (let i = 0; i < 6; i++) {
      const s = await p.query({ body: ask('chunks=1'), requestId: `rr${i}`, signal: live() })
      served.push(s.upstream)
      await collect(items(s.batches))
    }
    expect(served.filter((u) => u === a.url)).toHaveLength(3)
    expect(served.filter((u) => u === b.url)).toHaveLength(3)
  })
})

describe('failover before the first line', () => {
  test('connection refused → served by the next upstream', async () => {
    const p = pool([refusedUrl(), b.url])
    for (let i = 0; i < 3; i++) {
      const s = await p.query({ body: ask('chunks=2'), requestId: `f${i}`, signal: live() })
      expect(s.upstream).toBe(b.url)
      expect(await collect(items(s.batches))).toHaveLength(7)
    }
  })

  test('a 503 → served by the next upstream; each upstream tried once', async () => {
    const sick = await startSimulator({ port: 0, query: { mode: 'http_503' } })
    try {
      const p = pool([sick.url, b.url])
      const before = b.stats.queriesStarted
      for (let i = 0; i < 2; i++) {
        const s = await p.query({ body: ask('chunks=1'), requestId: `g${i}`, signal: live() })
        expect(s.upstream).toBe(b.url)
        await collect(items(s.batches))
      }
      expect(b.stats.queriesStarted - before).toBe(2)
      expect(sick.stats.queriesStarted).toBeGreaterThanOrEqual(1)
    } finally {
      await sick.stop()
    }
  })

  test('every upstream failing → ALGO_SERVICE_ERROR with the last status', async () => {
    const x = fakeUpstream()
    const y = fakeUpstream()
    x.state.mode = 500
    y.state.mode = 503
    try {
      const p = pool([x.url, y.url])
      const err = await failure(p.query({ body: {}, requestId: 'h', signal: live() }))
      expect(err).toMatchObject({ code: 'ALGO_SERVICE_ERROR', status: 502 })
      expect([x.state.queries, y.state.queries]).toEqual([1, 1])
      expect(p.health().map((h) => h.outstanding)).toEqual([0, 0])
    } finally {
      x.stop()
      y.stop()
    }
  })

  test('a 400 (the request itself is bad) is not retried elsewhere', async () => {
    const p = pool([a.url, b.url])
    const before = started()
    const err = await failure(p.query({ body: ask('mode=no_such_mode'), requestId: 'bad', signal: live() }))
    expect(err).toMatchObject({ code: 'ALGO_SERVICE_ERROR', upstreamStatus: 400 })
    expect(delta(before).reduce((x, y) => x + y)).toBe(0) // rejected before being counted as started
  })

  test('first-byte timeout on one → the other answers', async () => {
    const slow = await startSimulator({ port: 0, query: { first_byte_delay_ms: 5000 } })
    try {
      const p = pool([slow.url, b.url], { firstByteTimeoutMs: 150 })
      const s = await p.query({ body: ask('chunks=1'), requestId: 'fb', signal: live() })
      expect(s.upstream).toBe(b.url)
      await collect(items(s.batches))
      await waitFor(() => slow.stats.queriesOpen === 0, 'the timed-out request to close')
    } finally {
      await slow.stop()
    }
  })

  test('no retry once a line was read: drop mid-stream → STREAM_ERROR, the other upstream saw nothing', async () => {
    const p = pool([a.url, b.url])
    const before = started()
    const s = await p.query({ body: ask('mode=drop_mid fail_after=3 delay_ms=10'), requestId: 'dm', signal: live() })
    const seen: unknown[] = []
    const err = await failure((async () => { for await (const i of items(s.batches)) seen.push(i) })())
    expect(err).toMatchObject({ code: 'STREAM_ERROR' })
    expect(seen).toHaveLength(3)
    expect(delta(before).sort()).toEqual([0, 1])
    expect(p.health().map((h) => h.outstanding)).toEqual([0, 0])
  })
})

describe('breaker', () => {
  test('opens after consecutive failures, skips the upstream, then lets one trial through after the cool-down', async () => {
    const up = fakeUpstream()
    const clock = { t: 0 }
    try {
      const p = pool([up.url], { now: () => clock.t, breaker: { failureThreshold: 2, cooldownMs: 1000 } })
      up.state.mode = 500
      for (let i = 0; i < 2; i++) await failure(p.query({ body: {}, requestId: `x${i}`, signal: live() }))
      expect(p.health()[0]!.breaker).toBe('open')
      const err = await failure(p.query({ body: {}, requestId: 'x3', signal: live() }))
      expect(err).toMatchObject({ code: 'ALGO_SERVICE_ERROR', message: 'no algorithm service available' })
      expect(up.state.queries).toBe(2) // the open breaker kept the request away

      clock.t += 1000
      expect(p.health()[0]!.breaker).toBe('half_open')
      up.state.mode = 'slow'
      const trial = p.query({ body: {}, requestId: 'trial', signal: live() })
      // While the one trial is in flight, nothing else goes through.
      expect(await failure(p.query({ body: {}, requestId: 'x4', signal: live() }))).toMatchObject({ code: 'ALGO_SERVICE_ERROR' })
      expect(await collect(items((await trial).batches))).toHaveLength(2)
      expect(p.health()[0]!.breaker).toBe('closed')
      expect(up.state.queries).toBe(3)
    } finally {
      up.stop()
    }
  })

  test('a failed trial reopens it; with two upstreams the open one is skipped', async () => {
    const up = fakeUpstream()
    const clock = { t: 0 }
    try {
      const p = pool([up.url, b.url], { now: () => clock.t, breaker: { failureThreshold: 1, cooldownMs: 1000 } })
      up.state.mode = 503
      // Round robin starts at the first upstream: it fails once (breaker opens), B serves.
      expect((await p.query({ body: ask('chunks=1'), requestId: 'y1', signal: live() })).upstream).toBe(b.url)
      expect(p.health()[0]!.breaker).toBe('open')
      for (let i = 0; i < 3; i++) {
        const s = await p.query({ body: ask('chunks=1'), requestId: `y${i + 2}`, signal: live() })
        expect(s.upstream).toBe(b.url)
        await collect(items(s.batches))
      }
      expect(up.state.queries).toBe(1)
      clock.t += 1000
      // Half-open and idle: it gets the next request as its trial, fails it, and B still answers.
      const s = await p.query({ body: ask('chunks=1'), requestId: 'y9', signal: live() })
      expect(s.upstream).toBe(b.url)
      expect(up.state.queries).toBe(2)
      expect(p.health()[0]!.breaker).toBe('open')
    } finally {
      up.stop()
    }
  })

  test('streams that break mid-way trip it; a caller leaving does not', async () => {
    const clock = { t: 0 }
    const p = pool([a.url], { now: () => clock.t, breaker: { failureThreshold: 2, cooldownMs: 1000 } })
    for (let i = 0; i < 3; i++) {
      const s = await p.query({ body: ask('chunks=1000 delay_ms=5'), requestId: `z${i}`, signal: live() })
      s.cancel() // the caller leaving is no failure of the upstream
    }
    expect(p.health()[0]!.breaker).toBe('closed')
    for (let i = 0; i < 2; i++) {
      const s = await p.query({ body: ask('mode=drop_mid fail_after=2 delay_ms=5'), requestId: `d${i}`, signal: live() })
      expect(await failure(collect(items(s.batches)))).toMatchObject({ code: 'STREAM_ERROR' })
    }
    expect(p.health()[0]).toMatchObject({ breaker: 'open', outstanding: 0 })
    // Half-open: a trial that answers closes it at its first line, however long the rest takes.
    clock.t += 1000
    const trial = await p.query({ body: ask('chunks=1000 delay_ms=5'), requestId: 'trial', signal: live() })
    expect(p.health()[0]!.breaker).toBe('closed')
    trial.cancel()
  })

  test('a clean end resets the count between failures', async () => {
    const clock = { t: 0 }
    const p = pool([a.url], { now: () => clock.t, breaker: { failureThreshold: 2, cooldownMs: 1000 } })
    for (const directive of ['mode=drop_mid fail_after=2 delay_ms=5', 'chunks=1', 'mode=drop_mid fail_after=2 delay_ms=5']) {
      const s = await p.query({ body: ask(directive), requestId: directive, signal: live() })
      await collect(items(s.batches)).catch(() => {})
    }
    expect(p.health()[0]!.breaker).toBe('closed')
  })
})

describe('health checks', () => {
  test('an unhealthy upstream is skipped until it recovers', async () => {
    const up = fakeUpstream()
    try {
      const p = pool([up.url, b.url])
      up.state.health = 503
      await p.checkHealth()
      expect(p.health().map((h) => h.healthy)).toEqual([false, true])
      for (let i = 0; i < 3; i++) expect((await p.query({ body: ask('chunks=1'), requestId: `u${i}`, signal: live() })).upstream).toBe(b.url)
      expect(up.state.queries).toBe(0)
      up.state.health = 200
      await p.checkHealth()
      expect(p.health()[0]!.healthy).toBe(true)
    } finally {
      up.stop()
    }
  })

  test('the periodic timer marks a dead upstream, and close() stops it', async () => {
    const up = fakeUpstream()
    const p = pool([up.url, b.url], { healthIntervalMs: 30 })
    up.stop()
    await waitFor(() => p.health()[0]!.healthy === false, 'the dead upstream to be marked unhealthy')
    p.close()
  })
})
