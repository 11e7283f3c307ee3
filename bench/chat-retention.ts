/**
 * What a finished chat stream costs the gateway's heap while it is kept for replay (embedded store: the run's
 * events stay in memory for CHAT_REPLAY_TTL_S, up to CHAT_REPLAY_MAX_BYTES). One process: the simulator and the
 * gateway's app (`app.handle`, no sockets), bursts of streams, then after a full GC the heap's growth and its
 * object counts per stream, and what a full collection costs with them kept.
 *
 *   bun bench/chat-retention.ts [--bursts 30] [--streams 200] [--chunks 200]
 *   BENCH_DATABASE_URL=postgres://… keeps the messages in Postgres (else in-memory PGlite, whose growth counts too)
 */
import { heapStats } from 'bun:jsc'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createApp } from '../src/app'
import { loadConfig } from '../src/config'
import { createDeps } from '../src/deps'
import { createLogger } from '../src/observability/logger'
import { startSimulator } from '../src/simulator/server'
import { machine, RAISED_QUOTAS } from './lib'

const { values: args } = parseArgs({
  options: { bursts: { type: 'string', default: '30' }, streams: { type: 'string', default: '200' }, chunks: { type: 'string', default: '200' } },
})
const BURSTS = Number(args.bursts)
const STREAMS = Number(args.streams)
const CHUNKS = Number(args.chunks)

const sim = await startSimulator()
const password = 'bench-password-123'
const config = loadConfig({
  DATABASE_URL: process.env.BENCH_DATABASE_URL ?? 'memory://',
  DATA_DIR: mkdtempSync(join(tmpdir(), 'vh-bench-retention-')),
  JWT_SECRET: 'bench-secret-bench-secret-bench-secret-0123',
  BOOTSTRAP_ADMIN_PASSWORD: password,
  ALGO_SERVICE_URL: sim.url,
  LOG_LEVEL: 'warn',
})
const deps = await createDeps(config, { logger: createLogger({ level: 'warn' }) })
const app = createApp(deps)
const call = (path: string, init: RequestInit) => app.handle(new Request(`http://localhost${path}`, init))
const json = { 'content-type': 'application/json' }
const login = await call('/api/v2/auth/login', { method: 'POST', headers: json, body: JSON.stringify({ email: 'admin@example.com', password }) })
const { access_token } = (await login.json()) as { access_token: string }
const headers = { ...json, authorization: `Bearer ${access_token}` }
const patched = await call('/api/v2/admin/tenants/default', { method: 'PATCH', headers, body: JSON.stringify({ quotas: RAISED_QUOTAS }) })
if (!patched.ok) throw new Error(`quotas: ${patched.status}`)

const body = JSON.stringify({ message: `retention [[sim chunks=${CHUNKS}]]` })
async function burst(): Promise<number> {
  const texts = await Promise.all(Array.from({ length: STREAMS }, async () => (await call('/api/v2/chat/stream', { method: 'POST', headers, body })).text()))
  return texts.reduce((n, t) => n + t.length, 0)
}

/** a full collection's wall and CPU ms (this process: the collector's helper threads too), median of 5 */
function fullGcMs(): { wall: number; cpu: number } {
  const walls: number[] = []
  const cpus: number[] = []
  for (let i = 0; i < 5; i++) {
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    Bun.gc(true)
    walls.push(performance.now() - t0)
    const c = process.cpuUsage(c0)
    cpus.push((c.user + c.system) / 1000)
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[2]!
  return { wall: median(walls), cpu: median(cpus) }
}

await burst() // warm-up: modules, caches, the first compilations
Bun.gc(true)
const gcBefore = fullGcMs()
const before = heapStats()
let chars = 0
for (let b = 0; b < BURSTS; b++) chars += await burst()
Bun.gc(true)
const gcAfter = fullGcMs()
const after = heapStats()
const streams = BURSTS * STREAMS
const counts = Object.entries(after.objectTypeCounts as Record<string, number>)
  .map(([type, n]) => [type, (n - ((before.objectTypeCounts as Record<string, number>)[type] ?? 0)) / streams] as const)
  .filter(([, n]) => n >= 0.5)
  .sort((a, b) => b[1] - a[1])
console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}; ${streams} streams of ${CHUNKS} chunks kept for replay (${config.databaseUrl?.startsWith('postgres') ? 'Postgres' : 'in-memory PGlite'})\n`)
console.log(`events per stream, as the client read them: ${Math.round(chars / streams)} characters`)
console.log(`heap growth per stream: ${((after.heapSize - before.heapSize) / streams / 1024).toFixed(1)} KB; objects per stream: ${((after.objectCount - before.objectCount) / streams).toFixed(0)}`)
console.log(`a full collection: ${gcBefore.wall.toFixed(1)} ms (CPU ${gcBefore.cpu.toFixed(1)}) before the bursts, ${gcAfter.wall.toFixed(1)} ms (CPU ${gcAfter.cpu.toFixed(1)}) with the streams kept`)
console.log(`by type: ${counts.map(([t, n]) => `${t} ${n.toFixed(1)}`).join(', ')}`)
console.log(`\nCommand: \`${process.env.BENCH_DATABASE_URL ? 'BENCH_DATABASE_URL=… ' : ''}bun bench/chat-retention.ts --bursts ${BURSTS} --streams ${STREAMS} --chunks ${CHUNKS}\``)
await deps.close()
await sim.stop()
