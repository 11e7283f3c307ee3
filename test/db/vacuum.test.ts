/**
 * The embedded PGlite has no autovacuum: the handle vacuums it on a timer, so a table whose rows are updated
 * again and again (conversations: every message bumps one) reuses its space instead of growing for ever.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'drizzle-orm'
import { openDatabase, rowsOf } from '../../src/db'

setDefaultTimeout(20_000)

/** the table's size before and after `rounds` updates of every row, with a pause after each round for the timer */
async function sizeAfterUpdates(pgliteVacuumIntervalMs: number, rounds: number) {
  const logs: string[] = []
  const logger = { info: (_: object, m?: string) => logs.push(m ?? ''), warn: (_: object, m?: string) => logs.push(m ?? '') }
  const h = await openDatabase({ url: 'memory://', dataDir: '/nonexistent', logger, pgliteVacuumIntervalMs })
  try {
    await h.db.execute(sql`create table churn (id int primary key, n int, pad text)`)
    await h.db.execute(sql`insert into churn select g, 0, repeat('x', 100) from generate_series(1, 2000) g`)
    const size = async () => rowsOf<{ size: number }>(await h.db.execute(sql`select pg_relation_size('churn')::int as size`))[0]!.size
    const initial = await size()
    for (let i = 0; i < rounds; i++) {
      await h.db.execute(sql`update churn set n = n + 1`)
      await Bun.sleep(60)
    }
    return { initial, size: await size(), vacuumed: logs.filter((m) => m === 'database: vacuumed').length, failed: logs.filter((m) => m.includes('failed')).length }
  } finally {
    await h.close()
  }
}

describe('PGlite maintenance', () => {
  test('vacuumed on its timer, an often-updated table stays near its first size (without: 12 updates, 13 times it)', async () => {
    const churn = await sizeAfterUpdates(20, 12)
    expect(churn.vacuumed).toBeGreaterThan(0)
    expect(churn.failed).toBe(0)
    expect(churn.size).toBeLessThan(churn.initial * 4)
  })
})
