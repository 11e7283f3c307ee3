/**
 * One MGET of three keys + one EVALSHA counting two keys (the auth path's store work before leases), through
 * node-redis and through Bun's built-in Redis client, same run, same server, at several concurrencies: 50 loops
 * keep both clients' pipelines full; 1 and 4 are what a gateway's scattered per-stream commands look like.
 * Reports operations per second and client CPU µs per request pair. Loopback Redis only.
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

async function measure(name: string, concurrency: number, pair: Pair) {
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
  return { name, concurrency, perSecond: done / seconds, cpuUsPerPair: (cpu.user + cpu.system) / done }
}

const node = createClient({ url, disableOfflineQueue: true, commandOptions: { timeout: 0 } })
await node.connect()
const sha = (await node.scriptLoad(SCRIPT)) as string
const bun = new RedisClient(url, { enableOfflineQueue: false })
await bun.connect()

const results = []
for (const concurrency of concurrencies) {
  results.push(
    await measure('node-redis 6', concurrency, () =>
      Promise.all([node.mGet(keys), node.evalSha(sha, { keys: counters, arguments: ['1', '60000', '1', '60000'] })]),
    ),
    await measure("Bun's RedisClient", concurrency, () =>
      Promise.all([bun.send('MGET', keys), bun.send('EVALSHA', [sha, '2', ...counters, '1', '60000', '1', '60000'])]),
    ),
  )
}
await node.close()
bun.close()

console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}; ${seconds} s per row\n`)
console.log('| client | concurrent loops | MGET+EVALSHA pairs/s | client CPU µs per pair |')
console.log('|---|---:|---:|---:|')
for (const r of results) console.log(`| ${r.name} | ${r.concurrency} | ${Math.round(r.perSecond)} | ${r.cpuUsPerPair.toFixed(1)} |`)
