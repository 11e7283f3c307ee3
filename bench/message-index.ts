/**
 * How a tenant's size weighs on one conversation's reads and on the lost-answer sweep, with the messages table's
 * indexes as migrated (one on tenant_id, conversation_id, id) against the two it had before (conversation_id, id
 * and tenant_id, created_at), on a planner without statistics (PGlite before its first ANALYZE; a Postgres
 * without autovacuum). One tenant, N conversations of an answered question; the sweep's query
 * (src/modules/chat/lost.ts) over all of them, then a conversation's newest messages (the history sent upstream
 * each turn) and its first page, as the conversations service builds them. Each statement's execution time and the pages it touched, from EXPLAIN (ANALYZE,
 * BUFFERS): median of 50 runs after 50 unmeasured (the sweep: of 2 after 2).
 *
 *   bun bench/message-index.ts [--conversations 8000]
 *   BENCH_DATABASE_URL=postgres://… (a database it may fill and empty) adds Postgres
 */
import { parseArgs } from 'node:util'
import { migrate, openDatabase, rawQuery, type DatabaseHandle } from '../src/db'
import { idAt, UNANSWERED } from '../src/modules/chat/lost'
import { HISTORY_TURNS } from '../src/modules/chat/service'
import { latestTurns, messagesPage } from '../src/modules/conversations/service'
import { answeredConversations, explained, statement } from '../test/helpers/answered'
import { machine } from './lib'

const { values: args } = parseArgs({ options: { conversations: { type: 'string', default: '8000' } } })
const N = Number(args.conversations)

const BEFORE = [
  'create index messages_conversation_id_idx on messages (conversation_id, id)',
  'create index messages_tenant_created_idx on messages (tenant_id, created_at)',
  'drop index messages_conversation_idx',
]

/** median by execution time of `times` runs after as many unmeasured */
async function executed(db: DatabaseHandle, [text, params]: [string, unknown[]], times: number): Promise<{ ms: number; pages: number }> {
  const runs: Array<{ ms: number; pages: number }> = []
  for (let i = 0; i < 2 * times; i++) {
    const run = await explained(db, text, params)
    if (i >= times) runs.push(run)
  }
  runs.sort((a, b) => a.ms - b.ms)
  return runs[runs.length >> 1]!
}

async function measure(driver: string, url: string | undefined, schema: 'one index' | 'two indexes') {
  const db = await openDatabase({ url, dataDir: '/nonexistent', pgliteVacuumIntervalMs: 0 })
  try {
    if (url?.startsWith('postgres')) await rawQuery(db, 'drop schema public cascade; create schema public; drop schema if exists drizzle cascade', [])
    await migrate(db)
    if (schema === 'two indexes') for (const s of BEFORE) await rawQuery(db, s, [])
    const firstMs = Date.now() - 3_600_000
    const conversation = await answeredConversations(db, N, firstMs)
    const range = [idAt(firstMs - 24 * 3_600_000), idAt(Date.now())]
    const sweep = await executed(db, [UNANSWERED, range], 2)
    const c = { id: conversation, tenantId: 'default' }
    const history = await executed(db, statement(latestTurns(db.db, c, HISTORY_TURNS)), 50)
    const page = await executed(db, statement(messagesPage(db.db, c, undefined, 21)), 50)
    const cell = (r: { ms: number; pages: number }, digits: number) => `${r.ms.toFixed(digits)} ms, ${r.pages.toLocaleString('en-US')} pages`
    console.log(`| ${driver} | ${schema} | ${N.toLocaleString('en-US')} | ${cell(sweep, 0)} | ${cell(history, 3)} | ${cell(page, 3)} |`)
  } finally {
    await db.close()
  }
}

console.log(`${machine()}; one tenant, ${N} conversations of an answered question, never analysed\n`)
console.log('| driver | messages indexes | conversations | sweep query | history read | first page |')
console.log('|---|---|---:|---:|---:|---:|')
const drivers: Array<[string, string | undefined]> = [['PGlite', 'memory://']]
if (process.env.BENCH_DATABASE_URL) drivers.push(['Postgres', process.env.BENCH_DATABASE_URL])
for (const [driver, url] of drivers) for (const schema of ['one index', 'two indexes'] as const) await measure(driver, url, schema)
