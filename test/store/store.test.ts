import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { hasRedis, redisUrl } from '../helpers/services.ts'
import { createMemoryStore, createRedisStore, createStore, type Store } from '../../src/store'
import { storeContract } from './contract.ts'
import { uniquePrefix, waitFor } from './helpers.ts'

storeContract('memory', async () => createMemoryStore())

describe.skipIf(!hasRedis)('redis', () => {
  storeContract('redis', () => createRedisStore({ url: redisUrl }))

  describe('two instances on one Redis', () => {
    let a: Store
    let b: Store
    const prefix = uniquePrefix('shared')

    beforeAll(async () => {
      ;[a, b] = await Promise.all([createRedisStore({ url: redisUrl }), createRedisStore({ url: redisUrl })])
    })
    afterAll(async () => {
      await Promise.all([a.close(), b.close()])
    })

    test("each sees the other's writes", async () => {
      await a.set(`${prefix}k`, 'from-a', { ttlMs: 10_000 })
      expect(await b.get(`${prefix}k`)).toBe('from-a')
    })

    test("each receives the other's publishes, and its own", async () => {
      const channel = `${prefix}ch`
      const atA: string[] = []
      const atB: string[] = []
      await a.subscribe(channel, (m) => atA.push(m))
      await b.subscribe(channel, (m) => atB.push(m))
      await a.publish(channel, 'from-a')
      await b.publish(channel, 'from-b')
      await waitFor(() => atA.length === 2 && atB.length === 2, 2000)
      expect(atA).toEqual(['from-a', 'from-b'])
      expect(atB).toEqual(['from-a', 'from-b'])
    })

    test('counters stay exact across instances', async () => {
      const key = `${prefix}counter`
      await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).incr(key, 1, 10_000)))
      expect(await a.get(key)).toBe('100')
    })
  })
})

describe('createStore', () => {
  test('without a Redis URL it is the in-process store', async () => {
    const store = await createStore({})
    expect(store.kind).toBe('memory')
    await store.close()
  })

  test.skipIf(!hasRedis)('with a Redis URL it is the Redis store', async () => {
    const store = await createStore({ redisUrl })
    expect(store.kind).toBe('redis')
    await store.ping()
    await store.close()
  })
})

describe('process lifetime', () => {
  // a store must never be what keeps a finished process (or a test runner) alive
  async function exitsWithin(script: string, ms: number): Promise<number> {
    const started = performance.now()
    const proc = Bun.spawn([process.execPath, '-e', script], { cwd: `${import.meta.dir}/../..`, stderr: 'pipe' })
    const timer = setTimeout(() => proc.kill('SIGKILL'), ms)
    const code = await proc.exited
    clearTimeout(timer)
    if (code !== 0) throw new Error(`exit ${code}: ${await new Response(proc.stderr).text()}`)
    return performance.now() - started
  }

  test('the memory store holds no timer that keeps the process alive', async () => {
    const script = `
      import { createMemoryStore } from './src/store/memory.ts'
      const s = createMemoryStore()
      await s.set('k', 'v', { ttlMs: 60000 })
      await s.subscribe('c', () => {})
      await s.publish('c', 'm')`
    expect(await exitsWithin(script, 5000)).toBeLessThan(4000)
  })

  test.skipIf(!hasRedis)('a closed Redis store lets the process exit', async () => {
    const script = `
      import { createRedisStore } from './src/store/redis.ts'
      const s = await createRedisStore({ url: ${JSON.stringify(redisUrl)} })
      await s.subscribe('vhtest:exit', () => {})
      await s.incr('vhtest:exit', 1, 1000)
      await s.close()`
    expect(await exitsWithin(script, 5000)).toBeLessThan(4000)
  })
})
