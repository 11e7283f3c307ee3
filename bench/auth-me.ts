/**
 * Authenticated GET /api/v2/auth/me (JWT verify + revocation check + user and tenant status + RBAC +
 * rate limits) against GET /health and a bare Bun.serve handler, same run, Postgres + Redis as the store.
 *
 *   BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… bun bench/auth-me.ts [--seconds 10] [--connections 50] [--rounds 3]
 */
import { parseArgs } from 'node:util'
import postgres from 'postgres'
import { machine, spawnTarget, type Target, wrk, type WrkResult } from './lib'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '3' },
  },
})
const seconds = Number(values.seconds)
const connections = Number(values.connections)
const rounds = Number(values.rounds)
const databaseUrl = process.env.BENCH_DATABASE_URL
const redisUrl = process.env.BENCH_REDIS_URL
if (!databaseUrl || !redisUrl) throw new Error('set BENCH_DATABASE_URL and BENCH_REDIS_URL (a throwaway database)')

const password = 'bench-password-123'
const bare = await spawnTarget('bare Bun.serve', 'bench/targets/bare-health.ts', {})
const gateway = await spawnTarget('gateway', 'src/index.ts', {
  LOG_LEVEL: 'warn',
  HOST: '127.0.0.1',
  DATABASE_URL: databaseUrl,
  REDIS_URL: redisUrl,
  BOOTSTRAP_ADMIN_PASSWORD: password,
  JWT_SECRET: 'bench-secret-bench-secret-bench-secret-0123',
  DATA_DIR: '/tmp/vh-bench-data',
})

// Quotas raised (not disabled) for the benchmark tenant, so the rate-limit path is measured too.
const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} })
await sql`update tenants set quotas = ${sql.json({ requests_per_minute_per_user: 100_000_000, requests_per_minute: 100_000_000 })} where id = 'default'`
await sql.end()
await Bun.sleep(100)
const login = await fetch(`${gateway.url}/api/v2/auth/login`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ email: 'admin@example.com', password }),
})
if (!login.ok) throw new Error(`login failed: ${login.status} ${await login.text()}`)
const { access_token } = (await login.json()) as { access_token: string }
const check = await fetch(`${gateway.url}/api/v2/auth/me`, { headers: { authorization: `Bearer ${access_token}` } })
if (check.status !== 200) throw new Error(`/auth/me answered ${check.status}`)

interface Run {
  name: string
  target: Target
  path: string
  headers?: Record<string, string>
}
const runs: Run[] = [
  { name: 'bare Bun.serve', target: bare, path: '/health' },
  { name: 'gateway GET /health', target: gateway, path: '/health' },
  { name: 'gateway GET /api/v2/auth/me (authenticated)', target: gateway, path: '/api/v2/auth/me', headers: { authorization: `Bearer ${access_token}` } },
]
const results = new Map<string, WrkResult[]>()
try {
  for (const r of runs) await wrk(r.target.url + r.path, { connections, seconds: 2, headers: r.headers })
  for (let round = 0; round < rounds; round++) {
    for (const r of [...runs.slice(round % runs.length), ...runs.slice(0, round % runs.length)]) {
      const result = await wrk(r.target.url + r.path, { connections, seconds, headers: r.headers })
      results.set(r.name, [...(results.get(r.name) ?? []), result])
    }
  }
} finally {
  await bare.stop()
  await gateway.stop()
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!
const rows = runs.map((r) => {
  const rs = results.get(r.name)!
  return { name: r.name, rps: median(rs.map((x) => x.requestsPerSec)), p50: median(rs.map((x) => x.p50Ms)), p99: median(rs.map((x) => x.p99Ms)), errors: rs.reduce((n, x) => n + x.errors, 0) }
})
const health = rows[1]!.rps
console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}`)
console.log(`wrk -t1 -c${connections} -d${seconds}s, ${rounds} rounds in rotating order (median), loopback, Postgres + Redis\n`)
console.log('| target | requests/s | vs gateway /health | p50 ms | p99 ms | non-2xx/errors |')
console.log('|---|---:|---:|---:|---:|---:|')
for (const r of rows) {
  console.log(`| ${r.name} | ${Math.round(r.rps)} | ${((r.rps / health) * 100).toFixed(0)}% | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} |`)
}
