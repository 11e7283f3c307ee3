/**
 * The chat stream's message writer on Postgres: one batch in flight at a time against two (src/modules/conversations/
 * writer.ts). N new conversations' questions arrive spread over a few milliseconds, as a burst of streams' do, then
 * each one's answer; the time from each write to its commit is what a stream waits before its first event (question)
 * and before `stream_end` (answer). Lane counts alternate round by round on the same database.
 *
 *   bun bench/writer.ts [--writes 500] [--spread-ms 25] [--rounds 12] [--lanes 1,2]
 *   BENCH_DATABASE_URL=postgres://… (default: a fresh database vh_bench_writer on 127.0.0.1)
 */
import { parseArgs } from 'node:util'
import postgres from 'postgres'
import { bootstrap, DEFAULT_TENANT_ID, migrate, openDatabase, users } from '../src/db'
import { newId } from '../src/lib/ids'
import { createMessageWriter } from '../src/modules/conversations/writer'
import { machine, percentile, serverCpu, cpuSince } from './lib'

const { values: args } = parseArgs({
  options: {
    writes: { type: 'string', default: '500' },
    'spread-ms': { type: 'string', default: '25' },
    rounds: { type: 'string', default: '12' },
    lanes: { type: 'string', default: '1,2' },
  },
})
const WRITES = Number(args.writes)
const SPREAD_MS = Number(args['spread-ms'])
const ROUNDS = Number(args.rounds)
const LANES = args.lanes.split(',').map(Number)

let url = process.env.BENCH_DATABASE_URL
if (!url) {
  const admin = postgres('postgres://postgres@127.0.0.1:5432/postgres', { max: 1, onnotice: () => {} })
  await admin.unsafe('drop database if exists vh_bench_writer with (force)')
  await admin.unsafe('create database vh_bench_writer')
  await admin.end()
  url = 'postgres://postgres@127.0.0.1:5432/vh_bench_writer'
}
const db = await openDatabase({ url, dataDir: '/tmp' })
await migrate(db)
await bootstrap(db.db, { adminEmail: 'bench@example.com', adminPassword: 'bench-password-1', allowSignupDefault: false })
const [user] = await db.db.select({ id: users.id }).from(users).limit(1)
const userId = user!.id

/** one round: WRITES questions arriving in 10 groups over SPREAD_MS, each answered as soon as its question is stored */
async function round(lanes: number) {
  const writer = createMessageWriter({ db, lanes })
  const question: number[] = []
  const answer: number[] = []
  const pg0 = await serverCpu()
  const t0 = performance.now()
  const one = async (i: number) => {
    const conv = { id: newId('conv'), tenantId: DEFAULT_TENANT_ID, userId }
    const base = { modality: 'text' as const, status: 'completed' as const, requestId: `req-${i}`, userId }
    const q = performance.now()
    await writer.start(conv, { ...base, role: 'user', content: `question ${i}` })
    const a = performance.now()
    question.push(a - q)
    await writer.append(conv, { ...base, role: 'assistant', content: 'an answer of a few words, '.repeat(40) })
    answer.push(performance.now() - a)
  }
  const all: Promise<void>[] = []
  const groups = 10
  for (let g = 0; g < groups; g++) {
    for (let i = g; i < WRITES; i += groups) all.push(one(i))
    await Bun.sleep(SPREAD_MS / groups)
  }
  await Promise.all(all)
  const makespan = performance.now() - t0
  return { question, answer, makespan, pgUs: cpuSince(pg0, await serverCpu()) }
}

const results = new Map<number, { q50: number[]; q99: number[]; a99: number[]; span: number[]; pg: number[]; mine: number[] }>()
for (let r = 0; r <= ROUNDS; r++) {
  for (const lanes of r % 2 ? LANES : [...LANES].reverse()) {
    const c0 = process.cpuUsage()
    const { question, answer, makespan, pgUs } = await round(lanes)
    const c = process.cpuUsage(c0)
    if (r === 0) continue // warm-up
    const x = results.get(lanes) ?? { q50: [], q99: [], a99: [], span: [], pg: [], mine: [] }
    x.q50.push(percentile(question, 0.5))
    x.q99.push(percentile(question, 0.99))
    x.a99.push(percentile(answer, 0.99))
    x.span.push(makespan)
    x.pg.push(pgUs / 1000)
    x.mine.push((c.user + c.system) / 1000)
    results.set(lanes, x)
  }
}
await db.close()

const med = (xs: number[]) => percentile(xs, 0.5).toFixed(1)
console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}; Postgres 15 on the same host; ${WRITES} conversations per round, arriving over ${SPREAD_MS} ms\n`)
console.log('| batches in flight | question stored p50 ms | question stored p99 ms | answer stored p99 ms | round (all stored) ms | Postgres CPU ms | writer process CPU ms | question p99, every round |')
console.log('|---:|---:|---:|---:|---:|---:|---:|---|')
for (const [lanes, x] of results) {
  console.log(`| ${lanes} | ${med(x.q50)} | ${med(x.q99)} | ${med(x.a99)} | ${med(x.span)} | ${med(x.pg)} | ${med(x.mine)} | ${x.q99.map((v) => v.toFixed(0)).join(' ')} |`)
}
console.log(`\nMedian of ${ROUNDS} rounds, lane counts alternating; Postgres CPU: every postgres process on the host (schedstat), per round. Command: \`bun bench/writer.ts --writes ${WRITES} --spread-ms ${SPREAD_MS} --rounds ${ROUNDS} --lanes ${LANES.join(',')}\``)
