/**
 * The README's quick start as a test: the gateway started with no configuration at all answers /health
 * and /ready, and its embedded simulator answers /query with the seed's stream.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './helpers/private-servers'
import { bareEnv, type GatewayProcess, spawnGateway } from './helpers/process'

async function portIsFree(port: number): Promise<boolean> {
  try {
    const s = Bun.listen({ hostname: '0.0.0.0', port, socket: { data() {} } })
    s.stop(true)
    return true
  } catch {
    return false
  }
}

const cwd = mkdtempSync(join(tmpdir(), 'vh-quickstart-'))
// No env at all when the default port is free; only PORT when something else holds 8080 on this machine.
const defaultPortFree = await portIsFree(8080)
const port = defaultPortFree ? 8080 : await freePort()
const env = bareEnv(defaultPortFree ? {} : { PORT: String(port) })
const running: GatewayProcess[] = []

afterAll(async () => {
  for (const gw of running) await gw.stop()
})

describe('quick start: no configuration', () => {
  let gw: GatewayProcess

  test('starts on embedded defaults and prints the generated admin password once', async () => {
    gw = spawnGateway({ env, cwd, port })
    running.push(gw)
    await gw.waitUntilListening(60_000)
    expect(gw.stderr()).toContain('password:')
    expect(gw.stderr()).toContain('admin@example.com')
  }, 70_000)

  test('/health and /ready answer 200', async () => {
    const health = await fetch(`${gw.baseUrl}/health`)
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({ status: 'healthy' })
    const ready = await fetch(`${gw.baseUrl}/ready`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toMatchObject({ status: 'ready' })
  })

  test('the embedded simulator answers /query with its NDJSON stream in the seed order', async () => {
    const line = await gw.waitForLog((l) => typeof l.url === 'string' && String(l.msg).includes('SIMULATOR'))
    const res = await fetch(`${line.url}/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hello' }], request_id: 'qs-1' }),
    })
    expect(res.status).toBe(200)
    const types = (await res.text())
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { type: string }).type)
    const order = ['retrieval_start', 'retrieval_progress', 'retrieval_result', 'generation_start', 'generation_chunk', 'generation_done']
    expect(types[0]).toBe('retrieval_start')
    expect(types.at(-1)).toBe('generation_done')
    expect(types.filter((t) => t === 'generation_chunk').length).toBeGreaterThan(0)
    const firstIndex = order.map((t) => types.indexOf(t))
    expect(firstIndex).toEqual([...firstIndex].sort((a, b) => a - b))
  })

  test('logs are JSON lines and carry no secrets', async () => {
    expect(gw.logs.length).toBeGreaterThan(0)
    expect(gw.logs.every((l) => !('unparsed' in l))).toBe(true)
    const password = /password:\s+(\S+)/.exec(gw.stderr())?.[1]
    expect(password).toBeDefined()
    expect(JSON.stringify(gw.logs)).not.toContain(password!)
  })

  test('a second start on the same data keeps the admin and prints no password; a second process beside it is refused', async () => {
    expect(await gw.stop()).toBe(0)
    const again = spawnGateway({ env, cwd, port })
    running.push(again)
    await again.waitUntilListening(60_000)
    expect(again.stderr()).not.toContain('password:')
    expect((await fetch(`${again.baseUrl}/ready`)).status).toBe(200)

    // a second gateway on the same data (another port) would write over the first's database: refused
    const second = Bun.spawn([process.execPath, join(import.meta.dir, '../src/index.ts')], {
      cwd,
      env: bareEnv({ PORT: String(await freePort()) }),
      stderr: 'pipe',
      stdout: 'ignore',
    })
    expect(await second.exited).toBe(1)
    const err = await new Response(second.stderr).text()
    expect(err).toContain(`is in use by process ${again.proc.pid}`)
    expect(err.trim().split('\n')).toHaveLength(1)
    expect((await fetch(`${again.baseUrl}/ready`)).status).toBe(200)
    expect(await again.stop()).toBe(0)
  }, 70_000)
})

describe('start-up refusals', () => {
  test('bad configuration exits non-zero listing every bad variable', async () => {
    const proc = Bun.spawn([process.execPath, join(import.meta.dir, '../src/index.ts')], {
      cwd,
      env: bareEnv({ PORT: 'eighty', REDIS_URL: 'nope', LOG_LEVEL: 'loud' }),
      stderr: 'pipe',
      stdout: 'ignore',
    })
    expect(await proc.exited).toBe(2)
    const err = await new Response(proc.stderr).text()
    for (const name of ['PORT', 'REDIS_URL', 'LOG_LEVEL']) expect(err).toContain(name)
  })

  test('production refuses generated secrets', async () => {
    const proc = Bun.spawn([process.execPath, join(import.meta.dir, '../src/index.ts')], {
      cwd,
      env: bareEnv({ NODE_ENV: 'production' }),
      stderr: 'pipe',
      stdout: 'ignore',
    })
    expect(await proc.exited).toBe(2)
    const err = await new Response(proc.stderr).text()
    expect(err).toContain('JWT_SECRET')
    expect(err).toContain('BOOTSTRAP_ADMIN_PASSWORD')
  })
})
