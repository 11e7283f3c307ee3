/**
 * How a tenant's size weighs on one conversation's reads and on the lost-answer sweep, with the messages table's
 * indexes as migrated (one on tenant_id, conversation_id, id) against the two it had before (conversation_id, id
 * and tenant_id, created_at), on a planner without statistics (PGlite before its first ANALYZE; a Postgres
 * without autovacuum). One tenant, N conversations of an answered question; the sweep's query
 * (src/modules/chat/lost.ts) over all of them, then a conversation's newest messages (the history sent upstream
 * each turn) and its first page. Each statement's execution time and the pages it touched, from EXPLAIN (ANALYZE,
 * BUFFERS): median of 50 runs after 50 unmeasured (the sweep: of 2 after 2).
 *
 *   bun bench/message-index.ts [--conversations 8000]
 *   BENCH_DATABASE_URL=postgres://… (a database it may fill and empty) adds Postgres
 */
import { parseArgs } from 'node:util'
import { bootstrap, migrate, openDatabase, rawQuery, type DatabaseHandle } from '../src/db'
import { idAt, UNANSWERED } from '../src/modules/chat/lost'
import { machine } from './lib'

const { values: args } = parseArgs({ options: { conversations: { type: 'string', default: '8000' } } })
const N = Number(args.conversations)

const BEFORE = [
  'create index messages_conversation_id_idx on messages (conversation_id, id)',
  'create index messages_tenant_created_idx on messages (tenant_id, created_at)',
  'drop index messages_conversation_idx',
]

async function fill(db: DatabaseHandle, firstMs: number): Promise<string> {
  const [admin] = await rawQuery<{ id: string }>(db, `select id from users where tenant_id = 'default' limit 1`, [])
  const id = (prefix: string, ms: string) => `'${prefix}_' || lpad(to_hex(${ms}), 12, '0') || '7' || lpad(to_hex(g), 19, '0')`
  await rawQuery(db, `insert into conversations (id, tenant_id, user_id, title) select ${id('conv', '$1::bigint + g')}, 'default', $2, 't' from generate_series(1, $3) g`, [firstMs, admin!.id, N])
  await rawQuery(
    db,
    `insert into messages (id, tenant_id, conversation_id, user_id, role, content, request_id)
     select ${id('msg', '$1::bigint + 2 * g')}, 'default', ${id('conv', '$1::bigint + g')}, $2, 'user', 'why?', 'req-' || g from generate_series(1, $3) g
     union all
     select ${id('msg', '$1::bigint + 2 * g + 1')}, 'default', ${id('conv', '$1::bigint + g')}, $2, 'assistant', 'because', 'req-' || g from generate_series(1, $3) g`,
    [firstMs, admin!.id, N],
  )
  const [c] = await rawQuery<{ id: string }>(db, `select id from conversations order by id offset $1 limit 1`, [N >> 1])
  return c!.id
}

/** the executor's own time and the pages it touched, from EXPLAIN (ANALYZE, BUFFERS): median of `times` runs after as many unmeasured */
async function executed(db: DatabaseHandle, text: string, params: unknown[], times: number): Promise<{ ms: number; pages: number }> {
  const runs: Array<{ ms: number; pages: number }> = []
  for (let i = 0; i < 2 * times; i++) {
    const [row] = await rawQuery<Record<string, unknown>>(db, `explain (analyze, buffers, format json) ${text}`, params)
    const raw = Object.values(row!)[0]
    const [plan] = (typeof raw === 'string' ? JSON.parse(raw) : raw) as Array<{ Plan: Record<string, number>; 'Execution Time': number }>
    if (i >= times) runs.push({ ms: plan!['Execution Time'], pages: plan!.Plan['Shared Hit Blocks']! + plan!.Plan['Shared Read Blocks']! })
  }
  runs.sort((a, b) => a.ms - b.ms)
  return runs[runs.length >> 1]!
}

async function measure(driver: string, url: string | undefined, schema: 'one index' | 'two indexes') {
  const db = await openDatabase({ url, dataDir: '/nonexistent', pgliteVacuumIntervalMs: 0 })
  try {
    if (url?.startsWith('postgres')) await rawQuery(db, 'drop schema public cascade; create schema public; drop schema if exists drizzle cascade', [])
    await migrate(db)
    await bootstrap(db.db, { adminEmail: 'bench@example.com', adminPassword: 'bench-password-1', allowSignupDefault: false })
    if (schema === 'two indexes') for (const s of BEFORE) await rawQuery(db, s, [])
    const firstMs = Date.now() - 3_600_000
    const conversation = await fill(db, firstMs)
    const range = [idAt(firstMs - 24 * 3_600_000), idAt(Date.now())]
    const sweep = await executed(db, UNANSWERED, range, 2)
    const history = await executed(db, `select role, content from messages where tenant_id = 'default' and conversation_id = $1 and content <> '' order by id desc limit 20`, [conversation], 50)
    const page = await executed(db, `select * from messages where tenant_id = 'default' and conversation_id = $1 order by id asc limit 51`, [conversation], 50)
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
