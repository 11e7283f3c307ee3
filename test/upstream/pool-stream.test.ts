/** One upstream, one stream: headers, timeouts, cancellation, and the outstanding count on every ending. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startSimulator, type Simulator } from '../../src/simulator/server.ts'
import { createUpstreamPool, UpstreamError, type UpstreamPoolOptions } from '../../src/upstream/index.ts'
import { ask, collect, failure, items as each, waitFor } from './helpers.ts'

let sim: Simulator
beforeAll(async () => {
  sim = await startSimulator({ port: 0 })
})
afterAll(() => sim.stop())

function pool(over: Partial<UpstreamPoolOptions> = {}) {
  return createUpstreamPool({
    urls: [sim.url],
    firstByteTimeoutMs: 2000,
    idleTimeoutMs: 2000,
    healthIntervalMs: 0,
    userAgent: 'VoiceHelper-Gateway/test',
    ...over,
  })
}
const live = () => new AbortController().signal
const outstanding = (p: ReturnType<typeof pool>) => p.health()[0]!.outstanding
/** Every test leaves the simulator with no open query; a leak shows up right where it happens. */
const closed = () => waitFor(() => sim.stats.queriesOpen === 0, 'the upstream request to close', 1000)

describe('upstream stream', () => {
  test('keep-alive: streams read to the end, one after another, reuse one upstream connection', async () => {
    const ports: number[] = []
    const fake = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch(req, server) {
        ports.push(server.requestIP(req)!.port)
        return new Response('{"type":"generation_chunk","content":"a"}\n{"type":"generation_done"}\n', { headers: { 'Content-Type': 'application/x-ndjson' } })
      },
    })
    try {
      const p = createUpstreamPool({ urls: [`http://127.0.0.1:${fake.port}`], firstByteTimeoutMs: 1000, idleTimeoutMs: 1000, healthIntervalMs: 0, userAgent: 'test' })
      for (let i = 0; i < 5; i++) {
        const stream = await p.query({ body: { i }, requestId: `req_${i}`, signal: live() })
        expect(await collect(each(stream.batches))).toHaveLength(2)
      }
      expect(ports).toHaveLength(5)
      expect(new Set(ports).size).toBe(1)
      p.close()
    } finally {
      await fake.stop(true)
    }
  })

  test('sends the contract headers and the JSON body', async () => {
    let seen: { headers: Headers; body: unknown } | undefined
    const fake = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      async fetch(req) {
        seen = { headers: req.headers, body: await req.json() }
        return new Response('{"type":"generation_done"}\n', { headers: { 'Content-Type': 'application/x-ndjson' } })
      },
    })
    try {
      const p = createUpstreamPool({
        urls: [`http://127.0.0.1:${fake.port}/`],
        firstByteTimeoutMs: 1000,
        idleTimeoutMs: 1000,
        healthIntervalMs: 0,
        userAgent: 'VoiceHelper-Gateway/9.9.9',
      })
      const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
      const stream = await p.query({ body: { q: 1 }, requestId: 'req_abc', traceparent, signal: live() })
      expect(await collect(each(stream.batches))).toHaveLength(1)
      expect(seen?.body).toEqual({ q: 1 })
      expect(Object.fromEntries(seen!.headers)).toMatchObject({
        'content-type': 'application/json',
        accept: 'application/x-ndjson',
        'x-request-id': 'req_abc',
        'user-agent': 'VoiceHelper-Gateway/9.9.9',
        traceparent,
      })
      expect(stream.upstream).toBe(`http://127.0.0.1:${fake.port}`)
    } finally {
      fake.stop(true)
    }
  })

  test('reading to the end gives every line and releases the slot', async () => {
    const p = pool()
    const stream = await p.query({ body: ask('chunks=20'), requestId: 'r1', signal: live() })
    expect(outstanding(p)).toBe(1)
    const items = await collect(each(stream.batches))
    expect(items).toHaveLength(25)
    expect(items.at(-1)).toMatchObject({ kind: 'line', value: { type: 'generation_done' } })
    expect(outstanding(p)).toBe(0)
    stream.cancel() // after the end: harmless, and no double release
    expect(outstanding(p)).toBe(0)
  })

  test('a long answer with pauses under the idle timeout is not cut (no total timeout)', async () => {
    const p = pool({ firstByteTimeoutMs: 300, idleTimeoutMs: 300 })
    const started = Date.now()
    const stream = await p.query({ body: ask('chunks=25 delay_ms=60'), requestId: 'r2', signal: live() })
    const items = await collect(each(stream.batches))
    expect(items).toHaveLength(30)
    expect(Date.now() - started).toBeGreaterThan(1000) // several times both timeouts
  })

  test('forced garbage collection mid-stream does not cut it (the Response is held)', async () => {
    const p = pool()
    const stream = await p.query({ body: ask('chunks=40 delay_ms=5'), requestId: 'gc', signal: live() })
    let n = 0
    for await (const _ of each(stream.batches)) if (++n % 5 === 0) Bun.gc(true)
    expect(n).toBe(45)
  })

  test('Bun trap: a fetch Response nothing refers to is collected mid-body and its connection closed (why the pool holds it)', async () => {
    // read one chunk, then keep neither the Response nor its reader: as a client that stops reading for a while
    const readOneAndForget = async () => {
      const res = await fetch(`${sim.url}/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ask('chunks=400 delay_ms=10')) })
      await res.body!.getReader().read()
    }
    await readOneAndForget()
    expect(sim.stats.queriesOpen).toBe(1)
    // the simulator sees its request aborted long before the answer's 4 s are over
    await waitFor(() => (Bun.gc(true), sim.stats.queriesOpen === 0), 'the collected response to close its upstream request', 2000)
  })

  test('no first line within firstByteTimeoutMs → ALGO_TIMEOUT, and the request is closed', async () => {
    const p = pool({ firstByteTimeoutMs: 200 })
    const started = Date.now()
    const err = await failure(p.query({ body: ask('first_byte_delay_ms=5000'), requestId: 'r3', signal: live() }))
    expect(err).toBeInstanceOf(UpstreamError)
    expect(err).toMatchObject({ code: 'ALGO_TIMEOUT', status: 504 })
    expect(Date.now() - started).toBeLessThan(1000)
    expect(outstanding(p)).toBe(0)
    await closed()
  })

  test('headers without a line do not count as the first byte', async () => {
    const p = pool({ firstByteTimeoutMs: 200 })
    const err = await failure(p.query({ body: ask('first_line_delay_ms=5000'), requestId: 'r4', signal: live() }))
    expect(err).toMatchObject({ code: 'ALGO_TIMEOUT' })
    await closed()
  })

  test('silence past idleTimeoutMs between lines → ALGO_TIMEOUT after the lines received', async () => {
    const p = pool({ idleTimeoutMs: 200 })
    const stream = await p.query({ body: ask('mode=stall fail_after=3'), requestId: 'r5', signal: live() })
    const seen: unknown[] = []
    const err = await failure((async () => { for await (const i of each(stream.batches)) seen.push(i) })())
    expect(seen).toHaveLength(3)
    expect(err).toMatchObject({ code: 'ALGO_TIMEOUT' })
    expect(outstanding(p)).toBe(0)
    await closed()
  })

  test('a pause past the idle timeout (silence_ms) is cut too', async () => {
    const p = pool({ idleTimeoutMs: 150 })
    const stream = await p.query({ body: ask('silence_ms=1000 fail_after=2'), requestId: 'r6', signal: live() })
    expect(await failure(collect(each(stream.batches)))).toMatchObject({ code: 'ALGO_TIMEOUT' })
    await closed()
  })

  test('blank keep-alive lines are not silence: a think longer than the idle timeout, heartbeating, is not cut', async () => {
    const enc = new TextEncoder()
    const fake = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: () =>
        new Response(
          new ReadableStream<Uint8Array>({
            async start(c) {
              c.enqueue(enc.encode('{"type":"retrieval_start"}\n'))
              for (let i = 0; i < 6; i++) {
                await Bun.sleep(60)
                c.enqueue(enc.encode('\n'))
              }
              c.enqueue(enc.encode('{"type":"content","content":"late"}\n'))
              c.close()
            },
          }),
          { headers: { 'content-type': 'application/x-ndjson' } },
        ),
    })
    try {
      const p = createUpstreamPool({ urls: [`http://127.0.0.1:${fake.port}`], firstByteTimeoutMs: 1000, idleTimeoutMs: 150, healthIntervalMs: 0, userAgent: 'test' })
      const stream = await p.query({ body: ask('x'), requestId: 'keepalive', signal: live() })
      const items = await collect(each(stream.batches))
      expect(items.map((i) => (i.kind === 'line' ? i.value.type : 'invalid'))).toEqual(['retrieval_start', 'content'])
    } finally {
      await fake.stop(true)
    }
  })

  test('a slow reader is not an idle upstream', async () => {
    const p = pool({ idleTimeoutMs: 100 })
    const stream = await p.query({ body: ask('chunks=3'), requestId: 'r7', signal: live() })
    let n = 0
    for await (const _ of each(stream.batches)) {
      n++
      await Bun.sleep(150)
    }
    expect(n).toBe(8)
  })

  test('once read to its end, or once it failed, the stream hands out nothing more and holds no slot', async () => {
    const p = pool()
    const done = { done: true as const, value: undefined }
    const ended = await p.query({ body: ask('chunks=2'), requestId: 'r7b', signal: live() })
    expect(await collect(each(ended.batches))).toHaveLength(7)
    expect(await ended.batches.next()).toEqual(done)
    const failed = await p.query({ body: ask('mode=drop_mid fail_after=2'), requestId: 'r7c', signal: live() })
    expect(await failure(collect(each(failed.batches)))).toMatchObject({ code: 'STREAM_ERROR' })
    expect(await failed.batches.next()).toEqual(done)
    expect(await failed.batches.return(undefined)).toEqual(done)
    expect(outstanding(p)).toBe(0)
    await closed()
  })

  test('leaving the loop early closes the upstream request', async () => {
    const p = pool()
    const stream = await p.query({ body: ask('chunks=100000 delay_ms=10'), requestId: 'r8', signal: live() })
    let n = 0
    for await (const _ of each(stream.batches)) if (++n === 3) break
    expect(outstanding(p)).toBe(0)
    await closed()
  })

  test('cancel() mid-stream closes the upstream request at once and it stops generating', async () => {
    const p = pool()
    const stream = await p.query({ body: ask('chunks=100000 delay_ms=10'), requestId: 'r8b', signal: live() })
    await stream.batches.next()
    await stream.batches.next()
    expect(sim.stats.queriesOpen).toBe(1)
    stream.cancel('client_cancelled')
    expect(outstanding(p)).toBe(0)
    await closed()
    const linesAfter = sim.stats.queryLinesGenerated
    expect(await failure(stream.batches.next())).toMatchObject({ name: 'AbortError', message: 'client_cancelled' })
    await Bun.sleep(60)
    expect(sim.stats.queryLinesGenerated).toBe(linesAfter)
  })

  test('cancel() before reading anything still closes and releases', async () => {
    const p = pool()
    const stream = await p.query({ body: ask('chunks=100000 delay_ms=10'), requestId: 'r9', signal: live() })
    stream.cancel()
    expect(outstanding(p)).toBe(0)
    await closed()
    expect(await failure(stream.batches.next())).toMatchObject({ name: 'AbortError' })
  })

  test('the request signal aborts mid-stream', async () => {
    const p = pool()
    const ctrl = new AbortController()
    const stream = await p.query({ body: ask('chunks=100000 delay_ms=10'), requestId: 'r10', signal: ctrl.signal })
    await stream.batches.next()
    const pending = stream.batches.next().then(() => stream.batches.next())
    ctrl.abort(new Error('client went away'))
    expect(await failure(pending)).toMatchObject({ message: 'client went away' })
    expect(outstanding(p)).toBe(0)
    await closed()
  })

  test('the request signal aborts before the first byte: query rejects and the upstream closes', async () => {
    const p = pool({ firstByteTimeoutMs: 10_000 })
    const ctrl = new AbortController()
    const pending = p.query({ body: ask('first_byte_delay_ms=10000'), requestId: 'r11', signal: ctrl.signal })
    await waitFor(() => sim.stats.queriesOpen === 1, 'the request to reach the upstream')
    ctrl.abort(new Error('gone'))
    expect(await failure(pending)).toMatchObject({ message: 'gone' })
    expect(outstanding(p)).toBe(0)
    await closed()
  })

  test('an already aborted signal sends nothing', async () => {
    const p = pool()
    const before = sim.stats.queriesStarted
    const ctrl = new AbortController()
    ctrl.abort(new Error('too late'))
    expect(await failure(p.query({ body: ask(), requestId: 'r12', signal: ctrl.signal }))).toMatchObject({
      message: 'too late',
    })
    expect(sim.stats.queriesStarted).toBe(before)
  })

  test('an oversized line is a STREAM_ERROR and closes the request', async () => {
    const p = pool()
    const stream = await p.query({ body: ask('mode=oversized_line fail_after=2 delay_ms=5'), requestId: 'r13', signal: live() })
    expect(await failure(collect(each(stream.batches)))).toMatchObject({ code: 'STREAM_ERROR' })
    expect(outstanding(p)).toBe(0)
    await closed()
  })

  test('many streams in parallel, ending every way, all leave the count at zero', async () => {
    const p = pool()
    const modes = ['chunks=5', 'mode=drop_mid fail_after=2', 'mode=stall fail_after=1', 'chunks=1000 delay_ms=5']
    const runs = Array.from({ length: 40 }, async (_, i) => {
      // A reset can beat the read of the lines before it (a stream's error discards its queue), so a drop may
      // also surface from query() itself: either way it is an UpstreamError, never a leak.
      const stream = await p.query({ body: ask(modes[i % 4]), requestId: `par${i}`, signal: AbortSignal.timeout(300) })
      await collect(each(stream.batches))
    })
    const results = await Promise.allSettled(runs)
    // Only the short answers finish inside the 300 ms the caller allows; drops, stalls and long ones end early.
    expect(results.map((r) => r.status === 'fulfilled')).toEqual(Array.from({ length: 40 }, (_, i) => i % 4 === 0))
    expect(outstanding(p)).toBe(0)
    await closed()
  })
})
