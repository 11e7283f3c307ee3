/**
 * A tenant full of answered questions, written set-based (tens of thousands in a second), and what the database
 * says a statement did over them — for test/db/message-index.test.ts and bench/message-index.ts.
 */
import { bootstrap, rawQuery, type DatabaseHandle } from '../../src/db'

/**
 * `count` conversations of the `default` tenant's bootstrap admin, each a question and its answer, ids as the
 * gateway makes them (`msg_<ms in hex>…`, from `firstMs`, the answer a millisecond after its question). Returns
 * the id of the conversation in the middle. The database must be migrated.
 */
export async function answeredConversations(db: DatabaseHandle, count: number, firstMs: number): Promise<string> {
  await bootstrap(db.db, { adminEmail: 'admin@example.com', adminPassword: 'answered-password', allowSignupDefault: false })
  const [admin] = await rawQuery<{ id: string }>(db, `select id from users where tenant_id = 'default' limit 1`, [])
  const id = (prefix: string, ms: string) => `'${prefix}_' || lpad(to_hex(${ms}), 12, '0') || '7' || lpad(to_hex(g), 19, '0')`
  const params = [firstMs, admin!.id, count]
  await rawQuery(db, `insert into conversations (id, tenant_id, user_id, title) select ${id('conv', '$1::bigint + g')}, 'default', $2, 't' from generate_series(1, $3) g`, params)
  await rawQuery(
    db,
    `insert into messages (id, tenant_id, conversation_id, user_id, role, content, request_id)
     select ${id('msg', '$1::bigint + 2 * g')}, 'default', ${id('conv', '$1::bigint + g')}, $2, 'user', 'why?', 'req-' || g from generate_series(1, $3) g
     union all
     select ${id('msg', '$1::bigint + 2 * g + 1')}, 'default', ${id('conv', '$1::bigint + g')}, $2, 'assistant', 'because', 'req-' || g from generate_series(1, $3) g`,
    params,
  )
  const [middle] = await rawQuery<{ id: string }>(db, `select id from conversations order by id offset $1 limit 1`, [count >> 1])
  return middle!.id
}

/** the statement run once under EXPLAIN (ANALYZE, BUFFERS): the executor's ms and the shared pages it touched */
export async function explained(db: DatabaseHandle, text: string, params: unknown[]): Promise<{ ms: number; pages: number }> {
  const [row] = await rawQuery<Record<string, unknown>>(db, `explain (analyze, buffers, format json) ${text}`, params)
  const raw = Object.values(row!)[0]
  const [plan] = (typeof raw === 'string' ? JSON.parse(raw) : raw) as Array<{ Plan: Record<string, number>; 'Execution Time': number }>
  return { ms: plan!['Execution Time'], pages: plan!.Plan['Shared Hit Blocks']! + plan!.Plan['Shared Read Blocks']! }
}

/** a Drizzle query's text and parameters, for `explained` */
export function statement(query: { toSQL(): { sql: string; params: unknown[] } }): [string, unknown[]] {
  const { sql, params } = query.toSQL()
  return [sql, params]
}
