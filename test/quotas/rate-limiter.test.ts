/**
 * The rate limiter's behaviour, run unchanged against the memory store and the real Redis, plus two
 * "gateway instances" (two store connections) sharing one Redis. Each test counts under its own scope
 * within a per-run prefix, so runs sharing a Redis never collide.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createMemoryStore, createRedisStore, keys, type Store } from '../../src/store'
import { createRateLimiter, rateLimitHeaders, type RateRule } from '../../src/modules/quotas'
import { hasRedis, redisUrl } from '../helpers/services.ts'
import { uniquePrefix } from '../store/helpers.ts'

const MINUTE = 60_000
/** a fixed clock 1 s into a minute window: no test crosses a window boundary by bad luck */
const fixedNow = Math.floor(Date.now() / MINUTE) * MINUTE + 1_000

function rateLimiterSuite(name: string, createStore: () => Promise<Store>): void {
  describe(`rate limiter on the ${name} store`, () => {
    let store: Store
    const prefix = uniquePrefix(`rl-${name}`)
    let n = 0
    const scope = (label: string) => `${prefix}${label}:${n++}`
    const limiterAt = (now = () => fixedNow) => createRateLimiter({ store, now })

    beforeAll(async () => {
      store = await createStore()
    })
    afterAll(async () => {
      await store.close()
    })

    test('N requests are allowed, then denied with Retry-After and RateLimit headers', async () => {
      const limiter = limiterAt()
      const rule: RateRule = { scope: scope('n'), id: 'user-1', limit: 5, windowMs: MINUTE }
      for (let i = 0; i < 5; i++) {
        const r = await limiter.check(rule)
        expect(r).toMatchObject({ allowed: true, limit: 5, remaining: 4 - i, retryAfterS: 0, degraded: false })
        expect(rateLimitHeaders(r)['Retry-After']).toBeUndefined()
      }
      const denied = await limiter.check(rule)
      expect(denied).toMatchObject({ allowed: false, remaining: 0, scope: rule.scope, degraded: false })
      expect(denied.resetMs).toBe(MINUTE - 1_000)
      expect(denied.retryAfterS).toBe(59)
      expect(rateLimitHeaders(denied)).toEqual({
        'RateLimit-Limit': '5',
        'RateLimit-Remaining': '0',
        'RateLimit-Reset': '59',
        'Retry-After': '59',
      })
    })

    test('the counter key lives for its window plus a small margin, not longer', async () => {
      const limiter = limiterAt()
      const rule: RateRule = { scope: scope('ttl'), id: 'u', limit: 5, windowMs: 2_000 }
      await limiter.check(rule)
      const windowStart = Math.floor(fixedNow / 2_000) * 2_000
      const { value, ttlMs } = await store.incr(keys.rateLimit(rule.scope, rule.id, windowStart), 0)
      expect(value).toBe(1)
      expect(ttlMs).toBeGreaterThan(2_000)
      expect(ttlMs).toBeLessThanOrEqual(3_000)
    })

    test('a new window starts afresh (injected clock)', async () => {
      let now = fixedNow
      const limiter = limiterAt(() => now)
      const rule: RateRule = { scope: scope('clock'), id: 'u', limit: 2, windowMs: MINUTE }
      await limiter.check(rule)
      await limiter.check(rule)
      expect((await limiter.check(rule)).allowed).toBe(false)
      now += MINUTE - 1_000 // the next window's first millisecond
      expect(await limiter.check(rule)).toMatchObject({ allowed: true, remaining: 1, resetMs: MINUTE })
    })

    test('a new window starts afresh (real time, 300 ms windows)', async () => {
      const limiter = createRateLimiter({ store })
      const rule: RateRule = { scope: scope('real'), id: 'u', limit: 3, windowMs: 300 }
      // start early in a window so the first four checks surely share one
      while (Date.now() % 300 > 50) await Bun.sleep(5)
      for (let i = 0; i < 3; i++) expect((await limiter.check(rule)).allowed).toBe(true)
      const denied = await limiter.check(rule)
      expect(denied.allowed).toBe(false)
      expect(denied.resetMs).toBeLessThanOrEqual(300)
      expect(denied.retryAfterS).toBe(1)
      await Bun.sleep(denied.resetMs + 10)
      expect(await limiter.check(rule)).toMatchObject({ allowed: true, remaining: 2 })
    })

    test('separate ids and separate scopes do not interfere', async () => {
      const limiter = limiterAt()
      const a = scope('a')
      const b = scope('b')
      expect((await limiter.check({ scope: a, id: 'x', limit: 1, windowMs: MINUTE })).allowed).toBe(true)
      expect((await limiter.check({ scope: a, id: 'x', limit: 1, windowMs: MINUTE })).allowed).toBe(false)
      expect((await limiter.check({ scope: a, id: 'y', limit: 1, windowMs: MINUTE })).allowed).toBe(true)
      expect((await limiter.check({ scope: b, id: 'x', limit: 1, windowMs: MINUTE })).allowed).toBe(true)
      // ids containing the key separator stay distinct too
      expect((await limiter.check({ scope: a, id: 'x:1', limit: 1, windowMs: MINUTE })).allowed).toBe(true)
    })

    test('200 concurrent checks against a limit of 50: exactly 50 allowed', async () => {
      const limiter = limiterAt()
      const rule: RateRule = { scope: scope('burst'), id: 'u', limit: 50, windowMs: MINUTE }
      const results = await Promise.all(Array.from({ length: 200 }, () => limiter.check(rule)))
      expect(results.filter((r) => r.allowed)).toHaveLength(50)
      expect(results.every((r) => !r.degraded)).toBe(true)
      // every allowed request saw a different remaining count: no two were given the same slot
      expect(new Set(results.filter((r) => r.allowed).map((r) => r.remaining)).size).toBe(50)
    })

    test('checkAll denies when any rule denies, reports that rule, and counts every rule', async () => {
      const limiter = limiterAt()
      const user: RateRule = { scope: scope('user'), id: 'u', limit: 3, windowMs: MINUTE }
      const tenant: RateRule = { scope: scope('tenant'), id: 't', limit: 100, windowMs: MINUTE }
      for (let i = 0; i < 3; i++) {
        // all allow: the rule with the least left is reported
        const r = await limiter.checkAll([tenant, user])
        expect(r).toMatchObject({ allowed: true, scope: user.scope, remaining: 2 - i })
      }
      const denied = await limiter.checkAll([tenant, user])
      expect(denied).toMatchObject({ allowed: false, scope: user.scope, limit: 3 })
      expect(rateLimitHeaders(denied)['Retry-After']).toBe('59')
      expect(await limiter.peek(tenant)).toMatchObject({ allowed: true, remaining: 96 })
    })

    test('checkAll with only unlimited rules (or none) allows without headers', async () => {
      const limiter = limiterAt()
      const open = await limiter.checkAll([{ scope: scope('free'), id: 'u', limit: 0, windowMs: MINUTE }])
      expect(open).toMatchObject({ allowed: true, limit: 0, degraded: false })
      expect(rateLimitHeaders(open)).toEqual({})
      expect((await limiter.checkAll([])).allowed).toBe(true)
    })

    test('limit 0 is unlimited', async () => {
      const limiter = limiterAt()
      const rule: RateRule = { scope: scope('unlimited'), id: 'u', limit: 0, windowMs: MINUTE }
      const results = await Promise.all(Array.from({ length: 100 }, () => limiter.check(rule)))
      expect(results.every((r) => r.allowed && r.retryAfterS === 0)).toBe(true)
    })

    test('login throttling: peek does not count, failures do, reset on success clears', async () => {
      const limiter = limiterAt()
      const login: RateRule = { scope: scope('login'), id: 'alice@example.com', limit: 3, windowMs: MINUTE }
      expect(await limiter.peek(login)).toMatchObject({ allowed: true, remaining: 3 })
      expect(await limiter.peek(login)).toMatchObject({ allowed: true, remaining: 3 })
      for (let i = 0; i < 3; i++) await limiter.check(login) // three failed attempts
      const blocked = await limiter.peek(login)
      expect(blocked).toMatchObject({ allowed: false, remaining: 0, retryAfterS: 59 })
      await limiter.reset(login)
      expect(await limiter.peek(login)).toMatchObject({ allowed: true, remaining: 3 })
      // an attempt counted ahead and given back leaves the count where it was
      await limiter.check(login)
      await limiter.check(login)
      await limiter.refund(login)
      expect(await limiter.peek(login)).toMatchObject({ allowed: true, remaining: 2 })
    })

    test('two limiters on one store share the count', async () => {
      const a = limiterAt()
      const b = limiterAt()
      const rule: RateRule = { scope: scope('shared'), id: 'u', limit: 4, windowMs: MINUTE }
      const results = await Promise.all([a, b, a, b, a, b].map((l) => l.check(rule)))
      expect(results.filter((r) => r.allowed)).toHaveLength(4)
    })
  })
}

rateLimiterSuite('memory', async () => createMemoryStore())

describe.skipIf(!hasRedis)('redis', () => {
  rateLimiterSuite('redis', () => createRedisStore({ url: redisUrl }))

  test('two gateway instances (two Redis connections) enforce one combined limit', async () => {
    const stores = await Promise.all([createRedisStore({ url: redisUrl }), createRedisStore({ url: redisUrl })])
    try {
      const [a, b] = stores.map((store) => createRateLimiter({ store, now: () => fixedNow }))
      const rule: RateRule = { scope: `${uniquePrefix('rl-fleet')}rpm`, id: 'tenant-1', limit: 30, windowMs: MINUTE }
      const results = await Promise.all(Array.from({ length: 120 }, (_, i) => (i % 2 ? a! : b!).check(rule)))
      expect(results.filter((r) => r.allowed)).toHaveLength(30)
      expect(results.every((r) => !r.degraded)).toBe(true)
      // and each instance sees the other's count
      expect(await a!.peek(rule)).toMatchObject({ allowed: false, remaining: 0 })
      expect(await b!.peek(rule)).toMatchObject({ allowed: false, remaining: 0 })
    } finally {
      await Promise.all(stores.map((s) => s.close()))
    }
  })
})
