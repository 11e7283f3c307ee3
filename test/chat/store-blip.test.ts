/**
 * A resumed stream followed from another instance survives a Redis that stops answering for a moment: the
 * follower's check of the holder fails, and that is not taken for the stream being lost. Two gateways on a
 * private redis-server this file freezes (SIGSTOP) and thaws, one Postgres.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { TestApp } from '../helpers/app'
import type { TestUser } from '../helpers/identity'
import { RedisServer } from '../helpers/redis-server'
import { ci, createThrowawayDatabase, hasPostgres } from '../helpers/services'
import { chatRequest, chatUser, listeningGateway, SseReader } from './helpers'

const hasRedisBinary = Bun.which('redis-server') !== null
if (ci && (!hasPostgres || !hasRedisBinary)) throw new Error('store-blip.test needs Postgres and redis-server under CI=true')

describe.skipIf(!hasPostgres || !hasRedisBinary)('a follower on another instance through a Redis blip', () => {
  let redis: RedisServer
  let database: { url: string; drop: () => Promise<void> }
  let a: { gw: TestApp; base: string }
  let b: { gw: TestApp; base: string }
  let user: TestUser

  beforeAll(async () => {
    redis = await RedisServer.onFreePort()
    await redis.start()
    database = await createThrowawayDatabase()
    const env = { DATABASE_URL: database.url, REDIS_URL: redis.url, CHAT_PING_INTERVAL_MS: '100' }
    a = await listeningGateway(env)
    b = await listeningGateway(env)
    user = await chatUser(a.gw)
  }, 60_000)
  afterAll(async () => {
    redis?.freeze(false)
    for (const x of [a, b]) {
      await x?.gw.app.stop(true)
      await x?.gw.close()
    }
    await database?.drop()
    await redis?.kill()
  })

  test('Redis frozen while the upstream is silent: the follower keeps waiting and gets the whole answer, no "lost" error', async () => {
    const id = `req-${crypto.randomUUID()}`
    // the first chunk, 5 s of silence, then the rest: the follower checks on the holder after 3 s without news
    const first = new SseReader(
      await fetch(`${a.base}/api/v2/chat/stream`, chatRequest(user, { message: 'blip [[sim chunks=6 fail_after=5 silence_ms=5000]]', request_id: id })),
    )
    await first.until('generation_chunk')
    const res = await fetch(`${b.base}/api/v2/chat/stream/${id}`, { headers: user.auth })
    expect(res.status).toBe(200)
    const second = new SseReader(res)
    await second.until('generation_chunk')
    // frozen across the follower's check (~3 s after it last heard from the holder), thawed before the upstream speaks again
    await Bun.sleep(2000)
    redis.freeze(true)
    await Bun.sleep(2000)
    redis.freeze(false)
    const [seenByA, seenByB] = await Promise.all([first.rest(), second.rest()])
    // the follower did check on the holder while Redis was frozen, and could not
    expect(b.gw.logs.some((l) => l.request_id === id && String(l.msg).startsWith('could not check on a chat stream'))).toBe(true)
    const named = (seen: typeof seenByA) => seen.filter((e) => e.event)
    expect(named(seenByB).filter((e) => e.event === 'error')).toEqual([])
    expect(named(seenByB).at(-1)!.event).toBe('stream_end')
    // the follower got what the holder's own client got, event for event
    expect(named(seenByB).map((e) => [e.id, e.event, e.data])).toEqual(named(seenByA).map((e) => [e.id, e.event, e.data]))
  }, 30_000)
})
