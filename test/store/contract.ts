/**
 * The behaviour every Store must show, run against each implementation (store.test.ts).
 * Each test uses its own keys under a per-run prefix, so runs sharing a Redis never collide.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { StoreUnavailableError, type Store } from '../../src/store'
import { uniquePrefix, waitFor } from './helpers.ts'
import { rejectionOf } from '../helpers/rejection'

export function storeContract(name: string, createStore: () => Promise<Store>): void {
  describe(`${name} store contract`, () => {
    let store: Store
    const prefix = uniquePrefix(name)
    let n = 0
    /** a fresh key (or channel) name for one test */
    const k = (label: string) => `${prefix}${label}:${n++}`

    beforeAll(async () => {
      store = await createStore()
    })
    afterAll(async () => {
      await store.close()
    })

    describe('values', () => {
      test('set then get; a missing key reads null', async () => {
        const key = k('v')
        expect(await store.get(key)).toBeNull()
        expect(await store.set(key, 'hello')).toBe(true)
        expect(await store.get(key)).toBe('hello')
        expect(await store.exists(key)).toBe(true)
      })

      test('a key with a TTL disappears after it', async () => {
        const key = k('ttl')
        await store.set(key, 'x', { ttlMs: 100 })
        expect(await store.get(key)).toBe('x')
        await Bun.sleep(160)
        expect(await store.get(key)).toBeNull()
        expect(await store.exists(key)).toBe(false)
      })

      test('set without a TTL removes an earlier TTL', async () => {
        const key = k('ttl-cleared')
        await store.set(key, 'a', { ttlMs: 100 })
        await store.set(key, 'b')
        await Bun.sleep(160)
        expect(await store.get(key)).toBe('b')
      })

      test('onlyIfAbsent writes once, then again after the key expired', async () => {
        const key = k('nx')
        expect(await store.set(key, 'first', { onlyIfAbsent: true, ttlMs: 100 })).toBe(true)
        expect(await store.set(key, 'second', { onlyIfAbsent: true })).toBe(false)
        expect(await store.get(key)).toBe('first')
        await Bun.sleep(160)
        expect(await store.set(key, 'third', { onlyIfAbsent: true })).toBe(true)
        expect(await store.get(key)).toBe('third')
      })

      test('del counts the keys that existed', async () => {
        const [a, b, missing] = [k('d'), k('d'), k('d')]
        await store.set(a, '1')
        await store.set(b, '2')
        expect(await store.del(a, b, missing)).toBe(2)
        expect(await store.del(a)).toBe(0)
        expect(await store.del()).toBe(0)
        expect(await store.get(a)).toBeNull()
      })

      test('a non-positive TTL is a programming error, not an outage', async () => {
        expect(await rejectionOf(store.set(k('bad'), 'x', { ttlMs: 0 }))).toBeInstanceOf(RangeError)
        expect(await rejectionOf(store.incr(k('bad'), 1.5))).toBeInstanceOf(RangeError)
      })
    })

    describe('counters', () => {
      test('incr adds, starting from zero, with any integer step', async () => {
        const key = k('c')
        expect(await store.incr(key)).toEqual({ value: 1, ttlMs: -1 })
        expect((await store.incr(key, 5)).value).toBe(6)
        expect((await store.incr(key, -2)).value).toBe(4)
        expect(await store.get(key)).toBe('4')
      })

      test('incrMany counts several keys in one step, each with its own TTL', async () => {
        const [a, b] = [k('many-a'), k('many-b')]
        await store.incr(a, 10)
        const results = await store.incrMany([{ key: a, by: 2 }, { key: b, ttlMs: 30_000 }])
        expect(results[0]).toEqual({ value: 12, ttlMs: -1 })
        expect(results[1]!.value).toBe(1)
        expect(results[1]!.ttlMs).toBeGreaterThan(25_000)
        expect(await store.incrMany([])).toEqual([])
      })

      test('mGet reads several keys at once, null where absent', async () => {
        const [a, b] = [k('mget-a'), k('mget-b')]
        await store.set(a, 'x')
        expect(await store.mGet([a, b])).toEqual(['x', null])
        expect(await store.mGet([])).toEqual([])
      })

      test('200 parallel incr give every value once and set the TTL once', async () => {
        const key = k('race')
        const results = await Promise.all(Array.from({ length: 200 }, () => store.incr(key, 1, 60_000)))
        const values = results.map((r) => r.value).sort((a, b) => a - b)
        expect(values).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
        for (const r of results) {
          expect(r.ttlMs).toBeGreaterThan(55_000)
          expect(r.ttlMs).toBeLessThanOrEqual(60_000)
        }
        expect(await store.get(key)).toBe('200')
      })

      test('the TTL is not extended by later incr, and the window restarts after it', async () => {
        const key = k('window')
        const first = await store.incr(key, 1, 200)
        expect(first.ttlMs).toBeGreaterThan(150)
        await Bun.sleep(100)
        const second = await store.incr(key, 1, 200)
        expect(second.value).toBe(2)
        expect(second.ttlMs).toBeLessThanOrEqual(first.ttlMs - 80)
        await Bun.sleep(150)
        expect((await store.incr(key, 1, 200)).value).toBe(1)
      })
    })

    describe('sets', () => {
      test('sAdd counts new members; sRem removes; an emptied set is gone', async () => {
        const key = k('s')
        expect(await store.sAdd(key, ['a', 'b'])).toBe(2)
        expect(await store.sAdd(key, ['b', 'c'])).toBe(1)
        expect((await store.sMembers(key)).sort()).toEqual(['a', 'b', 'c'])
        expect(await store.sCard(key)).toBe(3)
        expect(await store.sRem(key, ['a', 'zzz'])).toBe(1)
        expect((await store.sMembers(key)).sort()).toEqual(['b', 'c'])
        expect(await store.sRem(key, ['b', 'c'])).toBe(2)
        expect(await store.exists(key)).toBe(false)
        expect(await store.sMembers(key)).toEqual([])
        expect(await store.sCard(key)).toBe(0)
        expect(await store.sAdd(key, [])).toBe(0)
      })

      test('sAddCard adds and answers the size of the set then, with the TTL as sAdd', async () => {
        const key = k('s-card')
        expect(await store.sAddCard(key, ['a', 'b'], 200)).toBe(2)
        expect(await store.sAddCard(key, ['b', 'c'], 200)).toBe(3)
        expect(await store.sAddCard(key, [])).toBe(3)
        await Bun.sleep(300)
        expect(await store.sCard(key)).toBe(0)
        expect(await store.sAddCard(key, ['z'])).toBe(1)
      })

      test('sAdd with a TTL refreshes it; the set expires when no longer refreshed', async () => {
        const key = k('s-ttl')
        await store.sAdd(key, ['a'], 200)
        await Bun.sleep(120)
        await store.sAdd(key, ['b'], 200)
        await Bun.sleep(120)
        expect((await store.sMembers(key)).sort()).toEqual(['a', 'b'])
        await Bun.sleep(140)
        expect(await store.sMembers(key)).toEqual([])
      })
    })

    describe('append', () => {
      test('append creates the value, then adds to its end; get reads it whole', async () => {
        const key = k('a')
        await store.append(key, 'id: 0\n\n')
        await store.append(key, 'id: 1\n\n')
        await store.append(key, '')
        expect(await store.get(key)).toBe('id: 0\n\nid: 1\n\n')
      })

      test('append with a TTL refreshes it; without one it keeps the TTL it had', async () => {
        const key = k('a-ttl')
        await store.append(key, '1', 200)
        await Bun.sleep(120)
        await store.append(key, '2', 200)
        await Bun.sleep(120)
        expect(await store.get(key)).toBe('12')
        await store.append(key, '3')
        await Bun.sleep(140)
        expect(await store.get(key)).toBeNull()
      })
    })

    describe('pub/sub', () => {
      test('every subscriber gets every message, in order, after publish returns', async () => {
        const channel = k('ch')
        const a: string[] = []
        const b: string[] = []
        await store.subscribe(channel, (m) => a.push(m))
        await store.subscribe(channel, (m) => b.push(m))
        const publishing = store.publish(channel, 'one')
        expect(a).toEqual([]) // never delivered inside the publisher's call
        await publishing
        await store.publish(channel, 'two')
        await waitFor(() => a.length === 2 && b.length === 2, 2000)
        expect(a).toEqual(['one', 'two'])
        expect(b).toEqual(['one', 'two'])
      })

      test('publish says how many stores heard it: none without a subscriber, one for this store however many handlers', async () => {
        const channel = k('ch-count')
        expect(await store.publish(channel, 'nobody')).toBe(0)
        const offA = await store.subscribe(channel, () => {})
        const offB = await store.subscribe(channel, () => {})
        expect(await store.publish(channel, 'both')).toBe(1)
        await offA()
        await offB()
        expect(await store.publish(channel, 'gone')).toBe(0)
      })

      test('unsubscribe stops only that handler, and is idempotent', async () => {
        const channel = k('ch-unsub')
        const kept: string[] = []
        const dropped: string[] = []
        const handler = (m: string) => dropped.push(m)
        await store.subscribe(channel, (m) => kept.push(m))
        const unsubscribe = await store.subscribe(channel, handler)
        const sameFnAgain = await store.subscribe(channel, handler)
        await store.publish(channel, 'before')
        await waitFor(() => kept.length === 1 && dropped.length === 2, 2000)
        await unsubscribe()
        await unsubscribe()
        await store.publish(channel, 'after-one')
        await waitFor(() => kept.length === 2 && dropped.length === 3, 2000)
        await sameFnAgain()
        await store.publish(channel, 'after-both')
        await waitFor(() => kept.length === 3, 2000)
        await Bun.sleep(50)
        expect(dropped).toEqual(['before', 'before', 'after-one'])
        expect(kept).toEqual(['before', 'after-one', 'after-both'])
      })

      test('a channel whose last handler left can be subscribed again', async () => {
        const channel = k('ch-again')
        const got: string[] = []
        const off = await store.subscribe(channel, () => got.push('stale'))
        await off()
        await store.subscribe(channel, (m) => got.push(m))
        await store.publish(channel, 'fresh')
        await waitFor(() => got.length >= 1, 2000)
        await Bun.sleep(50)
        expect(got).toEqual(['fresh'])
      })

      test('a throwing or rejecting handler does not keep the message from the others', async () => {
        const channel = k('ch-throw')
        const got: string[] = []
        await store.subscribe(channel, () => {
          throw new Error('boom')
        })
        await store.subscribe(channel, async () => {
          throw new Error('async boom')
        })
        await store.subscribe(channel, (m) => got.push(m))
        await store.publish(channel, 'm')
        await waitFor(() => got.length === 1, 2000)
      })

      test('messages go only to their channel', async () => {
        const [c1, c2] = [k('ch-a'), k('ch-b')]
        const got: string[] = []
        await store.subscribe(c1, (m) => got.push(`1:${m}`))
        await store.subscribe(c2, (m) => got.push(`2:${m}`))
        await store.publish(c2, 'x')
        await store.publish(c1, 'y')
        await waitFor(() => got.length === 2, 2000)
        expect(got.sort()).toEqual(['1:y', '2:x'])
      })
    })

    describe('lifecycle', () => {
      test('ping answers', async () => {
        await store.ping()
      })

      test('close is idempotent; afterwards calls reject with StoreUnavailableError', async () => {
        const own = await createStore()
        const got: string[] = []
        await own.subscribe(k('closing'), (m) => got.push(m))
        await Promise.all([own.close(), own.close()])
        await own.close()
        expect(await rejectionOf(own.get(k('after')))).toBeInstanceOf(StoreUnavailableError)
        expect(await rejectionOf(own.ping())).toBeInstanceOf(StoreUnavailableError)
        expect(await rejectionOf(own.publish(k('after'), 'x'))).toBeInstanceOf(StoreUnavailableError)
      })
    })
  })
}
