/**
 * A/B of two checkouts of the gateway on the chat stream: gateway CPU per stream under a steady closed-loop load,
 * the two gateways measured in alternating slices (ABBAAB…) so that the host's bursts land on both. Finer than
 * bench/chat.ts for a change worth ~10%: one chat.ts round is a burst of under a second.
 *
 *   bun bench/chat-ab.ts --b /path/to/other/checkout [--a .] [--concurrency 50] [--chunks 2] [--slice-s 4] [--slices 6]
 *   BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… runs both on Postgres + Redis (else embedded, each its own PGlite)
 *
 * The other checkout needs its dependencies (e.g. `git worktree add /tmp/b <commit> && ln -s $PWD/node_modules /tmp/b/`).
 */
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { benchRun, cpuMicros, machine, percentile, RAISED_QUOTAS, ROOT, startGateway, startSimulatorProcess } from './lib'

const { values: args } = parseArgs({
  options: {
    a: { type: 'string', default: ROOT },
    b: { type: 'string' },
    concurrency: { type: 'string', default: '50' },
    chunks: { type: 'string', default: '2' },
    'slice-s': { type: 'string', default: '4' },
    slices: { type: 'string', default: '6' },
  },
})
if (!args.b) throw new Error('--b <checkout> is required')
const CONCURRENCY = Number(args.concurrency)
const SLICE_S = Number(args['slice-s'])
const SLICES = Number(args.slices)
const message = `chat-ab [[sim chunks=${Number(args.chunks)}]]`

const scope = benchRun('vh-bench-chat-ab-')
const deployed = Boolean(process.env.BENCH_DATABASE_URL && process.env.BENCH_REDIS_URL)

interface Subject {
  name: string
  url: string
  pid: number
  headers: Record<string, string>
}
const subjects: Subject[] = []
const perStream: Record<string, number[]> = {}
const rates: Record<string, number[]> = {}

/** one slice: CONCURRENCY clients each posting streams back to back for `seconds` */
async function slice(s: Subject, seconds: number): Promise<{ cpuUsPerStream: number; streamsPerS: number }> {
  const end = performance.now() + seconds * 1000
  let streams = 0
  const cpu0 = await cpuMicros(s.pid)
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const res = await fetch(s.url, { method: 'POST', headers: s.headers, body: JSON.stringify({ message }) })
        const text = await res.text()
        if (!res.ok || !text.includes('event: stream_end')) throw new Error(`${s.name}: stream failed (${res.status})`)
        streams++
      }
    }),
  )
  return { cpuUsPerStream: ((await cpuMicros(s.pid)) - cpu0) / streams, streamsPerS: streams / seconds }
}

try {
  const simulator = scope.keep(await startSimulatorProcess())
  for (const [name, root] of [
    ['A', resolve(args.a)],
    ['B', resolve(args.b)],
  ] as const) {
    const { target, token } = await startGateway(`${name} (${root})`, {
      algoUrl: simulator.url,
      dataDir: `${scope.dataDir}/${name}`,
      quotas: RAISED_QUOTAS,
      env: { BUN_CONFIG_MAX_HTTP_REQUESTS: '4096' },
      databaseUrl: process.env.BENCH_DATABASE_URL,
      redisUrl: process.env.BENCH_REDIS_URL,
      root,
    })
    scope.keep(target)
    subjects.push({ name: target.name, url: `${target.url}/api/v2/chat/stream`, pid: target.pid, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } })
  }
  for (const s of subjects) await slice(s, 3) // warm-up
  for (let k = 0; k < SLICES; k++) {
    for (const s of k % 2 ? [...subjects].reverse() : subjects) {
      const r = await slice(s, SLICE_S)
      ;(perStream[s.name] ??= []).push(r.cpuUsPerStream)
      ;(rates[s.name] ??= []).push(r.streamsPerS)
    }
  }
} finally {
  await scope.stopAll()
}

const median = (xs: number[]) => percentile(xs, 0.5)
console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}; ${deployed ? 'Postgres + Redis' : 'embedded'}, ${CONCURRENCY} concurrent ${message}, ${SLICES} slices of ${SLICE_S} s each\n`)
console.log('| gateway | CPU µs per stream (median) | every slice | streams/s (median) | every slice |')
console.log('|---|---:|---|---:|---|')
for (const s of subjects) {
  console.log(`| ${s.name} | ${median(perStream[s.name]!).toFixed(0)} | ${perStream[s.name]!.map((x) => x.toFixed(0)).join(' ')} | ${median(rates[s.name]!).toFixed(0)} | ${rates[s.name]!.map((x) => x.toFixed(0)).join(' ')} |`)
}
