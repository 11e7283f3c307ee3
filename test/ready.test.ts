/**
 * /ready follows the real servers: 503 naming the dependency when Postgres, Redis or every upstream is
 * stopped, and 200 again once they return — without restarting the gateway.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, type TestApp } from './helpers/app'
import { type PrivateServer, privatePostgresAvailable, startPrivatePostgres } from './helpers/private-servers'
import { RedisServer } from './helpers/redis-server'
import { ci } from './helpers/services'

const canRun = privatePostgresAvailable && Bun.which('redis-server') !== null
if (!canRun && ci) throw new Error('ready.test needs the Postgres 15 binaries and redis-server under CI=true')

type ReadyBody = { status: string; checks: Record<string, { status: string; latency_ms: number }> }

describe.skipIf(!canRun)('/ready against real servers that stop and return', () => {
  let pg: PrivateServer
  let redis: RedisServer
  let upstream: ReturnType<typeof Bun.serve>
  let upstreamUp = true
  let gw: TestApp

  beforeAll(async () => {
    redis = await RedisServer.onFreePort()
    ;[pg] = await Promise.all([startPrivatePostgres(), redis.start()])
    upstream = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: () => (upstreamUp ? Response.json({ status: 'healthy' }) : new Response('down', { status: 503 })),
    })
    gw = await createTestApp({
      DATABASE_URL: pg.url,
      REDIS_URL: redis.url,
      ALGO_SERVICE_URL: `http://127.0.0.1:${upstream.port}`,
    })
  }, 60_000)

  afterAll(async () => {
    await gw?.close()
    upstream?.stop(true)
    await Promise.all([pg?.destroy(), redis?.kill()])
  })

  async function ready(): Promise<{ status: number; body: ReadyBody; ms: number }> {
    const started = performance.now()
    const res = await gw.request('/ready')
    return { status: res.status, body: (await res.json()) as ReadyBody, ms: performance.now() - started }
  }

  async function eventually(predicate: (r: Awaited<ReturnType<typeof ready>>) => boolean, timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs
    let last = await ready()
    while (!predicate(last) && Date.now() < deadline) {
      await Bun.sleep(200)
      last = await ready()
    }
    return last
  }

  test('all up → 200', async () => {
    const r = await ready()
    expect(r.status).toBe(200)
    expect(r.body.status).toBe('ready')
  })

  /** Stops a server, expects a fast 503 naming it (and only it), restarts it, expects 200 again. */
  async function outageRoundTrip(server: { stop(): Promise<void>; start(): Promise<void> }, down: string, up: string) {
    await server.stop()
    const during = await eventually((r) => r.status === 503)
    expect(during.status).toBe(503)
    expect(during.body.checks[down]!.status).toBe('down')
    expect(during.body.checks[up]!.status).toBe('up')
    expect(during.ms).toBeLessThan(2500)
    await server.start()
    const back = await eventually((r) => r.status === 200)
    expect(back.status).toBe(200)
    expect(back.body.checks[down]!.status).toBe('up')
  }

  test('Postgres stopped → 503 naming the database, fast; back → 200', async () => {
    await outageRoundTrip(pg, 'database', 'store')
  }, 40_000)

  test('Redis stopped → 503 naming the store, fast; back → 200', async () => {
    await outageRoundTrip({ stop: () => redis.kill(), start: () => redis.start() }, 'store', 'database')
  }, 40_000)

  test('every upstream down → 503 naming the upstream; back → 200', async () => {
    upstreamUp = false
    const down = await ready()
    expect(down.status).toBe(503)
    expect(down.body.checks.upstream!.status).toBe('down')
    upstreamUp = true
    expect((await ready()).status).toBe(200)
  })
})
