/**
 * The store's per-request work on the auth path (one MGET of three keys + one EVALSHA counting two keys),
 * through node-redis (what the store uses) and through Bun's built-in Redis client, same run, same server.
 * Reports operations per second and client CPU µs per request pair. Loopback Redis only.
 *
 *   BENCH_REDIS_URL=redis://127.0.0.1:6379 bun bench/redis-clients.ts [--seconds 5] [--concurrency 50]
 */
import { parseArgs } from 'node:util'
import { RedisClient } from 'bun'
import { createClient } from 'redis'
import { machine } from './lib'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, concurrency: { type: 'string', default: '50' } } })
const seconds = Number(values.seconds)
const concurrency = Number(values.concurrency)
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

async function measure(name: string, pair: Pair) {
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
  return { name, perSecond: done / seconds, cpuUsPerPair: (cpu.user + cpu.system) / done }
}

const node = createClient({ url, disableOfflineQueue: true, commandOptions: { timeout: 0 } })
await node.connect()
const sha = (await node.scriptLoad(SCRIPT)) as string
const bun = new RedisClient(url, { enableOfflineQueue: false })
await bun.connect()

const results = [
  await measure('node-redis 6 (store today)', () =>
    Promise.all([node.mGet(keys), node.evalSha(sha, { keys: counters, arguments: ['1', '60000', '1', '60000'] })]),
  ),
  await measure("Bun's RedisClient", () =>
    Promise.all([bun.send('MGET', keys), bun.send('EVALSHA', [sha, '2', ...counters, '1', '60000', '1', '60000'])]),
  ),
]
await node.close()
bun.close()

console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}; ${concurrency} concurrent loops, ${seconds} s each\n`)
console.log('| client | MGET+EVALSHA pairs/s | client CPU µs per pair |')
console.log('|---|---:|---:|')
for (const r of results) console.log(`| ${r.name} | ${Math.round(r.perSecond)} | ${r.cpuUsPerPair.toFixed(1)} |`)
