/**
 * DB_STATEMENT_TIMEOUT_S on Postgres: a statement past it is cancelled by the server and its request answered
 * 503 (retryable), not held for as long as a lock elsewhere lasts; migrations, which may rightly take longer,
 * are not bound by it. The gateway's sessions carry its name in pg_stat_activity.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { sql } from 'drizzle-orm'
import postgres from 'postgres'
import { APPLICATION_NAME } from '../../src/db/client'
import { migrate, MIGRATION_LOCK_KEY, openDatabase, rowsOf, type DatabaseHandle } from '../../src/db'
import { createTestApp, jsonRequest, TEST_ADMIN_PASSWORD, type TestApp } from '../helpers/app'
import { rejectionOf } from '../helpers/rejection'
import { ci, createThrowawayDatabase, hasPostgres } from '../helpers/services'

if (ci && !hasPostgres) throw new Error('statement-timeout.test needs Postgres under CI=true')

describe.skipIf(!hasPostgres)('postgres: the statement timeout', () => {
  let database: Awaited<ReturnType<typeof createThrowawayDatabase>>
  beforeAll(async () => {
    database = await createThrowawayDatabase()
  })
  afterAll(() => database.drop())

  test('a statement past it is cancelled (57014) when the timeout passes; the session is named', async () => {
    const h = await openDatabase({ url: database.url, dataDir: '/nonexistent', statementTimeoutMs: 300 })
    try {
      const started = performance.now()
      const err = await rejectionOf(h.db.execute(sql`select pg_sleep(5)`))
      expect(performance.now() - started).toBeLessThan(2000)
      expect((err as { cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code).toBe('57014')
      expect(rowsOf<{ name: string }>(await h.db.execute(sql`select current_setting('application_name') as name`))[0]!.name).toBe(APPLICATION_NAME)
    } finally {
      await h.close()
    }
  })

  test('migrations are not bound by it: waiting 600 ms for another instance\'s lock under a 200 ms timeout', async () => {
    const h: DatabaseHandle = await openDatabase({ url: database.url, dataDir: '/nonexistent', statementTimeoutMs: 200 })
    const other = postgres(database.url, { max: 1, onnotice: () => {} })
    try {
      await other`select pg_advisory_lock(${MIGRATION_LOCK_KEY.toString()}::bigint)`
      const running = migrate(h)
      await Bun.sleep(600)
      await other`select pg_advisory_unlock(${MIGRATION_LOCK_KEY.toString()}::bigint)`
      await running
      const [tenants] = await other`select to_regclass('public.tenants')::text as t`
      expect(tenants!.t).toBe('tenants')
    } finally {
      await other.end()
      await h.close()
    }
  })

  describe('a request meeting a table locked elsewhere', () => {
    let gw: TestApp
    beforeAll(async () => {
      gw = await createTestApp({ DATABASE_URL: database.url, DB_STATEMENT_TIMEOUT_S: '1' })
    })
    afterAll(() => gw.close())

    test('is answered 503 SERVICE_UNAVAILABLE with Retry-After once the timeout passes, and works again after', async () => {
      const login = () => gw.request('/api/v2/auth/login', jsonRequest('POST', { email: 'admin@example.com', password: TEST_ADMIN_PASSWORD }))
      expect((await login()).status).toBe(200)
      const dba = postgres(database.url, { max: 1, onnotice: () => {} })
      try {
        const holding = dba.begin(async (tx) => {
          await tx`lock table users in access exclusive mode`
          await Bun.sleep(3000)
        })
        await Bun.sleep(100)
        const started = performance.now()
        const res = await login()
        expect(performance.now() - started).toBeLessThan(2500)
        expect(res.status).toBe(503)
        expect(res.headers.get('retry-after')).toBe('1')
        expect(await res.json()).toMatchObject({ code: 'SERVICE_UNAVAILABLE', error: 'The database did not answer in time; try again shortly' })
        await holding
      } finally {
        await dba.end()
      }
      expect((await login()).status).toBe(200)
    }, 15_000)
  })
})
