import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { TestApp } from '../helpers/app'
import type { TestUser } from '../helpers/identity'
import { chatRequest, chatUser, eventually, listeningGateway, SseReader, type SseEvent } from './helpers'

let gw: TestApp
let base: string
let user: TestUser

beforeAll(async () => {
  ;({ gw, base } = await listeningGateway({ CHAT_PING_INTERVAL_MS: '50', CHAT_DISCONNECT_GRACE_S: '0.2' }))
  user = await chatUser(gw)
}, 30_000)
afterAll(async () => {
  await gw.app.stop(true)
  await gw.close()
})

const stream = (body: Record<string, unknown>, who = user, signal?: AbortSignal) => fetch(`${base}/api/v2/chat/stream`, chatRequest(who, body, signal))

async function messagesOf(conversationId: string, who = user) {
  const res = await fetch(`${base}/api/v2/conversations/${conversationId}/messages`, { headers: who.auth })
  expect({ conversationId, status: res.status, body: res.status === 200 ? null : await res.text() }).toEqual({ conversationId, status: 200, body: null })
  return ((await res.json()) as { items: Array<Record<string, any>> }).items
}

/** an API key of `who` holding `permissions`, as request headers */
async function apiKey(who: TestUser, permissions: string[]): Promise<Record<string, string>> {
  const res = await fetch(`${base}/api/v2/api-keys`, {
    method: 'POST',
    headers: { ...who.auth, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'chat key', permissions }),
  })
  expect(res.status).toBe(201)
  return { 'x-api-key': ((await res.json()) as { key: string }).key }
}

const named = (events: SseEvent[]) => events.filter((e) => e.event).map((e) => e.event)
const chunkText = (events: SseEvent[]) =>
  events
    .filter((e) => e.event === 'generation_chunk')
    .map((e) => String(e.data!.content ?? e.data!.delta ?? ''))
    .join('')

describe('POST /api/v2/chat/stream', () => {
  test('a normal answer: headers, event order, ids from 0, stored question and answer', async () => {
    const res = await stream({ message: 'What is SSE? [[sim chunks=3]]', request_id: 'req-normal-1' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toStartWith('text/event-stream')
    expect(res.headers.get('cache-control')).toBe('no-cache')
    expect(res.headers.get('x-accel-buffering')).toBe('no')
    const events = await new SseReader(res).rest()
    expect(named(events)).toEqual([
      'stream_start',
      'retrieval_start',
      'retrieval_progress',
      'retrieval_result',
      'generation_start',
      'generation_chunk',
      'generation_chunk',
      'generation_chunk',
      'generation_done',
      'stream_end',
    ])
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i))
    const start = { ...events[0]!.data! }
    expect(Object.keys(start).sort()).toEqual(['conversation_id', 'message_id', 'request_id', 'stream_id', 'timestamp'])
    // contract §0: unix seconds
    expect(Math.abs((start.timestamp as number) - Date.now() / 1000)).toBeLessThan(60)
    expect(start.request_id).toBe('req-normal-1')
    expect(events[1]!.data).toMatchObject({ type: 'retrieval_start', request_id: 'req-normal-1', line_number: 1, timestamp: expect.any(Number) })
    expect(events.at(-1)!.data).toMatchObject({ request_id: 'req-normal-1', lines_processed: 8, duration_ms: expect.any(Number) })

    const stored = await messagesOf(String(start.conversation_id))
    expect(stored.map((m) => [m.role, m.status])).toEqual([
      ['user', 'completed'],
      ['assistant', 'completed'],
    ])
    expect(stored[1]!.id).toBe(start.message_id)
    expect(stored[1]!.content).toBe(chunkText(events))
    expect(stored[1]!.content.length).toBeGreaterThan(0)
    expect(stored[1]!.references).toEqual(events.find((e) => e.event === 'retrieval_result')!.data!.references)
    expect(stored[1]!.usage).toMatchObject({ prompt_tokens: expect.any(Number) })
    expect(stored[1]!.ttft_ms).toBeGreaterThanOrEqual(0)
    expect(stored[1]!.request_id).toBe('req-normal-1')
  })

  test('the legacy upstream format is renamed', async () => {
    const events = await new SseReader(await stream({ message: 'old format [[sim chunks=2 mode=legacy]]' })).rest()
    expect(named(events)).toEqual(['stream_start', 'retrieval_result', 'generation_chunk', 'generation_chunk', 'generation_done', 'stream_end'])
    const conv = String(events[0]!.data!.conversation_id)
    const [, answer] = await messagesOf(conv)
    expect(answer!.content).toBe(chunkText(events))
    expect(answer!.references).toEqual(events[1]!.data!.refs)
  })

  test('invalid upstream lines are skipped', async () => {
    const events = await new SseReader(await stream({ message: 'garbage [[sim chunks=2 mode=invalid_lines]]' })).rest()
    expect(named(events)).toEqual([
      'stream_start',
      'retrieval_start',
      'retrieval_progress',
      'retrieval_result',
      'generation_start',
      'generation_chunk',
      'generation_chunk',
      'generation_done',
      'stream_end',
    ])
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i))
  })

  test('an upstream error event → error then stream_end; the partial answer is stored as failed', async () => {
    const events = await new SseReader(await stream({ message: 'fail [[sim chunks=5 mode=error_event fail_after=6]]' })).rest()
    expect(named(events).slice(-2)).toEqual(['error', 'stream_end'])
    expect(events.at(-2)!.data).toMatchObject({ code: expect.any(String), error: expect.any(String), request_id: events[0]!.data!.request_id })
    const [, answer] = await messagesOf(String(events[0]!.data!.conversation_id))
    expect(answer!.status).toBe('failed')
    expect(answer!.content).toBe(chunkText(events))
    expect(answer!.content.length).toBeGreaterThan(0)
  })

  test('upstream HTTP 500 → error ALGO_SERVICE_ERROR then stream_end', async () => {
    const events = await new SseReader(await stream({ message: 'boom [[sim mode=http_500]]' })).rest()
    expect(named(events)).toEqual(['stream_start', 'error', 'stream_end'])
    expect(events[1]!.data).toMatchObject({ code: 'ALGO_SERVICE_ERROR', request_id: events[0]!.data!.request_id })
    const [, answer] = await messagesOf(String(events[0]!.data!.conversation_id))
    expect(answer).toMatchObject({ role: 'assistant', status: 'failed', content: '' })
  })

  test('a broken upstream mid-stream → error STREAM_ERROR then stream_end', async () => {
    const events = await new SseReader(await stream({ message: 'drop [[sim chunks=4 mode=drop_mid fail_after=5]]' })).rest()
    expect(named(events).slice(-2)).toEqual(['error', 'stream_end'])
    expect(events.at(-2)!.data!.code).toBe('STREAM_ERROR')
    // never the driver's own text (ECONNRESET, "pass verbose: true to fetch()")
    expect(events.at(-2)!.data!.error).toBe('The algorithm service broke off the stream')
    // operators still see why
    const logged = gw.logs.find((l) => l.msg === 'chat stream failed upstream' && l.request_id === events.at(-2)!.data!.request_id)
    expect(JSON.stringify(logged?.err)).toMatch(/ECONNRESET|socket connection was closed/i)
  })

  test('pings while the upstream is silent', async () => {
    const reader = new SseReader(await stream({ message: 'slow [[sim chunks=2 fail_after=2 silence_ms=300]]' }))
    const events = await reader.rest()
    expect(events.some((e) => e.comment === 'ping')).toBe(true)
    expect(reader.raw).toContain('\n\n: ping\n\n')
    expect(named(events).at(-1)).toBe('stream_end')
  })

  test('a bad body is a JSON 400 before any stream byte', async () => {
    for (const body of [
      {},
      { message: '' },
      { message: '   ' },
      { message: 'x'.repeat(10_001) },
      { message: 'hi', temperature: 3 },
      { message: 'hi', max_tokens: 0 },
      { message: 'hi', max_tokens: 9000 },
      { message: 'hi', request_id: 'bad id!' },
      { message: 'hi', request_id: 'x'.repeat(129) },
      // what the gateway could not store as sent (it would have become U+FFFD in the conversation)
      { message: 'hi \u0000 there' },
      { message: 'lone \ud800' },
    ]) {
      const res = await stream(body)
      expect({ body, status: res.status }).toEqual({ body, status: 400 })
      expect(res.headers.get('content-type')).toStartWith('application/json')
      expect(((await res.json()) as { code: string }).code).toBeString()
    }
  })

  test("an unknown or another user's conversation → 404 CONVERSATION_NOT_FOUND before any stream byte", async () => {
    const res = await stream({ message: 'hi', conversation_id: 'conv_doesnotexist' })
    expect(res.status).toBe(404)
    expect(((await res.json()) as { code: string }).code).toBe('CONVERSATION_NOT_FOUND')

    const mine = await new SseReader(await stream({ message: 'mine [[sim chunks=1]]' })).rest()
    const other = await chatUser(gw)
    const res2 = await stream({ message: 'hi', conversation_id: mine[0]!.data!.conversation_id }, other)
    expect(res2.status).toBe(404)
    expect(((await res2.json()) as { code: string }).code).toBe('CONVERSATION_NOT_FOUND')
  })

  test('chat:write is required: a key without it gets 403 on stream, resume and cancel, before any byte', async () => {
    const voiceOnly = await apiKey(user, ['voice:write'])
    const json = { ...voiceOnly, 'content-type': 'application/json' }
    const refused = [
      await fetch(`${base}/api/v2/chat/stream`, { method: 'POST', headers: json, body: JSON.stringify({ message: 'hi [[sim chunks=1]]' }) }),
      await fetch(`${base}/api/v2/chat/stream/req-scope-1`, { headers: voiceOnly }),
      await fetch(`${base}/api/v2/chat/cancel`, { method: 'POST', headers: json, body: JSON.stringify({ request_id: 'req-scope-1' }) }),
    ]
    for (const res of refused) {
      expect(res.status).toBe(403)
      expect(res.headers.get('content-type')).toStartWith('application/json')
      expect(await res.json()).toMatchObject({ code: 'PERMISSION_DENIED', details: { permission: 'chat:write' } })
    }
  })

  test("a plain user's chat key (chat:write, conversation:write) chats in new and own conversations, not in others'", async () => {
    const key = await apiKey(user, ['chat:write', 'conversation:write'])
    const viaKey = (body: Record<string, unknown>) =>
      fetch(`${base}/api/v2/chat/stream`, { method: 'POST', headers: { ...key, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const first = await new SseReader(await viaKey({ message: 'new [[sim chunks=1]]' })).rest()
    expect(named(first).at(-1)).toBe('stream_end')
    const again = await new SseReader(await viaKey({ message: 'again [[sim chunks=1]]', conversation_id: first[0]!.data!.conversation_id })).rest()
    expect(named(again).at(-1)).toBe('stream_end')
    expect(await messagesOf(String(first[0]!.data!.conversation_id))).toHaveLength(4)
    const other = await chatUser(gw)
    const theirs = await new SseReader(await stream({ message: 'theirs [[sim chunks=1]]' }, other)).rest()
    const res = await viaKey({ message: 'intrude', conversation_id: theirs[0]!.data!.conversation_id })
    expect(res.status).toBe(404)
    expect(((await res.json()) as { code: string }).code).toBe('CONVERSATION_NOT_FOUND')
  })

  test('the second turn sends the history upstream', async () => {
    const first = await new SseReader(await stream({ message: 'first question [[sim chunks=2]]' })).rest()
    const conversationId = first[0]!.data!.conversation_id
    const second = await new SseReader(await stream({ message: 'second question [[sim chunks=2]]', conversation_id: conversationId })).rest()
    expect(second[0]!.data!.conversation_id).toBe(conversationId)
    // the simulator counts every message's characters into prompt_tokens: more with history
    const promptTokens = (events: SseEvent[]) => (events.find((e) => e.event === 'generation_done')!.data!.usage as { prompt_tokens: number }).prompt_tokens
    expect(promptTokens(second)).toBeGreaterThan(promptTokens(first) + 5)
    const stored = await messagesOf(String(conversationId))
    expect(stored.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant'])
  })
})

describe('ending a stream early', () => {
  const sim = () => gw.deps.simulator!.stats

  test('POST /api/v2/chat/cancel → stream_cancelled, upstream closed, answer stored as cancelled', async () => {
    const reader = new SseReader(await stream({ message: 'long [[sim chunks=100 delay_ms=30]]', request_id: 'req-cancel-1' }))
    await reader.until('generation_chunk')

    const other = await chatUser(gw)
    const refused = await fetch(`${base}/api/v2/chat/cancel`, chatRequest(other, { request_id: 'req-cancel-1' }))
    expect(refused.status).toBe(404)
    const unknown = await fetch(`${base}/api/v2/chat/cancel`, chatRequest(user, { request_id: 'req-nope' }))
    expect(unknown.status).toBe(404)

    const res = await fetch(`${base}/api/v2/chat/cancel`, chatRequest(user, { request_id: 'req-cancel-1' }))
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ request_id: 'req-cancel-1', status: 'cancelled' })
    const cancelled = await reader.until('stream_cancelled')
    expect(cancelled.data).toEqual({ request_id: 'req-cancel-1', reason: 'client_cancelled' })
    expect(await reader.next()).toBeUndefined()
    await eventually(() => sim().queriesOpen === 0)

    const [, answer] = await messagesOf(String(reader.seen[0]!.data!.conversation_id))
    expect(answer!.status).toBe('cancelled')
    expect(answer!.content).toBe(chunkText(reader.seen))
    expect(answer!.content.length).toBeGreaterThan(0)
  })

  test('a client that disconnects mid-stream closes the upstream; what it saw is stored', async () => {
    const ctrl = new AbortController()
    const reader = new SseReader(await stream({ message: 'long [[sim chunks=100 delay_ms=30]]' }, user, ctrl.signal))
    await reader.until('generation_chunk')
    await reader.until('generation_chunk')
    expect(sim().queriesOpen).toBe(1)
    ctrl.abort()
    await eventually(() => sim().queriesOpen === 0)
    const conversationId = String(reader.seen[0]!.data!.conversation_id)
    let answer: Record<string, any> | undefined
    await eventually(async () => {
      answer = (await messagesOf(conversationId))[1]
      return answer !== undefined
    })
    expect(answer!.status).toBe('cancelled')
    // the client read at least these; the stored text begins with them
    expect(answer!.content.startsWith(chunkText(reader.seen))).toBe(true)
  })

  test('a conversation deleted mid-stream: the stream ends normally, the answer is not stored, nothing is logged as an error', async () => {
    const requestId = `req-deleted-${crypto.randomUUID()}`
    const reader = new SseReader(await stream({ message: 'long [[sim chunks=20 delay_ms=20]]', request_id: requestId }))
    const start = await reader.until('stream_start')
    const conversationId = String(start!.data!.conversation_id)
    await reader.until('generation_chunk')
    const del = await fetch(`${base}/api/v2/conversations/${conversationId}`, { method: 'DELETE', headers: user.auth })
    expect(del.status).toBeOneOf([200, 204])
    const rest = await reader.rest()
    expect(named(rest).at(-1)).toBe('stream_end')
    await eventually(() => gw.logs.some((l) => l.request_id === requestId && l.msg === 'answer not stored: the conversation was deleted'))
    expect(gw.logs.filter((l) => l.request_id === requestId && Number(l.level) >= 50)).toEqual([])
    expect((await fetch(`${base}/api/v2/conversations/${conversationId}/messages`, { headers: user.auth })).status).toBe(404)
  })

  test('a disconnect while the upstream is silent (pings only) closes the upstream too', async () => {
    const ctrl = new AbortController()
    const reader = new SseReader(await stream({ message: 'stall [[sim chunks=3 fail_after=2 mode=stall]]' }, user, ctrl.signal))
    await reader.until('retrieval_progress')
    while ((await reader.next())?.comment !== 'ping');
    expect(sim().queriesOpen).toBe(1)
    ctrl.abort()
    await eventually(() => sim().queriesOpen === 0)
  })

  test('revoking the token ends the stream with token_revoked', async () => {
    const victim = await chatUser(gw)
    const reader = new SseReader(await stream({ message: 'long [[sim chunks=100 delay_ms=30]]' }, victim))
    await reader.until('generation_chunk')
    expect((await fetch(`${base}/api/v2/auth/logout`, { method: 'POST', headers: victim.auth })).status).toBe(200)
    const cancelled = await reader.until('stream_cancelled')
    expect(cancelled.data!.reason).toBe('token_revoked')
    await eventually(() => sim().queriesOpen === 0)
  })

  test('taking chat:write away from a user (their roles changed) ends their stream with token_revoked', async () => {
    const victim = await chatUser(gw)
    const reader = new SseReader(await stream({ message: 'long [[sim chunks=100 delay_ms=30]]' }, victim))
    await reader.until('generation_chunk')
    const { users } = await import('../../src/db/schema')
    const { eq } = await import('drizzle-orm')
    await gw.deps.db.db.update(users).set({ roles: [] }).where(eq(users.id, victim.id))
    await gw.deps.identity.bus.publish({ t: 'user', tenant: victim.tenantId, id: victim.id }) // as the admin routes do
    const cancelled = await reader.until('stream_cancelled')
    expect(cancelled.data!.reason).toBe('token_revoked')
    await eventually(() => sim().queriesOpen === 0)
  })
})
