/**
 * GET /health through the gateway's whole middleware stack against a bare Bun.serve handler, same run,
 * alternating rounds so that both see the same machine state.
 *
 *   bun bench/health.ts [--seconds 10] [--connections 50] [--rounds 3]
 *   BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… adds the gateway on Postgres + Redis
 */
import { parseArgs } from 'node:util'
import { machine, spawnTarget, type Target, wrk, type WrkResult } from './lib'

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' }, rounds: { type: 'string', default: '3' } },
})
const seconds = Number(values.seconds)
const connections = Number(values.connections)
const rounds = Number(values.rounds)

const gatewayEnv = {
  LOG_LEVEL: 'warn',
  HOST: '127.0.0.1',
  BOOTSTRAP_ADMIN_PASSWORD: 'bench-password',
  DATA_DIR: '/tmp/vh-bench-data',
}
const targets: Target[] = [
  await spawnTarget('bare Bun.serve', 'bench/targets/bare-health.ts', {}),
  await spawnTarget('gateway /health (embedded PGlite + memory store)', 'src/index.ts', {
    ...gatewayEnv,
    DATABASE_URL: 'memory://',
  }),
]
// The production shape, when the servers are here: Postgres and Redis instead of the embedded defaults.
if (process.env.BENCH_DATABASE_URL && process.env.BENCH_REDIS_URL) {
  targets.push(
    await spawnTarget('gateway /health (Postgres + Redis)', 'src/index.ts', {
      ...gatewayEnv,
      DATABASE_URL: process.env.BENCH_DATABASE_URL,
      REDIS_URL: process.env.BENCH_REDIS_URL,
    }),
  )
}
const results = new Map<string, WrkResult[]>()
try {
  for (const t of targets) await wrk(`${t.url}/health`, { connections, seconds: 2 }) // warm-up
  for (let round = 0; round < rounds; round++) {
    for (const t of rotate(targets, round)) {
      const r = await wrk(`${t.url}/health`, { connections, seconds })
      results.set(t.name, [...(results.get(t.name) ?? []), r])
    }
  }
} finally {
  for (const t of targets) await t.stop()
}

function rotate<T>(xs: T[], by: number): T[] {
  const k = by % xs.length
  return [...xs.slice(k), ...xs.slice(0, k)]
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const rows = targets.map((t) => {
  const rs = results.get(t.name)!
  return {
    name: t.name,
    rps: median(rs.map((r) => r.requestsPerSec)),
    p50: median(rs.map((r) => r.p50Ms)),
    p99: median(rs.map((r) => r.p99Ms)),
    errors: rs.reduce((a, r) => a + r.errors, 0),
  }
})
const bare = rows[0]!.rps
console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}`)
console.log(`wrk -t1 -c${connections} -d${seconds}s, ${rounds} alternating rounds (median), loopback\n`)
console.log('| target | requests/s | vs bare | p50 ms | p99 ms | errors |')
console.log('|---|---:|---:|---:|---:|---:|')
for (const r of rows) {
  console.log(`| ${r.name} | ${Math.round(r.rps)} | ${((r.rps / bare) * 100).toFixed(0)}% | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} |`)
}
