/**
 * Two gateway instances on one Postgres and one Redis: a stream held by A can be cancelled, re-POSTed and
 * resumed through B — nothing lost, nothing repeated, the upstream asked once — and stays invisible to
 * other users and tenants.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { TestApp } from '../helpers/app'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'
import { keys } from '../../src/store'
import { ci, createThrowawayDatabase, hasPostgres, hasRedis, redisUrl } from '../helpers/services'
import { chatRequest, chatUser, eventually, listeningGateway, SseReader, type SseEvent } from './helpers'

if (ci && (!hasPostgres || !hasRedis)) throw new Error('cluster.test needs Postgres and Redis under CI=true')

describe.skipIf(!hasPostgres || !hasRedis)('chat across two instances (Postgres + Redis)', () => {
  let database: { url: string; drop: () => Promise<void> }
  let a: { gw: TestApp; base: string }
  let b: { gw: TestApp; base: string }
  let user: TestUser

  beforeAll(async () => {
    database = await createThrowawayDatabase()
    const env = { DATABASE_URL: database.url, REDIS_URL: redisUrl, CHAT_PING_INTERVAL_MS: '100', CHAT_DISCONNECT_GRACE_S: '2' }
    a = await listeningGateway(env)
    b = await listeningGateway(env)
    user = await chatUser(a.gw)
  }, 60_000)
  afterAll(async () => {
    for (const x of [a, b]) {
      await x?.gw.app.stop(true)
      await x?.gw.close()
    }
    await database?.drop()
  })

  const started = () => a.gw.deps.simulator!.stats.queriesStarted + b.gw.deps.simulator!.stats.queriesStarted
  const open = () => a.gw.deps.simulator!.stats.queriesOpen + b.gw.deps.simulator!.stats.queriesOpen
  const post = (at: { base: string }, body: Record<string, unknown>, who = user, signal?: AbortSignal) =>
    fetch(`${at.base}/api/v2/chat/stream`, chatRequest(who, body, signal))
  const resume = (at: { base: string }, id: string, lastEventId?: number, who = user) =>
    fetch(`${at.base}/api/v2/chat/stream/${id}`, { headers: { ...who.auth, ...(lastEventId !== undefined && { 'last-event-id': String(lastEventId) }) } })
  const cancel = (at: { base: string }, id: string, who = user) => fetch(`${at.base}/api/v2/chat/cancel`, chatRequest(who, { request_id: id }))
  const events = (seen: SseEvent[]) => seen.filter((e) => e.event)
  const rid = () => `req-${crypto.randomUUID()}`

  test('cancel through B ends the stream A holds: stream_cancelled, upstream closed, stored as cancelled', async () => {
    const id = rid()
    const reader = new SseReader(await post(a, { message: 'long [[sim chunks=200 delay_ms=20]]', request_id: id }))
    await reader.until('generation_chunk')
    const res = await cancel(b, id)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ request_id: id, status: 'cancelled' })
    expect((await reader.until('stream_cancelled')).data).toEqual({ request_id: id, reason: 'client_cancelled' })
    await eventually(() => open() === 0)
    const msgs = await fetch(`${b.base}/api/v2/conversations/${reader.seen[0]!.data!.conversation_id}/messages`, { headers: user.auth })
    const [, answer] = ((await msgs.json()) as { items: Array<Record<string, any>> }).items
    expect(answer!.status).toBe('cancelled')
    // over: nothing to cancel any more
    expect((await cancel(b, id)).status).toBe(404)
  })

  test('the same POST sent to A and B at once and refused (unknown conversation): both get the 404, neither an empty stream', async () => {
    for (let round = 0; round < 8; round++) {
      const body = { message: 'into nowhere', conversation_id: 'conv_nope', request_id: rid() }
      const replies = await Promise.all([a, b, a, b].map((at) => post(at, body)))
      const seen = await Promise.all(replies.map(async (r) => ({ status: r.status, code: ((await r.json().catch(() => ({}))) as { code?: string }).code })))
      expect(seen).toEqual(Array.from({ length: 4 }, () => ({ status: 404, code: 'CONVERSATION_NOT_FOUND' })))
    }
  })

  test('a client that drops from A resumes on B: every event exactly once, in order; the upstream asked once', async () => {
    const id = rid()
    const before = started()
    const ctrl = new AbortController()
    const first = new SseReader(await post(a, { message: 'drop [[sim chunks=40 delay_ms=20]]', request_id: id }, user, ctrl.signal))
    for (let i = 0; i < 5; i++) await first.until('generation_chunk')
    ctrl.abort()
    await Bun.sleep(200)
    const lastSeen = events(first.seen).at(-1)!.id!
    const rest = await new SseReader(await resume(b, id, lastSeen)).rest()
    const joined = [...events(first.seen), ...events(rest)]
    expect(joined.map((e) => e.id)).toEqual(joined.map((_, i) => i))
    expect(joined.filter((e) => e.event === 'generation_chunk')).toHaveLength(40)
    expect(joined.at(-1)!.event).toBe('stream_end')
    expect(started() - before).toBe(1)
    // a whole replay from B after the end matches, from the store's log
    const again = await new SseReader(await resume(b, id)).rest()
    expect(events(again).map((e) => [e.id, e.event, e.data])).toEqual(joined.map((e) => [e.id, e.event, e.data]))
  })

  test('a stream nobody follows elsewhere costs Redis nothing while it runs; its whole log is there at its end, for B to replay', async () => {
    const id = rid()
    const logKey = keys.chatEvents(user.tenantId, id)
    const reader = new SseReader(await post(a, { message: 'quiet [[sim chunks=30 delay_ms=10]]', request_id: id }))
    for (let i = 0; i < 10; i++) await reader.until('generation_chunk')
    expect(await a.gw.deps.store.get(logKey)).toBeNull()
    const got = events(await reader.rest())
    expect(got.at(-1)!.event).toBe('stream_end')
    await eventually(async () => (await a.gw.deps.store.get(logKey)) !== null)
    const replay = await new SseReader(await resume(b, id)).rest()
    expect(events(replay).map((e) => [e.id, e.event, e.data])).toEqual(got.map((e) => [e.id, e.event, e.data]))
  })

  test('an idempotent re-POST on B attaches to the stream A holds', async () => {
    const id = rid()
    const body = { message: 'twice [[sim chunks=30 delay_ms=20]]', request_id: id }
    const before = started()
    const first = new SseReader(await post(a, body))
    await first.until('generation_chunk')
    const second = new SseReader(await post(b, body))
    const [x, y] = await Promise.all([first.rest(), second.rest()])
    expect(events(y).map((e) => [e.id, e.event, e.data])).toEqual(events(x).map((e) => [e.id, e.event, e.data]))
    expect(started() - before).toBe(1)
    expect((await post(b, { ...body, message: 'changed' })).status).toBe(409)
  })

  test('nobody resumes anywhere: A cancels after the grace', async () => {
    const id = rid()
    const ctrl = new AbortController()
    const first = new SseReader(await post(a, { message: 'gone [[sim chunks=400 delay_ms=20]]', request_id: id }, user, ctrl.signal))
    await first.until('generation_chunk')
    ctrl.abort()
    await eventually(() => open() === 0, 6000)
    const late = events(await new SseReader(await resume(b, id, 0)).rest())
    expect(late.at(-1)!.data).toEqual({ request_id: id, reason: 'client_disconnected' })
  })

  test('a resume on B that drops too: the grace starts again and A cancels', async () => {
    const id = rid()
    const ctrl = new AbortController()
    const first = new SseReader(await post(a, { message: 'twice gone [[sim chunks=400 delay_ms=20]]', request_id: id }, user, ctrl.signal))
    await first.until('generation_chunk')
    ctrl.abort()
    await Bun.sleep(300)
    const again = new AbortController()
    const res = await fetch(`${b.base}/api/v2/chat/stream/${id}`, { headers: user.auth, signal: again.signal })
    const second = new SseReader(res)
    await second.until('generation_chunk')
    // B's client goes on reading: a Response nothing refers to any more is collected, and Bun then closes its
    // connection — B's watcher would leave at the next GC, not at the abort below (this test's old flake)
    const reading = second.rest().catch(() => second.seen)
    // longer than the grace: B's watcher keeps it alive
    await Bun.sleep(2300)
    expect(open()).toBe(1)
    again.abort()
    expect(events(await reading).at(-1)!.event).toBe('generation_chunk')
    // the grace starts again, in full, when B's client leaves
    await Bun.sleep(1000)
    expect(open()).toBe(1)
    await eventually(() => open() === 0, 6000)
  })

  test("a follower on B keeps the stream alive past its watch's 15 s lapse: the watch is renewed", async () => {
    const id = rid()
    const ctrl = new AbortController()
    const first = new SseReader(await post(a, { message: 'long watch [[sim chunks=1500 delay_ms=20]]', request_id: id }, user, ctrl.signal))
    await first.until('generation_chunk')
    const away = new AbortController()
    const follower = new SseReader(await fetch(`${b.base}/api/v2/chat/stream/${id}`, { headers: user.auth, signal: away.signal }))
    await follower.until('generation_chunk')
    ctrl.abort()
    const reading = follower.rest().catch(() => follower.seen)
    await Bun.sleep(18_000)
    expect(open()).toBe(1)
    away.abort()
    expect(events(await reading).at(-1)!.event).toBe('generation_chunk')
    await eventually(() => open() === 0, 6000)
  }, 40_000)

  test('concurrent_streams_per_user counts streams on every instance; a re-POST of the live one attaches, uncounted', async () => {
    const tenantId = await makeTenant(a.gw, { quotas: { concurrent_streams_per_user: 1 } })
    const who = await makeUser(a.gw, { tenantId })
    const body = { message: 'one [[sim chunks=30 delay_ms=20]]', request_id: rid() }
    const reader = new SseReader(await post(a, body, who))
    await reader.until('generation_chunk')
    const refused = await post(b, { message: 'two' }, who)
    expect(refused.status).toBe(429)
    expect(await refused.json()).toMatchObject({ code: 'QUOTA_EXCEEDED' })
    expect(open()).toBe(1) // the refused request never reached the upstream
    // the same request again is not another stream
    const again = await post(b, body, who)
    expect(again.status).toBe(200)
    await Promise.all([reader.rest(), new SseReader(again).rest()])
    // neither the refusal nor the attach is left counted
    const res = await post(b, { message: 'now [[sim chunks=1]]' }, who)
    expect(res.status).toBe(200)
    await new SseReader(res).rest()
  })

  test("another user's or another tenant's stream: cancel and resume through B are 404, the stream untouched", async () => {
    const id = rid()
    const reader = new SseReader(await post(a, { message: 'mine [[sim chunks=30 delay_ms=20]]', request_id: id }))
    await reader.until('generation_chunk')
    const colleague = await makeUser(a.gw, { tenantId: user.tenantId })
    const stranger = await chatUser(a.gw)
    for (const who of [colleague, stranger]) {
      expect((await cancel(b, id, who)).status).toBe(404)
      expect((await resume(b, id, undefined, who)).status).toBe(404)
    }
    expect(events(await reader.rest()).at(-1)!.event).toBe('stream_end')
  })
})
