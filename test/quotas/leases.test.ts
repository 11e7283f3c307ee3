/**
 * Leased rate limits (the per-request quotas): an instance reserves blocks of the shared count and serves
 * requests from them, so a busy caller costs a few store round trips per second instead of one per request —
 * and the fleet still never admits more than the limit. Against the memory store and the real Redis.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createMemoryStore, createRedisStore, type Store } from '../../src/store'
import { createRateLimiter, type RateRule } from '../../src/modules/quotas'
import { hasRedis, redisUrl } from '../helpers/services.ts'
import { uniquePrefix } from '../store/helpers.ts'

const MINUTE = 60_000
const fixedNow = Math.floor(Date.now() / MINUTE) * MINUTE + 1_000

/** the store, counting its incrMany round trips */
function counting(store: Store): { store: Store; trips: () => number } {
  let trips = 0
  return {
    store: new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'incrMany') {
          return (...args: Parameters<Store['incrMany']>) => {
            trips++
            return target.incrMany(...args)
          }
        }
        return Reflect.get(target, prop, receiver)
      },
    }),
    trips: () => trips,
  }
}

function leaseSuite(name: string, createStore: () => Promise<Store>): void {
  describe(`leased rate limits on the ${name} store`, () => {
    let stores: Store[]
    const prefix = uniquePrefix(`lease-${name}`)
    let n = 0
    const rule = (limit: number): RateRule => ({ scope: `${prefix}${n++}`, id: 'u', limit, windowMs: MINUTE, lease: true })

    beforeAll(async () => {
      // two connections: two "gateway instances"
      stores = [await createStore(), name === 'memory' ? undefined! : await createStore()]
      if (name === 'memory') stores[1] = stores[0]!
    })
    afterAll(async () => {
      await Promise.all([...new Set(stores)].map((s) => s.close()))
    })

    test('a busy caller: exactly the limit is admitted, with far fewer store round trips than requests', async () => {
      const { store, trips } = counting(stores[0]!)
      const limiter = createRateLimiter({ store, now: () => fixedNow })
      const r = rule(2_000)
      const results = []
      for (let batch = 0; batch < 50; batch++) results.push(...(await Promise.all(Array.from({ length: 50 }, () => limiter.check(r)))))
      expect(results.filter((x) => x.allowed)).toHaveLength(2_000)
      expect(results.slice(2_000).every((x) => !x.allowed && x.retryAfterS === 59)).toBe(true)
      // every admitted request got its own slot
      expect(new Set(results.filter((x) => x.allowed).map((x) => x.remaining)).size).toBe(2_000)
      expect(trips()).toBeLessThan(400)
    })

    test('sequential requests see RateLimit-Remaining fall by one each time', async () => {
      const limiter = createRateLimiter({ store: stores[0]!, now: () => fixedNow })
      const r = rule(100)
      const remaining = []
      for (let i = 0; i < 30; i++) remaining.push((await limiter.check(r)).remaining)
      expect(remaining).toEqual(Array.from({ length: 30 }, (_, i) => 99 - i))
    })

    test('two instances hammering one limit admit exactly the limit together', async () => {
      const [a, b] = stores.map((store) => createRateLimiter({ store, now: () => fixedNow }))
      const r = rule(300)
      const results = await Promise.all(Array.from({ length: 1_200 }, (_, i) => (i % 2 ? a! : b!).check(r)))
      expect(results.filter((x) => x.allowed)).toHaveLength(300)
      expect((await a!.check(r)).allowed).toBe(false)
      expect((await b!.check(r)).allowed).toBe(false)
    })

    test('what one instance reserved and left unused costs another at most a tenth of the limit', async () => {
      const [a, b] = stores.map((store) => createRateLimiter({ store, now: () => fixedNow }))
      const r = rule(1_000)
      let admitted = 0
      // A is busy for a while, then goes quiet holding whatever block it had
      for (let batch = 0; batch < 6; batch++) {
        admitted += (await Promise.all(Array.from({ length: 50 }, () => a!.check(r)))).filter((x) => x.allowed).length
      }
      for (;;) {
        const res = await b!.check(r)
        if (!res.allowed) break
        admitted++
      }
      expect(admitted).toBeLessThanOrEqual(1_000)
      expect(admitted).toBeGreaterThanOrEqual(900)
    })

    test('a quota raised in the middle of a used-up window applies at once', async () => {
      const limiter = createRateLimiter({ store: stores[0]!, now: () => fixedNow })
      const r = rule(5)
      for (let i = 0; i < 5; i++) expect((await limiter.check(r)).allowed).toBe(true)
      expect((await limiter.check(r)).allowed).toBe(false)
      expect((await limiter.check({ ...r, limit: 8 })).allowed).toBe(true)
    })

    test('tryLeased answers at once from a held lease, defers when none is held, refuses at once when used up', async () => {
      const limiter = createRateLimiter({ store: stores[0]!, now: () => fixedNow })
      const r = rule(50)
      expect(limiter.tryLeased([r])).toBeUndefined() // nothing reserved yet: the caller must ask the store
      for (let i = 0; i < 10; i++) await limiter.check(r) // busy: blocks get reserved
      let later = 0
      let total = 10
      for (;;) {
        const now = limiter.tryLeased([r]) ?? (await limiter.checkAll([r]))
        if (!now.allowed) break
        later++
        total++
      }
      expect(total).toBe(50)
      expect(later).toBe(40)
      expect(limiter.tryLeased([r])).toMatchObject({ allowed: false, remaining: 0 })
      // unleased or unlimited rules are checkAll's
      expect(limiter.tryLeased([{ ...r, lease: false }])).toBeUndefined()
    })

    test('steady traffic never waits for the store: the next block is reserved while the current one still serves', async () => {
      const limiter = createRateLimiter({ store: stores[0]!, now: () => fixedNow })
      const r = rule(1_000_000)
      for (let i = 0; i < 20; i++) await limiter.check(r) // warm: blocks sized to the demand
      let waited = 0
      const remaining: number[] = []
      for (let i = 0; i < 3_000; i++) {
        const now = limiter.tryLeased([r])
        if (!now) waited++
        remaining.push((now ?? (await limiter.checkAll([r]))).remaining)
        if (i % 10 === 9) await Bun.sleep(1) // a request every ~0.1 ms: the store answers between them
      }
      expect(waited).toBe(0)
      // blocks handed out in order, each count once
      expect(new Set(remaining).size).toBe(3_000)
      expect(remaining.every((x, i) => i === 0 || x < remaining[i - 1]!)).toBe(true)
    })

    test('a refusal by one rule takes nothing from the other', async () => {
      const limiter = createRateLimiter({ store: stores[0]!, now: () => fixedNow })
      const user = rule(3)
      const tenant = rule(10)
      for (let i = 0; i < 3; i++) expect((await limiter.checkAll([tenant, user])).allowed).toBe(true)
      for (let i = 0; i < 5; i++) expect((await limiter.checkAll([tenant, user])).allowed).toBe(false)
      // the tenant still has 7: three admitted requests used three
      const others = Array.from({ length: 7 }, (_, i) => ({ ...user, id: `other-${i}` }))
      for (const other of others) expect((await limiter.checkAll([tenant, other])).allowed).toBe(true)
      expect((await limiter.checkAll([tenant, { ...user, id: 'one-more' }])).allowed).toBe(false)
    })
  })
}

leaseSuite('memory', async () => createMemoryStore())

describe.skipIf(!hasRedis)('redis', () => {
  leaseSuite('redis', () => createRedisStore({ url: redisUrl }))
})
