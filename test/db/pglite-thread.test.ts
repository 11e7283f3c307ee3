/**
 * The embedded PGlite runs in its own thread (src/db/pglite-thread.ts): a long statement must not stop the
 * gateway's event loop, and through the thread the database must behave as PGlite does in-process — errors with
 * their SQLSTATE, transactions that commit or roll back while other statements wait, Drizzle's value types.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { eq, sql } from 'drizzle-orm'
import { join } from 'node:path'
import { type DatabaseHandle, migrate, openDatabase, pgErrorCode, rowsOf } from '../../src/db'
import { tenants } from '../../src/db/schema'

// bunfig's [test] timeout is not applied by this Bun; PGlite start-up can pass 5 s on a busy machine
setDefaultTimeout(30_000)

describe('embedded PGlite in its own thread', () => {
  let h: DatabaseHandle
  beforeAll(async () => {
    h = await openDatabase({ url: 'memory://', dataDir: '/nonexistent', pgliteVacuumIntervalMs: 0 })
    await migrate(h)
  })
  afterAll(() => h?.close())

  test('a statement of a second or so leaves the event loop free: timers keep their time meanwhile', async () => {
    let last = performance.now()
    let worstGap = 0
    const ticker = setInterval(() => {
      const now = performance.now()
      worstGap = Math.max(worstGap, now - last)
      last = now
    }, 10)
    const t0 = performance.now()
    const [row] = rowsOf<{ n: string }>(await h.db.execute(sql`select count(*)::text as n from generate_series(1, 3000000) g`))
    const ran = performance.now() - t0
    clearInterval(ticker)
    expect(row!.n).toBe('3000000')
    expect(ran).toBeGreaterThan(250) // long enough that it would show in the gap if it ran on this thread
    expect(worstGap).toBeLessThan(Math.min(100, ran / 2))
  })

  test('a failed statement rejects with its SQLSTATE, constraint and detail', async () => {
    await h.db.insert(tenants).values({ id: 't-dup', name: 'one' })
    const err = await h.db.insert(tenants).values({ id: 't-dup', name: 'two' }).catch((e: unknown) => e)
    expect(pgErrorCode(err)).toBe('23505')
    expect((err as { cause?: { constraint?: string; detail?: string } }).cause).toMatchObject({ constraint: 'tenants_pkey', detail: expect.stringContaining('t-dup') })
    const bad = await h.db.execute(sql`select nope from nowhere`).catch((e: unknown) => e)
    expect(pgErrorCode(bad)).toBe('42P01')
  })

  test('a transaction that throws is rolled back; a write made meanwhile outside it waits and then lands', async () => {
    const order: string[] = []
    let outside: Promise<unknown> | undefined
    const err = await h.db
      .transaction(async (tx) => {
        await tx.insert(tenants).values({ id: 't-rolled', name: 'rolled back' })
        outside = h.db.insert(tenants).values({ id: 't-outside', name: 'outside' }).then(() => order.push('outside'))
        await Bun.sleep(50)
        order.push('tx ends')
        throw new Error('changed my mind')
      })
      .catch((e: unknown) => e)
    expect(err).toMatchObject({ message: 'changed my mind' })
    await outside
    expect(order).toEqual(['tx ends', 'outside'])
    const ids = (await h.db.select({ id: tenants.id }).from(tenants)).map((r) => r.id)
    expect(ids).toContain('t-outside')
    expect(ids).not.toContain('t-rolled')
  })

  test('a committed transaction is kept, and Drizzle reads its timestamps and jsonb back as it wrote them', async () => {
    const at = new Date('2026-01-02T03:04:05.678Z')
    await h.db.transaction(async (tx) => {
      await tx.insert(tenants).values({ id: 't-kept', name: 'kept', settings: { allow_signup: true, n: [1, 'two'] }, createdAt: at })
    })
    const [row] = await h.db.select().from(tenants).where(eq(tenants.id, 't-kept'))
    expect(row!.createdAt).toEqual(at)
    expect(row!.settings).toEqual({ allow_signup: true, n: [1, 'two'] })
  })

  test('once closed, a statement fails at once with a clear error', async () => {
    const other = await openDatabase({ url: 'memory://', dataDir: '/nonexistent', pgliteVacuumIntervalMs: 0 })
    await other.close()
    await other.close() // twice is fine
    const err = await other.db.execute(sql`select 1`).catch((e: unknown) => e)
    expect(String((err as { cause?: unknown }).cause ?? err)).toContain('the embedded database is closed')
  })
})

test('a script that opens the embedded database and never closes it still exits when its work is done', async () => {
  const client = join(import.meta.dir, '../../src/db/index.ts')
  const script = `import { openDatabase } from ${JSON.stringify(client)}; import { sql } from 'drizzle-orm'
    const h = await openDatabase({ url: 'memory://', dataDir: '/nonexistent', pgliteVacuumIntervalMs: 0 })
    await h.db.execute(sql\`select pg_sleep(0.2)\`); console.log('done')`
  const t0 = performance.now()
  const proc = Bun.spawn(['bun', '-e', script], { cwd: join(import.meta.dir, '../..'), stdout: 'pipe', stderr: 'pipe' })
  const killer = setTimeout(() => proc.kill(), 20_000)
  const code = await proc.exited
  clearTimeout(killer)
  expect({ code, out: (await new Response(proc.stdout).text()).trim() }).toEqual({ code: 0, out: 'done' })
  expect(performance.now() - t0).toBeLessThan(15_000)
})
