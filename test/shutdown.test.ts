/**
 * SIGTERM drain with a real process: stop accepting, /ready 503 for what is still in flight, let
 * in-flight requests finish within SHUTDOWN_GRACE_S, then exit 0 — and never wait past the grace.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './helpers/private-servers'
import { bareEnv, type GatewayProcess, spawnGateway } from './helpers/process'
import { rejectionOf } from './helpers/rejection'

// A fake algorithm service whose health check answers slowly, so that /ready stays in flight.
let healthDelayMs = 0
const upstream = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch() {
    await Bun.sleep(healthDelayMs)
    return Response.json({ status: 'healthy' })
  },
})
const running: GatewayProcess[] = []
afterAll(async () => {
  for (const gw of running) if (gw.proc.exitCode === null) gw.proc.kill('SIGKILL')
  upstream.stop(true)
})

async function start(graceS: number): Promise<GatewayProcess> {
  const port = await freePort()
  const gw = spawnGateway({
    cwd: mkdtempSync(join(tmpdir(), 'vh-drain-')),
    port,
    env: bareEnv({
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: 'memory://',
      ALGO_SERVICE_URL: `http://127.0.0.1:${upstream.port}`,
      SHUTDOWN_GRACE_S: String(graceS),
      READY_CHECK_TIMEOUT_MS: '10000',
      BOOTSTRAP_ADMIN_PASSWORD: 'drain-test-password',
    }),
  })
  running.push(gw)
  await gw.waitUntilListening()
  return gw
}

describe('SIGTERM', () => {
  test('an in-flight request finishes (seeing 503 from /ready), new connections are refused, exit 0', async () => {
    const gw = await start(10)
    healthDelayMs = 1500
    const inflight = fetch(`${gw.baseUrl}/ready`)
    await Bun.sleep(300)
    const signalled = performance.now()
    gw.proc.kill('SIGTERM')
    await Bun.sleep(200)
    expect(await rejectionOf(fetch(`${gw.baseUrl}/health`))).toBeInstanceOf(Error)
    const res = await inflight
    expect(res.status).toBe(503)
    expect(await res.json()).toMatchObject({ draining: true })
    expect(await gw.proc.exited).toBe(0)
    const tookMs = performance.now() - signalled
    expect(tookMs).toBeGreaterThan(900)
    expect(tookMs).toBeLessThan(5000)
    expect(gw.logs.some((l) => l.msg === 'drained; exiting' && l.unfinished_requests === 0)).toBe(true)
  }, 30_000)

  test('a request that outlives the grace period does not hold the process', async () => {
    const gw = await start(1)
    healthDelayMs = 8000
    const inflight = fetch(`${gw.baseUrl}/ready`).catch((err: unknown) => err)
    await Bun.sleep(300)
    const signalled = performance.now()
    gw.proc.kill('SIGTERM')
    expect(await gw.proc.exited).toBe(0)
    const tookMs = performance.now() - signalled
    expect(tookMs).toBeGreaterThan(900)
    expect(tookMs).toBeLessThan(4000)
    expect(gw.logs.some((l) => l.msg === 'drained; exiting' && l.unfinished_requests === 1)).toBe(true)
    await inflight
    healthDelayMs = 0
  }, 30_000)
})
