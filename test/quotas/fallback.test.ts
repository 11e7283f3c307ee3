/**
 * What the limiter does when the store fails, with the memory store behind a switch that makes every call
 * reject (the real Redis outage is in redis-outage.test.ts): fail open to local limits, log transitions once,
 * stop asking a store known to be down, and come back by itself.
 */
import { describe, expect, test } from 'bun:test'
import { createMemoryStore, StoreUnavailableError, type Store } from '../../src/store'
import { createRateLimiter, type RateRule } from '../../src/modules/quotas'
import { createLocalCounter } from '../../src/modules/quotas/local-counter.ts'
import { captureLogger, waitFor } from '../store/helpers.ts'
import { rejectionOf } from '../helpers/rejection'

const MINUTE = 60_000
const fixedNow = Math.floor(Date.now() / MINUTE) * MINUTE + 1_000

/** The memory store, except that while `failure` is set every call rejects with it. Counts the calls made. */
function switchableStore(): { store: Store; calls: string[]; fail(err?: Error): void } {
  const inner = createMemoryStore()
  const calls: string[] = []
  let failure: Error | undefined
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        calls.push(String(prop))
        return failure ? Promise.reject(failure) : value.apply(target, args)
      }
    },
  })
  return { store, calls, fail: (err) => void (failure = err) }
}

const unavailable = () => new StoreUnavailableError('incr', { cause: new Error('ECONNREFUSED') })

describe('rate limiter when the store fails', () => {
  test('falls back to local limits with the same window, logs once each way, and recovers', async () => {
    const { store, fail } = switchableStore()
    const logger = captureLogger()
    const limiter = createRateLimiter({ store, logger, now: () => fixedNow })
    const rule: RateRule = { scope: 'fb', id: 'u', limit: 3, windowMs: MINUTE }
    expect((await limiter.check(rule)).degraded).toBe(false)

    fail(unavailable())
    const results = await Promise.all(Array.from({ length: 10 }, () => limiter.check(rule)))
    expect(results.every((r) => r.degraded)).toBe(true)
    // the local limiter counts from zero: the shared count is not reachable
    expect(results.filter((r) => r.allowed)).toHaveLength(3)
    const denied = results.find((r) => !r.allowed)!
    expect(denied).toMatchObject({ limit: 3, remaining: 0, retryAfterS: 59, resetMs: MINUTE - 1_000 })
    expect((await limiter.peek(rule)).degraded).toBe(true)
    await limiter.reset(rule) // never throws, clears the local counter
    expect(await limiter.check(rule)).toMatchObject({ allowed: true, degraded: true, remaining: 2 })
    await limiter.refund(rule) // never throws, gives back to the local counter
    expect(await limiter.check(rule)).toMatchObject({ allowed: true, degraded: true, remaining: 2 })
    expect(logger.entries.map((e) => e.level)).toEqual(['warn'])

    fail(undefined)
    await waitFor(async () => !(await limiter.check(rule)).degraded, 2_000)
    expect(logger.entries.map((e) => e.level)).toEqual(['warn', 'info'])
    // back on the shared count: the first check and the one that found the store back, none of the degraded ones
    expect(await limiter.peek(rule)).toMatchObject({ degraded: false, remaining: 1 })
  })

  test('while the store is down, requests do not wait on it: only a background ping probes it', async () => {
    const { store, calls, fail } = switchableStore()
    const limiter = createRateLimiter({ store, now: () => fixedNow })
    fail(unavailable())
    await limiter.check({ scope: 'probe', id: 'u', limit: 100, windowMs: MINUTE })
    calls.length = 0
    for (let i = 0; i < 20; i++) {
      await limiter.check({ scope: 'probe', id: 'u', limit: 100, windowMs: MINUTE })
      await Bun.sleep(30)
    }
    expect(calls.filter((c) => c !== 'ping')).toEqual([])
    // at most one ping per 250 ms over ~600 ms
    expect(calls.length).toBeGreaterThanOrEqual(1)
    expect(calls.length).toBeLessThanOrEqual(3)
  })

  test('localLimitFactor scales the local limit, never below 1', async () => {
    const { store, fail } = switchableStore()
    fail(unavailable())
    const limiter = createRateLimiter({ store, now: () => fixedNow, localLimitFactor: 0.5 })
    const rule: RateRule = { scope: 'half', id: 'u', limit: 6, windowMs: MINUTE }
    const results = await Promise.all(Array.from({ length: 10 }, () => limiter.check(rule)))
    expect(results.filter((r) => r.allowed)).toHaveLength(3)
    expect(results[0]).toMatchObject({ limit: 3, degraded: true })
    const tiny = await limiter.check({ scope: 'tiny', id: 'u', limit: 1, windowMs: MINUTE })
    expect(tiny).toMatchObject({ allowed: true, limit: 1 })
    expect(() => createRateLimiter({ store, localLimitFactor: 0 })).toThrow(RangeError)
  })

  test('an unexpected store error also falls back; it is logged, but not once per request', async () => {
    const { store, calls, fail } = switchableStore()
    const logger = captureLogger()
    const limiter = createRateLimiter({ store, logger, now: () => fixedNow })
    fail(new TypeError('WRONGTYPE Operation against a key holding the wrong kind of value'))
    for (let i = 0; i < 5; i++) {
      const r = await limiter.check({ scope: 'odd', id: 'u', limit: 2, windowMs: MINUTE })
      expect(r).toMatchObject({ degraded: true, allowed: i < 2 })
    }
    expect(logger.entries).toHaveLength(1)
    expect(logger.entries[0]).toMatchObject({ level: 'warn', obj: { err: expect.any(TypeError) } })
    // not mistaken for an outage: the store is still asked every time
    expect(calls.filter((c) => c === 'incr' || c === 'incrMany')).toHaveLength(5)
  })

  test('limit 0 never touches the store', async () => {
    const { store, calls } = switchableStore()
    const limiter = createRateLimiter({ store })
    const rule: RateRule = { scope: 'free', id: 'u', limit: 0, windowMs: MINUTE }
    await limiter.check(rule)
    await limiter.checkAll([rule, rule])
    await limiter.peek(rule)
    await limiter.reset(rule)
    expect(calls).toEqual([])
  })

  test('invalid rules are programming errors and throw', async () => {
    const limiter = createRateLimiter({ store: createMemoryStore() })
    expect(await rejectionOf(limiter.check({ scope: 's', id: 'u', limit: -1, windowMs: MINUTE }))).toBeInstanceOf(RangeError)
    expect(await rejectionOf(limiter.check({ scope: 's', id: 'u', limit: 1.5, windowMs: MINUTE }))).toBeInstanceOf(RangeError)
    expect(await rejectionOf(limiter.check({ scope: 's', id: 'u', limit: 1, windowMs: 0 }))).toBeInstanceOf(RangeError)
    // 60 s and 1 h windows starting at the same instant would share one key: one scope, one window
    await limiter.check({ scope: 'rpm', id: 'u', limit: 1, windowMs: MINUTE })
    expect(await rejectionOf(limiter.check({ scope: 'rpm', id: 'u', limit: 1, windowMs: 60 * MINUTE }))).toBeInstanceOf(RangeError)
  })
})

describe('local counter', () => {
  test('a counter ends with its window', () => {
    const counter = createLocalCounter()
    expect(counter.incr('k', 1_000, 0)).toBe(1)
    expect(counter.incr('k', 1_000, 999)).toBe(2)
    expect(counter.get('k', 999)).toBe(2)
    expect(counter.get('k', 1_000)).toBe(0)
    expect(counter.incr('k', 2_000, 1_000)).toBe(1)
  })

  test('never holds more than maxKeys: expired windows go first, then the oldest live ones', () => {
    const counter = createLocalCounter(100)
    for (let i = 0; i < 100; i++) counter.incr(`old-${i}`, 1_000, 0)
    counter.incr('new', 2_000, 1_500) // every old window ended
    expect(counter.size).toBe(1)

    for (let i = 0; i < 10_000; i++) counter.incr(`live-${i}`, 10_000, 1_500)
    expect(counter.size).toBeLessThanOrEqual(100)
    // the newest counters survived
    expect(counter.get('live-9999', 1_500)).toBe(1)
  })
})
