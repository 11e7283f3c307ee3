/** An instance's presence: seen by the others while it runs, gone at once when it stops cleanly. */
import { afterAll, describe, expect, test } from 'bun:test'
import { createMemoryStore, createPresence, createRedisStore, keys, type Store } from '../../src/store'
import { ci, hasRedis, redisUrl } from '../helpers/services.ts'

if (ci && !hasRedis) throw new Error('presence.test needs Redis under CI=true')

describe('presence on the in-process store', () => {
  test('an instance alone knows only itself: any other id is a previous process', async () => {
    const p = createPresence(createMemoryStore())
    expect(await p.gone([p.id, 'inst_other'])).toEqual(new Set(['inst_other']))
  })
})

describe.skipIf(!hasRedis)('presence on Redis', () => {
  const stores: Store[] = []
  afterAll(async () => {
    for (const s of stores) await s.close()
  })

  test("each instance sees the other's (in one read); a clean stop removes it at once; a stopped refresher's key expires", async () => {
    const [sa, sb] = await Promise.all([createRedisStore({ url: redisUrl }), createRedisStore({ url: redisUrl })])
    stores.push(sa, sb)
    const a = createPresence(sa)
    const b = createPresence(sb)
    expect(a.id).not.toBe(b.id)
    await Bun.sleep(50)
    expect(await b.gone([a.id, b.id])).toEqual(new Set())
    expect(await a.gone([b.id])).toEqual(new Set())
    await a.close()
    expect(await b.gone([a.id, b.id, 'inst_never'])).toEqual(new Set([a.id, 'inst_never']))
    // a crash: nobody refreshes; the key carries a TTL of a few seconds
    const ttl = await sb.incr(keys.instanceAlive(b.id), 0)
    expect(ttl.ttlMs).toBeGreaterThan(0)
    expect(ttl.ttlMs).toBeLessThanOrEqual(5_000)
    await b.close()
  })
})
