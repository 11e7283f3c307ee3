/**
 * Real Postgres and Redis for the suites that are about them.
 *
 * URLs come from TEST_DATABASE_URL / TEST_REDIS_URL, then DATABASE_URL / REDIS_URL, then the local defaults.
 * When a server cannot be reached a suite is skipped with the reason printed — except under CI=true, where
 * the suite fails instead, so nothing that needs a server can skip silently on CI.
 */
import postgres from 'postgres'

export const ci = process.env.CI === 'true' || process.env.CI === '1'

export const postgresUrl =
  process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
export const redisUrl = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

async function tcpReachable(url: string, fallbackPort: number): Promise<boolean> {
  const u = new URL(url)
  const port = Number(u.port || fallbackPort)
  try {
    const socket = await Promise.race([
      Bun.connect({ hostname: u.hostname, port, socket: { data() {} } }),
      Bun.sleep(1000).then(() => {
        throw new Error('timeout')
      }),
    ])
    socket.end()
    return true
  } catch {
    return false
  }
}

async function availability(name: string, url: string, port: number): Promise<boolean> {
  if (await tcpReachable(url, port)) return true
  if (ci) throw new Error(`${name} is required under CI=true but ${redact(url)} is not reachable`)
  console.warn(`[skip] ${name} suites skipped: ${redact(url)} is not reachable (set CI=true to make this fail)`)
  return false
}

function redact(url: string): string {
  const u = new URL(url)
  if (u.password) u.password = '***'
  return u.toString()
}

/** true when the suite may run against Postgres; throws under CI when it cannot. */
export const hasPostgres = await availability('Postgres', postgresUrl, 5432)
/** true when the suite may run against Redis; throws under CI when it cannot. */
export const hasRedis = await availability('Redis', redisUrl, 6379)

/** A fresh database on the Postgres server for one test file; dropped by the returned cleanup. */
export async function createThrowawayDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `vh_test_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
  const admin = postgres(postgresUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`CREATE DATABASE ${name}`)
  await admin.end()
  const u = new URL(postgresUrl)
  u.pathname = `/${name}`
  return {
    url: u.toString(),
    async drop() {
      const a = postgres(postgresUrl, { max: 1, onnotice: () => {} })
      await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await a.end()
    },
  }
}
