/**
 * Chat streams through a Redis that stops answering for a moment (a private redis-server this file freezes with
 * SIGSTOP and thaws): the holder's client gets every event and the answer is stored; a follower on another
 * instance does not take its failed check on the holder for the stream being lost; what the holder wrote into the
 * frozen socket at the end lands, so a later replay is whole; after Redis restarts empty, cancel and resume across
 * instances work again. Two gateways, one Postgres.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { TestApp } from '../helpers/app'
import type { TestUser } from '../helpers/identity'
import { keys } from '../../src/store'
import { RedisServer } from '../helpers/redis-server'
import { ci, createThrowawayDatabase, hasPostgres } from '../helpers/services'
import { chatRequest, chatUser, eventually, listeningGateway, SseReader } from './helpers'

const hasRedisBinary = Bun.which('redis-server') !== null
if (ci && (!hasPostgres || !hasRedisBinary)) throw new Error('store-blip.test needs Postgres and redis-server under CI=true')

describe.skipIf(!hasPostgres || !hasRedisBinary)('chat through a Redis blip (two instances)', () => {
  let redis: RedisServer
  let database: { url: string; drop: () => Promise<void> }
  let a: { gw: TestApp; base: string }
  let b: { gw: TestApp; base: string }
  let user: TestUser

  beforeAll(async () => {
    redis = await RedisServer.onFreePort()
    await redis.start()
    database = await createThrowawayDatabase()
    const env = { DATABASE_URL: database.url, REDIS_URL: redis.url, CHAT_PING_INTERVAL_MS: '100', CHAT_DISCONNECT_GRACE_S: '2', CHAT_FOLLOWER_PATIENCE_S: '2.5', CHAT_REPLAY_MAX_BYTES: String(1024 * 1024) }
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
    await redis?.remove()
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

  test('Redis frozen past CHAT_FOLLOWER_PATIENCE_S: the follower closes its client\'s connection (no error: the stream is fine), and a resume once Redis is back gets the rest', async () => {
    const id = `req-${crypto.randomUUID()}`
    // the first chunk, then 12 s of silence, then the rest
    const first = new SseReader(
      await fetch(`${a.base}/api/v2/chat/stream`, chatRequest(user, { message: 'patience [[sim chunks=4 fail_after=5 silence_ms=12000]]', request_id: id })),
    )
    await first.until('generation_chunk')
    const second = new SseReader(await fetch(`${b.base}/api/v2/chat/stream/${id}`, { headers: user.auth }))
    await second.until('generation_chunk')
    redis.freeze(true)
    const frozenAt = performance.now()
    let seenByB: Awaited<ReturnType<typeof second.rest>>
    try {
      seenByB = await second.rest()
    } finally {
      redis.freeze(false)
    }
    // the first failed check comes ~3 s after B last heard from A, the one that gives up 3 s later (past the 2.5 s
    // of patience): well before the silence ends, where it used to wait for as long as Redis was away
    expect(performance.now() - frozenAt).toBeLessThan(9000)
    expect(b.gw.logs.some((l) => l.request_id === id && String(l.msg).startsWith('gave up following'))).toBe(true)
    const namedByB = seenByB.filter((e) => e.event)
    expect(namedByB.map((e) => e.event)).not.toContain('error')
    expect(namedByB.at(-1)!.event).toBe('generation_chunk')
    // Redis is back: resuming from the last event B's client had gives exactly the rest, as A's client saw it
    const lastId = namedByB.at(-1)!.id!
    const resumed = new SseReader(await fetch(`${b.base}/api/v2/chat/stream/${id}`, { headers: { ...user.auth, 'last-event-id': String(lastId) } }))
    const [seenByA, rest] = await Promise.all([first.rest(), resumed.rest()])
    const namedByA = seenByA.filter((e) => e.event)
    expect(namedByA.at(-1)!.event).toBe('stream_end')
    expect(rest.filter((e) => e.event).map((e) => [e.id, e.event, e.data])).toEqual(
      namedByA.filter((e) => e.id! > lastId).map((e) => [e.id, e.event, e.data]),
    )
  }, 40_000)

  /** a stream on A, read up to its first chunk: its reader and conversation */
  const streamingOnA = async (message: string) => {
    const reader = new SseReader(await fetch(`${a.base}/api/v2/chat/stream`, chatRequest(user, { message })))
    const conversationId = (await reader.until('stream_start')).data!.conversation_id as string
    await reader.until('generation_chunk')
    return { reader, conversationId }
  }
  /** the named events B replays of a finished stream, once it can (A stores the ending again in the background) */
  const replayedOnB = async (rid: string) => {
    let replay: Array<SseReader['seen'][number]> = []
    await eventually(async () => {
      const res = await fetch(`${b.base}/api/v2/chat/stream/${rid}`, { headers: user.auth })
      if (res.status !== 200) return false
      replay = (await new SseReader(res).rest()).filter((e) => e.event)
      return true
    }, 10_000)
    return replay
  }
  /** the answer stored after the question of a conversation's first turn */
  const storedAnswer = async (conversationId: string) => {
    const res = await fetch(`${a.base}/api/v2/conversations/${conversationId}/messages`, { headers: user.auth })
    expect(res.status).toBe(200)
    return ((await res.json()) as { items: Array<Record<string, unknown>> }).items[1]
  }

  test("Redis frozen mid-stream: the holder's own client gets every chunk and stream_end, and the answer is stored whole", async () => {
    const { reader, conversationId } = await streamingOnA('steady [[sim chunks=100 delay_ms=20]]')
    redis.freeze(true)
    await Bun.sleep(1500)
    redis.freeze(false)
    const seen = (await reader.rest()).filter((e) => e.event)
    expect(seen.map((e) => e.id)).toEqual(seen.map((_, i) => i))
    expect(seen.filter((e) => e.event === 'error')).toEqual([])
    const chunks = seen.filter((e) => e.event === 'generation_chunk')
    expect(chunks).toHaveLength(100)
    expect(seen.at(-1)!.event).toBe('stream_end')
    expect(await storedAnswer(conversationId)).toMatchObject({ role: 'assistant', status: 'completed', content: chunks.map((e) => e.data!.content).join('') })
  }, 30_000)

  test('Redis frozen for 2 s as the stream ends: stream_end comes at once, the answer is stored, and B replays the whole stream once Redis is back', async () => {
    const { reader, conversationId } = await streamingOnA('ending [[sim chunks=10 delay_ms=20]]')
    redis.freeze(true)
    const frozenAt = performance.now()
    const thawed = Bun.sleep(2000).then(() => redis.freeze(false))
    try {
      const seen = (await reader.rest()).filter((e) => e.event)
      expect(seen.at(-1)!.event).toBe('stream_end')
      expect(performance.now() - frozenAt).toBeLessThan(1500)
    } finally {
      await thawed
    }
    expect(await storedAnswer(conversationId)).toMatchObject({ role: 'assistant', status: 'completed' })
    // once Redis is back, B replays the whole stream: what the holder wrote into the frozen socket landed
    const rid = reader.seen[0]!.data!.request_id as string
    const replay = (await new SseReader(await fetch(`${b.base}/api/v2/chat/stream/${rid}`, { headers: user.auth })).rest()).filter((e) => e.event)
    expect(replay.map((e) => [e.id, e.event, e.data])).toEqual(reader.seen.filter((e) => e.event).map((e) => [e.id, e.event, e.data]))
  }, 30_000)

  test('Redis killed as the stream ends (its log, ended claim and live-set removal refused): once it is back with its data, B replays the whole stream and no phantom stream counts against the user', async () => {
    // a Redis that keeps its data across a kill (append-only file), so what was refused is visible after the restart
    await redis.kill()
    await redis.start({ durable: true })
    // the instances reconnect; give them a moment, as a client would retry
    await Bun.sleep(1500)
    const { reader } = await streamingOnA('gone [[sim chunks=30 delay_ms=20]]')
    const rid = reader.seen[0]!.data!.request_id as string
    await redis.kill()
    try {
      const seen = (await reader.rest()).filter((e) => e.event)
      expect(seen.at(-1)!.event).toBe('stream_end')
    } finally {
      await redis.start({ durable: true })
    }
    // A tries the ending again in the background: B finds it within the retry's back-off
    const replay = await replayedOnB(rid)
    expect(replay.map((e) => [e.id, e.event, e.data])).toEqual(reader.seen.filter((e) => e.event).map((e) => [e.id, e.event, e.data]))
    // the ending was refused at first (no offline queue), then stored on a later try
    const said = (msg: string) => a.gw.logs.some((l) => l.request_id === rid && l.msg === msg)
    expect(said('chat stream ending not stored yet: the store is unreachable; trying again')).toBe(true)
    expect(said('chat stream ending stored on a later try')).toBe(true)
    // and it left its user's live set: no phantom stream counts against concurrent_streams_per_user
    const live = await a.gw.deps.store.sMembers(keys.chatLive(user.tenantId, user.id))
    expect(live.filter((m) => m.startsWith(`${rid}|`))).toEqual([])
  }, 30_000)

  test('endings waiting for Redis past CHAT_REPLAY_MAX_BYTES: the oldest is let go (logged, 404 everywhere), the newest is still stored once Redis is back', async () => {
    // two answers of ~830 KB each: one fits under the 1 MiB cap, both do not
    const big = 'big [[sim chunks=100 chunk_size=8192 delay_ms=10]]'
    const first = await streamingOnA(big)
    await Bun.sleep(100)
    const second = await streamingOnA(big)
    const rid1 = first.reader.seen[0]!.data!.request_id as string
    const rid2 = second.reader.seen[0]!.data!.request_id as string
    await redis.kill()
    try {
      for (const s of [first, second]) expect((await s.reader.rest()).filter((e) => e.event).at(-1)!.event).toBe('stream_end')
    } finally {
      await redis.start()
    }
    const said = (rid: string, msg: string) => a.gw.logs.some((l) => l.request_id === rid && l.msg === msg)
    expect(said(rid1, 'chat stream ending dropped while waiting for the store (CHAT_REPLAY_MAX_BYTES): other instances cannot replay it')).toBe(true)
    // the newest is stored on a later try: B replays it whole
    const replay = await replayedOnB(rid2)
    expect(replay.map((e) => e.id)).toEqual(second.reader.seen.filter((e) => e.event).map((e) => e.id))
    expect(said(rid2, 'chat stream ending dropped while waiting for the store (CHAT_REPLAY_MAX_BYTES): other instances cannot replay it')).toBe(false)
    // the one let go is nowhere: not in A's memory, not in the store
    for (const base of [a.base, b.base]) expect((await fetch(`${base}/api/v2/chat/stream/${rid1}`, { headers: user.auth })).status).toBe(404)
    // what its client saw is still stored (the answer went to Postgres, not Redis)
    const sent = first.reader.seen.filter((e) => e.event === 'generation_chunk').map((e) => String(e.data!.content))
    expect(sent).toHaveLength(100)
    expect(await storedAnswer(first.conversationId)).toMatchObject({ status: 'completed', content: sent.join('') })
  }, 40_000)

  test("a follower that leaves while Redis is down (its unwatch lost): its watch lapses and A cancels the stream after the grace", async () => {
    const id = `req-${crypto.randomUUID()}`
    const ctrl = new AbortController()
    const first = new SseReader(await fetch(`${a.base}/api/v2/chat/stream`, chatRequest(user, { message: 'orphan [[sim chunks=2000 delay_ms=20]]', request_id: id }, ctrl.signal)))
    await first.until('generation_chunk')
    const away = new AbortController()
    const follower = new SseReader(await fetch(`${b.base}/api/v2/chat/stream/${id}`, { headers: user.auth, signal: away.signal }))
    await follower.until('generation_chunk')
    // A's own client leaves: B's watch keeps the stream going
    ctrl.abort()
    await Bun.sleep(300)
    await redis.kill()
    away.abort()
    await Bun.sleep(500)
    await redis.start()
    const open = () => a.gw.deps.simulator!.stats.queriesOpen
    expect(open()).toBe(1)
    // nobody watches: cancelled once the watch lapses (15 s without renewal) and the grace (2 s) is over, not at
    // the end of a 40 s answer
    await eventually(() => open() === 0, 25_000)
  }, 40_000)

  test('after Redis restarts (killed, started again, empty): cancel and resume through B reach the stream A holds', async () => {
    await redis.kill()
    await redis.start()
    // the instances reconnect and subscribe again; give them a moment, as a client would retry
    await Bun.sleep(1500)
    const id = `req-${crypto.randomUUID()}`
    const first = new SseReader(await fetch(`${a.base}/api/v2/chat/stream`, chatRequest(user, { message: 'after [[sim chunks=200 delay_ms=20]]', request_id: id })))
    await first.until('generation_chunk')
    const follower = new SseReader(await fetch(`${b.base}/api/v2/chat/stream/${id}`, { headers: user.auth }))
    await follower.until('generation_chunk')
    const res = await fetch(`${b.base}/api/v2/chat/cancel`, chatRequest(user, { request_id: id }))
    expect(res.status).toBe(200)
    expect((await first.until('stream_cancelled')).data).toEqual({ request_id: id, reason: 'client_cancelled' })
    const followed = (await follower.rest()).filter((e) => e.event)
    expect(followed.at(-1)!.event).toBe('stream_cancelled')
  }, 30_000)
})
