/**
 * The chat writer's one statement on the embedded PGlite (src/modules/conversations/writer.ts): run by PGlite's
 * query(), which parses and plans the text on every call (what `rawQuery` does), against the same text PREPAREd
 * once and run by EXECUTE with its JSON as a literal (tried for the writer; not landed: bench/RESULTS.md). Batches of 1, 10 and 200 messages — a question creating its conversation, or an answer
 * bumping it — the two ways alternating, on disk in a temporary directory; the CPU of this process per statement
 * (PGlite runs in it), median of the rounds.
 *
 *   bun bench/pglite-writer.ts [--rounds 15] [--content-bytes 1500]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { bootstrap, DEFAULT_TENANT_ID, driverOf, migrate, openDatabase, users } from '../src/db'
import { newId } from '../src/lib/ids'
import { STATEMENT } from '../src/modules/conversations/writer'
import { machine } from './lib'

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '15' }, 'content-bytes': { type: 'string', default: '1500' } } })
const ROUNDS = Number(args.rounds)
const ANSWER = 'an answer '.repeat(Math.ceil(Number(args['content-bytes']) / 10))

const dir = await mkdtemp(join(tmpdir(), 'vh-bench-pglite-'))
const db = await openDatabase({ dataDir: dir, pgliteVacuumIntervalMs: 0 })
await migrate(db)
await bootstrap(db.db, { adminEmail: 'bench@example.com', adminPassword: 'bench-password-1', allowSignupDefault: false })
const [user] = await db.db.select({ id: users.id }).from(users).limit(1)
const client = driverOf(db).client as import('../src/db/pglite-thread').PgliteThread

const rows = (conversations: string[], content: string, title: string | null) =>
  JSON.stringify(
    conversations.map((conversation_id, i) => ({
      id: newId('msg'), tenant_id: DEFAULT_TENANT_ID, conversation_id, user_id: user!.id, role: title ? 'user' : 'assistant', content,
      modality: 'text', status: 'completed', references: null, usage: null, ttft_ms: null, duration_ms: null, request_id: `req-${i}`,
      created_at: new Date().toISOString(), new_title: title,
    })),
  )

// standard strings: in a literal only the quote is special (JSON.stringify leaves no NUL)
await client.exec(`set standard_conforming_strings = on; prepare vh_writer as ${STATEMENT}`)
const ways = {
  'query()': (json: string) => client.query(STATEMENT, [json]),
  prepared: (json: string) => client.exec(`execute vh_writer('${json.replaceAll("'", "''")}')`),
}
type Way = keyof typeof ways

async function cpuMs(work: () => Promise<unknown>): Promise<number> {
  const c0 = process.cpuUsage()
  await work()
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / 1000
}

const sizes = [1, 10, 256]
const samples = new Map<string, number[]>()
const add = (k: string, v: number) => samples.set(k, [...(samples.get(k) ?? []), v])
for (let round = 0; round < ROUNDS + 2; round++) {
  for (const way of (round % 2 ? ['prepared', 'query()'] : ['query()', 'prepared']) as Way[]) {
    for (const n of sizes) {
      const convs = Array.from({ length: n }, () => newId('conv'))
      const q = await cpuMs(() => ways[way](rows(convs, 'a question', 'a title')))
      const a = await cpuMs(() => ways[way](rows(convs, ANSWER, null)))
      if (round < 2) continue // warm-up
      add(`${way} question ${n}`, q)
      add(`${way} answer ${n}`, a)
    }
  }
}
await db.close()
await rm(dir, { recursive: true, force: true })

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
console.log(`\n${machine()} — PGlite on disk, ${ROUNDS} rounds, answers of ${ANSWER.length} characters\n`)
console.log('| messages per statement | question: query() ms | question: prepared ms | answer: query() ms | answer: prepared ms |')
console.log('|---:|---:|---:|---:|---:|')
for (const n of sizes) {
  const cell = (way: Way, kind: string) => median(samples.get(`${way} ${kind} ${n}`)!).toFixed(2)
  console.log(`| ${n} | ${cell('query()', 'question')} | ${cell('prepared', 'question')} | ${cell('query()', 'answer')} | ${cell('prepared', 'answer')} |`)
}
console.log(`\nCommand: \`bun bench/pglite-writer.ts --rounds ${ROUNDS} --content-bytes ${args['content-bytes']}\``)
