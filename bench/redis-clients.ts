/**
 * The store's Redis work through node-redis and through Bun's built-in Redis client, same run, same server, at
 * several concurrencies (50 loops keep both clients' pipelines full; 1 and 4 are what a gateway's scattered
 * per-stream commands look like): one MGET of three keys + one EVALSHA counting two keys (the auth path's store
 * work before leases), and a finished chat stream's ~14 KB event log appended with its TTL. Reports operations
 * per second and client CPU µs per operation. Loopback Redis only.
 *
 *   BENCH_REDIS_URL=redis://127.0.0.1:6379 bun bench/redis-clients.ts [--seconds 5] [--concurrency 1,4,50]
 */
import { parseArgs } from 'node:util'
import { RedisClient } from 'bun'
import { createClient } from 'redis'
import { machine } from './lib'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, concurrency: { type: 'string', default: '1,4,50' } } })
const seconds = Number(values.seconds)
const concurrencies = values.concurrency.split(',').map(Number)
const url = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'

const SCRIPT = `local out = {}
for i, key in ipairs(KEYS) do
  out[2 * i - 1] = redis.call('INCRBY', key, ARGV[2 * i - 1])
  out[2 * i] = redis.call('PTTL', key)
end
return out`
const keys = ['vh:bench:a', 'vh:bench:b', 'vh:bench:c']
const counters = ['vh:bench:rl:1', 'vh:bench:rl:2']

type Pair = () => Promise<unknown>

async function measure(name: string, work: string, concurrency: number, pair: Pair) {
  for (let i = 0; i < 2000; i++) await pair()
  const cpu0 = process.cpuUsage()
  const deadline = performance.now() + seconds * 1000
  let done = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        await pair()
        done++
      }
    }),
  )
  const cpu = process.cpuUsage(cpu0)
  return { name, work, concurrency, perSecond: done / seconds, cpuUsPerPair: (cpu.user + cpu.system) / done }
}

const node = createClient({ url, disableOfflineQueue: true, commandOptions: { timeout: 0 } })
await node.connect()
const sha = (await node.scriptLoad(SCRIPT)) as string
const bun = new RedisClient(url, { enableOfflineQueue: false })
await bun.connect()

/** a finished chat stream's log: 57 SSE events back to back (~14 KB), written with its replay TTL */
const log = Array.from({ length: 57 }, (_, i) =>
  `id: ${i}\nevent: generation_chunk\ndata: ${JSON.stringify({ type: 'generation_chunk', content: `Simulated answer to "benchmark question". ${i}`, request_id: 'req_bench', line_number: i, timestamp: 1764000000 })}\n\n`,
).join('')
const APPEND_TTL = `redis.call('APPEND', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`
const appendSha = (await node.scriptLoad(APPEND_TTL)) as string
let n = 0
const logKey = () => `vh:bench:log:${n++ % 100}`

const results = []
for (const concurrency of concurrencies) {
  results.push(
    await measure('node-redis 6', 'MGET + EVALSHA', concurrency, () =>
      Promise.all([node.mGet(keys), node.evalSha(sha, { keys: counters, arguments: ['1', '60000', '1', '60000'] })]),
    ),
    await measure("Bun's RedisClient", 'MGET + EVALSHA', concurrency, () =>
      Promise.all([bun.send('MGET', keys), bun.send('EVALSHA', [sha, '2', ...counters, '1', '60000', '1', '60000'])]),
    ),
  )
}
for (const concurrency of concurrencies) {
  results.push(
    await measure('node-redis 6', '14 KB log, MULTI APPEND PEXPIRE', concurrency, () => {
      const key = logKey()
      return node.multi().append(key, log).pExpire(key, 300_000).exec()
    }),
    await measure("Bun's RedisClient", '14 KB log, EVALSHA append+TTL', concurrency, () => bun.send('EVALSHA', [appendSha, '1', logKey(), '300000', log])),
  )
}
await node.del(Array.from({ length: 100 }, (_, i) => `vh:bench:log:${i}`))
await node.close()
bun.close()

console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}; ${seconds} s per row\n`)
console.log('| client | work | concurrent loops | operations/s | client CPU µs per operation |')
console.log('|---|---|---:|---:|---:|')
for (const r of results) console.log(`| ${r.name} | ${r.work} | ${r.concurrency} | ${Math.round(r.perSecond)} | ${r.cpuUsPerPair.toFixed(1)} |`)
