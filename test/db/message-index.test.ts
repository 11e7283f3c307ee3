/**
 * A conversation's messages are found without reading the rest of its tenant's, on both drivers and without
 * planner statistics (PGlite has no autovacuum and is analysed every 10 minutes; a Postgres may run without
 * autovacuum). With a second index on `tenant_id` beside the conversation's, such a planner ANDed the two: the
 * history read of every chat turn and each probe of the lost-answer sweep read the whole tenant's index, and the
 * sweep after a start (a day of questions, a probe each) took minutes, holding PGlite — the gateway's event loop.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { bootstrap, migrate, openDatabase, rawQuery, type DatabaseHandle } from '../../src/db'
import { idAt, UNANSWERED } from '../../src/modules/chat/lost'
import { ci, createThrowawayDatabase, hasPostgres } from '../helpers/services'

if (ci && !hasPostgres) throw new Error('message-index.test needs Postgres under CI=true')

/** answered questions, each in its own conversation of one tenant */
const CONVERSATIONS = 20_000

/** shared buffers (pages) the statement touched, from EXPLAIN (ANALYZE, BUFFERS) */
async function pagesRead(db: DatabaseHandle, text: string, params: unknown[]): Promise<number> {
  const [row] = await rawQuery<Record<string, unknown>>(db, `explain (analyze, buffers, format json) ${text}`, params)
  const raw = Object.values(row!)[0]
  const plan = (typeof raw === 'string' ? JSON.parse(raw) : raw) as Array<{ Plan: Record<string, number> }>
  return plan[0]!.Plan['Shared Hit Blocks']! + plan[0]!.Plan['Shared Read Blocks']!
}

function suite(open: () => Promise<{ url?: string; drop?: () => Promise<void> }>) {
  let db: DatabaseHandle
  let drop: (() => Promise<void>) | undefined
  const firstMs = Date.now() - 3_600_000

  beforeAll(async () => {
    const target = await open()
    drop = target.drop
    db = await openDatabase({ url: target.url, dataDir: '/nonexistent', pgliteVacuumIntervalMs: 0 })
    await migrate(db)
    await bootstrap(db.db, { adminEmail: 'admin@example.com', adminPassword: 'index-test-password', allowSignupDefault: false })
    const [admin] = await rawQuery<{ id: string }>(db, `select id from users where tenant_id = 'default' limit 1`, [])
    // ids as the gateway makes them: msg_<ms in hex>…, the answer a millisecond after its question
    const id = (prefix: string, ms: string, g: string) => `'${prefix}_' || lpad(to_hex(${ms}), 12, '0') || '7' || lpad(to_hex(${g}), 19, '0')`
    await rawQuery(db, `insert into conversations (id, tenant_id, user_id, title) select ${id('conv', '$1::bigint + g', 'g')}, 'default', $2, 't' from generate_series(1, $3) g`, [firstMs, admin!.id, CONVERSATIONS])
    await rawQuery(
      db,
      `insert into messages (id, tenant_id, conversation_id, user_id, role, content, request_id)
       select ${id('msg', '$1::bigint + 2 * g', 'g')}, 'default', ${id('conv', '$1::bigint + g', 'g')}, $2, 'user', 'why?', 'req-' || g from generate_series(1, $3) g
       union all
       select ${id('msg', '$1::bigint + 2 * g + 1', 'g')}, 'default', ${id('conv', '$1::bigint + g', 'g')}, $2, 'assistant', 'because', 'req-' || g from generate_series(1, $3) g`,
      [firstMs, admin!.id, CONVERSATIONS],
    )
  }, 120_000)
  afterAll(async () => {
    await db?.close()
    await drop?.()
  })

  test('a conversation\'s newest messages (the history sent upstream each turn) and its first page read a few pages, not the tenant\'s', async () => {
    const [{ id: conversation }] = await rawQuery<{ id: string }>(db, `select id from conversations order by id offset $1 limit 1`, [CONVERSATIONS / 2]) as [{ id: string }]
    const history = `select role, content from messages where tenant_id = 'default' and conversation_id = $1 and content <> '' order by id desc limit 20`
    const page = `select * from messages where tenant_id = 'default' and conversation_id = $1 order by id asc limit 51`
    // 5 or 6 pages; ANDed with the tenant's index, ~40 here, and growing with the tenant
    expect(await pagesRead(db, history, [conversation])).toBeLessThan(12)
    expect(await pagesRead(db, page, [conversation])).toBeLessThan(12)
  })

  test('the lost-answer sweep over a day of answered questions: a few pages per question, and none found', async () => {
    const range = [idAt(firstMs - 24 * 3_600_000), idAt(Date.now())]
    expect(await rawQuery(db, UNANSWERED, range)).toEqual([])
    // ~4 pages a question (150 ms); ANDed with the tenant's index, 37 a question and 20–30 s here, growing with the tenant
    expect(await pagesRead(db, UNANSWERED, range)).toBeLessThan(CONVERSATIONS * 6)
  }, 60_000)
}

describe('PGlite', () => suite(async () => ({ url: 'memory://' })))

describe.skipIf(!hasPostgres)('Postgres', () => suite(createThrowawayDatabase))
