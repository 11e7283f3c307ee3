/**
 * A stream outlives its connection (one instance, embedded store): an idempotent re-POST attaches instead of
 * asking again, a resume replays exactly what was missed and follows, a stream nobody watches is cancelled
 * after the disconnect grace, shutdown ends streams with reason "shutdown", and /metrics says what happened.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { TestApp } from '../helpers/app'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'
import { keys } from '../../src/store'
import { chatRequest, chatUser, eventually, listeningGateway, SseReader, type SseEvent } from './helpers'

let gw: TestApp
let base: string
let user: TestUser
const GRACE_MS = 600

beforeAll(async () => {
  ;({ gw, base } = await listeningGateway({ CHAT_PING_INTERVAL_MS: '50', CHAT_DISCONNECT_GRACE_S: String(GRACE_MS / 1000) }))
  user = await chatUser(gw)
}, 30_000)
afterAll(async () => {
  await gw.app.stop(true)
  await gw.close()
})

const sim = () => gw.deps.simulator!.stats
const post = (body: Record<string, unknown>, who = user, signal?: AbortSignal) => fetch(`${base}/api/v2/chat/stream`, chatRequest(who, body, signal))
const resume = (requestId: string, opts: { lastEventId?: string; query?: string; who?: TestUser; signal?: AbortSignal } = {}) =>
  fetch(`${base}/api/v2/chat/stream/${requestId}${opts.query ?? ''}`, {
    headers: { ...(opts.who ?? user).auth, ...(opts.lastEventId !== undefined && { 'last-event-id': opts.lastEventId }) },
    signal: opts.signal,
  })
const events = (seen: SseEvent[]) => seen.filter((e) => e.event)
const ids = (seen: SseEvent[]) => events(seen).map((e) => e.id)
const rid = () => `req-${crypto.randomUUID()}`

async function messagesOf(conversationId: string) {
  const res = await fetch(`${base}/api/v2/conversations/${conversationId}/messages`, { headers: user.auth })
  return ((await res.json()) as { items: Array<Record<string, any>> }).items
}

describe('idempotent re-POST', () => {
  test('while live: attaches from event 0 and follows; the upstream is asked once', async () => {
    const id = rid()
    const body = { message: 'long [[sim chunks=20 delay_ms=20]]', request_id: id }
    const before = sim().queriesStarted
    const first = new SseReader(await post(body))
    await first.until('generation_chunk')
    const second = new SseReader(await post(body))
    const [a, b] = await Promise.all([first.rest(), second.rest()])
    expect(events(b).map((e) => [e.id, e.event, e.data])).toEqual(events(a).map((e) => [e.id, e.event, e.data]))
    expect(events(b).at(-1)!.event).toBe('stream_end')
    expect(sim().queriesStarted - before).toBe(1)
    // one question, one answer stored
    expect((await messagesOf(String(a[0]!.data!.conversation_id))).map((m) => m.role)).toEqual(['user', 'assistant'])
  })

  test('after the end: the same events again, no new upstream call', async () => {
    const id = rid()
    const body = { message: 'short [[sim chunks=3]]', request_id: id }
    const a = await new SseReader(await post(body)).rest()
    const before = sim().queriesStarted
    const b = await new SseReader(await post(body)).rest()
    expect(b.map((e) => [e.id, e.event, e.data])).toEqual(a.map((e) => [e.id, e.event, e.data]))
    expect(sim().queriesStarted).toBe(before)
  })

  test('the same POST sent several times at once and refused (unknown conversation): each gets the 404, none an empty stream', async () => {
    for (let round = 0; round < 5; round++) {
      const body = { message: 'into nowhere', conversation_id: 'conv_nope', request_id: rid() }
      const replies = await Promise.all(Array.from({ length: 4 }, () => post(body)))
      const seen = await Promise.all(replies.map(async (r) => ({ status: r.status, type: r.headers.get('content-type'), code: ((await r.json().catch(() => ({}))) as { code?: string }).code })))
      expect(seen).toEqual(Array.from({ length: 4 }, () => ({ status: 404, type: expect.stringContaining('application/json'), code: 'CONVERSATION_NOT_FOUND' })))
    }
  })

  test('a different body, or another user, with the same request_id → 409 IDEMPOTENCY_CONFLICT', async () => {
    const id = rid()
    await new SseReader(await post({ message: 'one [[sim chunks=2]]', request_id: id })).rest()
    const changed = await post({ message: 'another question', request_id: id })
    expect(changed.status).toBe(409)
    expect(await changed.json()).toMatchObject({ code: 'IDEMPOTENCY_CONFLICT' })
    const colleague = await makeUser(gw, { tenantId: user.tenantId })
    const stolen = await post({ message: 'one [[sim chunks=2]]', request_id: id }, colleague)
    expect(stolen.status).toBe(409)
    expect(stolen.headers.get('content-type')).toStartWith('application/json')
    // request ids are per tenant: another tenant's user learns nothing and gets a stream of their own
    const elsewhere = await new SseReader(await post({ message: 'one [[sim chunks=2]]', request_id: id }, await chatUser(gw))).rest()
    expect(elsewhere.at(-1)!.event).toBe('stream_end')
    expect(elsewhere[0]!.data!.conversation_id).not.toBe((await new SseReader(await post({ message: 'one [[sim chunks=2]]', request_id: id })).rest())[0]!.data!.conversation_id)
  })
})

describe('resume', () => {
  test('Last-Event-ID (header or query): exactly the events after it, same ids and data', async () => {
    const id = rid()
    const all = await new SseReader(await post({ message: 'r [[sim chunks=5]]', request_id: id })).rest()
    const fromHeader = await new SseReader(await resume(id, { lastEventId: '3' })).rest()
    expect(fromHeader.map((e) => [e.id, e.event, e.data])).toEqual(all.filter((e) => e.id! > 3).map((e) => [e.id, e.event, e.data]))
    const fromQuery = await new SseReader(await resume(id, { query: '?last_event_id=6' })).rest()
    expect(ids(fromQuery)).toEqual(ids(all).filter((i) => i! > 6))
    const whole = await new SseReader(await resume(id)).rest()
    expect(ids(whole)).toEqual(ids(all))
  })

  test('a client that drops mid-stream resumes within the grace: nothing lost or repeated, the upstream asked once', async () => {
    const id = rid()
    const before = sim().queriesStarted
    const ctrl = new AbortController()
    const first = new SseReader(await post({ message: 'drop [[sim chunks=30 delay_ms=20]]', request_id: id }, user, ctrl.signal))
    for (let i = 0; i < 5; i++) await first.until('generation_chunk')
    ctrl.abort()
    await Bun.sleep(GRACE_MS / 3)
    const lastSeen = events(first.seen).at(-1)!.id!
    const rest = await new SseReader(await resume(id, { lastEventId: String(lastSeen) })).rest()
    const joined = [...events(first.seen), ...events(rest)]
    expect(joined.map((e) => e.id)).toEqual(joined.map((_, i) => i))
    expect(joined.at(-1)!.event).toBe('stream_end')
    expect(joined.filter((e) => e.event === 'generation_chunk')).toHaveLength(30)
    expect(sim().queriesStarted - before).toBe(1)
    const [, answer] = await messagesOf(String(joined[0]!.data!.conversation_id))
    expect(answer!.status).toBe('completed')
  })

  test('nobody resumes: cancelled after the grace (client_disconnected), upstream closed; a late resume sees the ending', async () => {
    const id = rid()
    const ctrl = new AbortController()
    const first = new SseReader(await post({ message: 'gone [[sim chunks=200 delay_ms=20]]', request_id: id }, user, ctrl.signal))
    await first.until('generation_chunk')
    ctrl.abort()
    const left = performance.now()
    await Bun.sleep(GRACE_MS / 2)
    expect(sim().queriesOpen).toBe(1) // still running within the grace
    await eventually(() => sim().queriesOpen === 0, 3000)
    expect(performance.now() - left).toBeGreaterThanOrEqual(GRACE_MS - 50)
    const late = await new SseReader(await resume(id, { lastEventId: '0' })).rest()
    expect(events(late).at(-1)!.event).toBe('stream_cancelled')
    expect(events(late).at(-1)!.data).toEqual({ request_id: id, reason: 'client_disconnected' })
    const [, answer] = await messagesOf(String(first.seen[0]!.data!.conversation_id))
    expect(answer!.status).toBe('cancelled')
  })

  test("unknown, or another user's, stream → 404; a bad Last-Event-ID → 400", async () => {
    const id = rid()
    const all = await new SseReader(await post({ message: 'mine [[sim chunks=1]]', request_id: id })).rest()
    const last = events(all).at(-1)!.id!
    expect((await resume('req-never-seen')).status).toBe(404)
    const other = await chatUser(gw)
    const res = await resume(id, { who: other })
    expect(res.status).toBe(404)
    expect(await res.json()).toMatchObject({ code: 'STREAM_NOT_FOUND' })
    const bad = await resume(id, { lastEventId: 'abc' })
    expect(bad.status).toBe(400)
    expect(await bad.json()).toMatchObject({ code: 'VALIDATION_FAILED' })
    // the stream's last id is fine (nothing more to send); past it is a 400, ended or live
    expect(events(await new SseReader(await resume(id, { lastEventId: String(last) })).rest())).toEqual([])
    const past = await resume(id, { lastEventId: String(last + 1) })
    expect([past.status, ((await past.json()) as { details: Array<{ field: string }> }).details[0]!.field]).toEqual([400, 'last_event_id'])
    const live = rid()
    const reader = new SseReader(await post({ message: 'long [[sim chunks=50 delay_ms=20]]', request_id: live }))
    await reader.until('generation_chunk')
    expect((await resume(live, { lastEventId: '999999999' })).status).toBe(400)
    await reader.rest()
    expect((await fetch(`${base}/api/v2/chat/cancel`, chatRequest(other, { request_id: id }))).status).toBe(404)
    const colleague = await makeUser(gw, { tenantId: user.tenantId })
    expect((await resume(id, { who: colleague })).status).toBe(404)
  })
})

describe('concurrent_streams_per_user', () => {
  test('past the quota: 429 QUOTA_EXCEEDED with Retry-After before any byte, the upstream not asked; a re-POST attaches without counting; room again once one ends', async () => {
    const tenantId = await makeTenant(gw, { quotas: { concurrent_streams_per_user: 2 } })
    const who = await makeUser(gw, { tenantId })
    const ids = [rid(), rid()]
    const readers = await Promise.all(ids.map(async (id) => new SseReader(await post({ message: 'long [[sim chunks=40 delay_ms=20]]', request_id: id }, who))))
    await Promise.all(readers.map((r) => r.until('generation_chunk')))
    const asked = sim().queriesStarted
    const third = await post({ message: 'one more' }, who)
    expect(third.status).toBe(429)
    // a refused request never reaches the upstream
    expect(sim().queriesStarted).toBe(asked)
    expect(third.headers.get('retry-after')).toBe('1')
    expect(await third.json()).toMatchObject({ code: 'QUOTA_EXCEEDED', details: { quota: 'concurrent_streams_per_user', limit: 2 } })
    // attaching to a running stream is not another stream
    const again = new SseReader(await post({ message: 'long [[sim chunks=40 delay_ms=20]]', request_id: ids[0] }, who))
    expect((await again.until('stream_start')).data!.request_id).toBe(ids[0])
    // another user of the tenant has their own count
    expect((await post({ message: 'mine [[sim chunks=1]]' }, await makeUser(gw, { tenantId }))).status).toBe(200)
    await Promise.all([...readers, again].map((r) => r.rest()))
    const later = await post({ message: 'now [[sim chunks=1]]' }, who)
    expect(later.status).toBe(200)
    await new SseReader(later).rest()
  })
})

describe('concurrent_streams_per_user after a crash', () => {
  test("a crashed holder's entry (past its expiry) does not count", async () => {
    const tenantId = await makeTenant(gw, { quotas: { concurrent_streams_per_user: 1 } })
    const who = await makeUser(gw, { tenantId })
    await gw.deps.store.sAdd(keys.chatLive(tenantId, who.id), [`req-dead|${Date.now() - 1000}`], 60_000)
    const res = await post({ message: 'alive [[sim chunks=1]]' }, who)
    expect(res.status).toBe(200)
    await new SseReader(res).rest()
    expect(await gw.deps.store.sMembers(keys.chatLive(tenantId, who.id))).toEqual([])
  })
})

describe('metrics', () => {
  test('active streams, endings by reason, upstream outcomes, time to first event, invalid lines', async () => {
    await new SseReader(await post({ message: 'm [[sim chunks=2]]' })).rest()
    await new SseReader(await post({ message: 'bad lines [[sim chunks=2 mode=invalid_lines]]' })).rest()
    const text = await (await fetch(`${base}/metrics`)).text()
    expect(text).toMatch(/^chat_streams_active 0$/m)
    expect(text).toMatch(/^chat_stream_endings_total\{reason="completed"\} [1-9]/m)
    expect(text).toMatch(/^chat_stream_endings_total\{reason="client_disconnected"\} [1-9]/m)
    expect(text).toMatch(/^chat_upstream_requests_total\{upstream="http:\/\/127\.0\.0\.1:\d+",outcome="completed"\} [1-9]/m)
    expect(text).toMatch(/^chat_upstream_first_event_seconds_count [1-9]/m)
    expect(text).toMatch(/^chat_upstream_invalid_lines_total [1-9]/m)
  })
})

describe('shutdown', () => {
  test('a stream still running at the deadline ends with stream_cancelled{reason:"shutdown"}, upstream closed, answer stored', async () => {
    const { gw: other, base: otherBase } = await listeningGateway({ CHAT_PING_INTERVAL_MS: '50' })
    try {
      const who = await chatUser(other)
      const reader = new SseReader(await fetch(`${otherBase}/api/v2/chat/stream`, chatRequest(who, { message: 'long [[sim chunks=200 delay_ms=20]]' })))
      await reader.until('generation_chunk')
      const done = other.deps.lifecycle.shutdown(Date.now() + 100)
      const cancelled = await reader.until('stream_cancelled')
      expect(cancelled.data).toMatchObject({ reason: 'shutdown' })
      await done
      expect(other.deps.simulator!.stats.queriesOpen).toBe(0)
      const res = await fetch(`${otherBase}/api/v2/conversations/${reader.seen[0]!.data!.conversation_id}/messages`, { headers: who.auth })
      const [, answer] = ((await res.json()) as { items: Array<Record<string, any>> }).items
      expect(answer!.status).toBe('cancelled')
      // no new stream once shutting down
      expect((await fetch(`${otherBase}/api/v2/chat/stream`, chatRequest(who, { message: 'late' }))).status).toBe(503)
    } finally {
      await other.app.stop(true)
      await other.close()
    }
  })
})
