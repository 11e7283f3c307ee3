/**
 * A conversation's messages are found without reading the rest of its tenant's, on both drivers and without
 * planner statistics (PGlite has no autovacuum and is analysed every 10 minutes; a Postgres may run without
 * autovacuum). With a second index on `tenant_id` beside the conversation's, such a planner ANDed the two: the
 * history read of every chat turn and each probe of the lost-answer sweep read the whole tenant's index, and the
 * sweep after a start (a day of questions, a probe each) took minutes, holding PGlite (and, before PGlite had
 * its own thread, the event loop).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { migrate, openDatabase, rawQuery, type DatabaseHandle } from '../../src/db'
import { idAt, UNANSWERED } from '../../src/modules/chat/lost'
import { HISTORY_TURNS } from '../../src/modules/chat/service'
import { latestTurns, messagesPage } from '../../src/modules/conversations/service'
import { answeredConversations, explained, statement } from '../helpers/answered'
import { ci, createThrowawayDatabase, hasPostgres } from '../helpers/services'

if (ci && !hasPostgres) throw new Error('message-index.test needs Postgres under CI=true')

/** answered questions, each in its own conversation of one tenant */
const CONVERSATIONS = 20_000

const pagesRead = async (db: DatabaseHandle, [text, params]: [string, unknown[]]) => (await explained(db, text, params)).pages

function suite(open: () => Promise<{ url?: string; drop?: () => Promise<void> }>) {
  let db: DatabaseHandle
  let drop: (() => Promise<void>) | undefined
  let conversation: string
  const firstMs = Date.now() - 3_600_000

  beforeAll(async () => {
    const target = await open()
    drop = target.drop
    db = await openDatabase({ url: target.url, dataDir: '/nonexistent', pgliteVacuumIntervalMs: 0 })
    await migrate(db)
    conversation = await answeredConversations(db, CONVERSATIONS, firstMs)
  }, 120_000)
  afterAll(async () => {
    await db?.close()
    await drop?.()
  })

  test('a conversation\'s newest messages (the history sent upstream each turn) and its first page, as the services read them, touch a few pages, not the tenant\'s', async () => {
    // 5 or 6 pages; ANDed with the tenant's index, ~40 here, and growing with the tenant
    const c = { id: conversation, tenantId: 'default' }
    expect(await pagesRead(db, statement(latestTurns(db.db, c, HISTORY_TURNS)))).toBeLessThan(12)
    expect(await pagesRead(db, statement(messagesPage(db.db, c, undefined, 21)))).toBeLessThan(12)
  })

  test('the lost-answer sweep over a day of answered questions: a few pages per question, and none found', async () => {
    const range = [idAt(firstMs - 24 * 3_600_000), idAt(Date.now())]
    expect(await rawQuery(db, UNANSWERED, range)).toEqual([])
    // ~4 pages a question (150 ms); ANDed with the tenant's index, 37 a question and 20–30 s here, growing with the tenant
    expect(await pagesRead(db, [UNANSWERED, range])).toBeLessThan(CONVERSATIONS * 6)
  }, 60_000)
}

describe('PGlite', () => suite(async () => ({ url: 'memory://' })))

describe.skipIf(!hasPostgres)('Postgres', () => suite(createThrowawayDatabase))
