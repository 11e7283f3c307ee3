/**
 * A chat answer that ends while Postgres is away (a private server this file stops and starts again) is not
 * lost: the client still gets its ending, and the answer is stored, whole, once Postgres is back. The same for
 * a voice session's transcript and its ended row.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { TestApp } from '../helpers/app'
import type { TestUser } from '../helpers/identity'
import { type PrivateServer, privatePostgresAvailable, startPrivatePostgres } from '../helpers/private-servers'
import { ci } from '../helpers/services'
import { session } from '../voice/helpers'
import { chatRequest, chatUser, eventually, listeningGateway, SseReader } from './helpers'

if (ci && !privatePostgresAvailable) throw new Error('db-blip.test needs the Postgres 15 binaries under CI=true')

describe.skipIf(!privatePostgresAvailable)('chat answers and voice transcripts through a Postgres restart', () => {
  let pg: PrivateServer
  let gw: { gw: TestApp; base: string }
  let user: TestUser

  beforeAll(async () => {
    pg = await startPrivatePostgres()
    gw = await listeningGateway({ DATABASE_URL: pg.url })
    user = await chatUser(gw.gw)
  }, 60_000)
  afterAll(async () => {
    await gw?.gw.app.stop(true)
    await gw?.gw.close()
    await pg?.destroy()
  })

  const messages = async (conversationId: string) => {
    const res = await fetch(`${gw.base}/api/v2/conversations/${conversationId}/messages`, { headers: user.auth })
    return res.status === 200 ? ((await res.json()) as { items: Array<Record<string, unknown>> }).items : []
  }

  test('Postgres stopped mid-stream and back 2 s later: stream_end as usual, the answer stored whole, once', async () => {
    const reader = new SseReader(await fetch(`${gw.base}/api/v2/chat/stream`, chatRequest(user, { message: 'outage [[sim chunks=20 delay_ms=20]]' })))
    const conversationId = (await reader.until('stream_start')).data!.conversation_id as string
    await reader.until('generation_chunk')
    await pg.stop()
    const seen = (await reader.rest()).filter((e) => e.event)
    // the client is not kept waiting for the database
    expect(seen.at(-1)!.event).toBe('stream_end')
    await Bun.sleep(2000)
    await pg.start()
    const text = seen.filter((e) => e.event === 'generation_chunk').map((e) => e.data!.content).join('')
    let items: Array<Record<string, unknown>> = []
    await eventually(async () => (items = await messages(conversationId)).length === 2, 20_000)
    expect(items.map((m) => [m.role, m.status])).toEqual([
      ['user', 'completed'],
      ['assistant', 'completed'],
    ])
    expect(items[1]!.content).toBe(text)
    // stored once, counted once
    const conversation = await (await fetch(`${gw.base}/api/v2/conversations/${conversationId}`, { headers: user.auth })).json()
    expect(conversation).toMatchObject({ message_count: 2 })
    const said = gw.gw.logs.filter((l) => l.request_id === seen[0]!.data!.request_id).map((l) => l.msg)
    expect(said).toContain('assistant message not stored yet: the database is unreachable; trying again')
    expect(said).toContain('assistant message stored on a later try')
    expect(said).not.toContain('could not store the assistant message')
  }, 60_000)

  test('Postgres away when a question comes: 503 with Retry-After before any byte, the upstream closed, and the same request_id streams once Postgres is back', async () => {
    // the caller's token and tenant are known already (a first stream), so the question's write is what meets the outage
    await new SseReader(await fetch(`${gw.base}/api/v2/chat/stream`, chatRequest(user, { message: 'warm [[sim chunks=1]]' }))).rest()
    const ask = () => fetch(`${gw.base}/api/v2/chat/stream`, chatRequest(user, { message: 'refused [[sim chunks=3]]', request_id: 'blip_question_1' }))
    await pg.stop()
    try {
      const res = await ask()
      expect(res.status).toBe(503)
      expect(res.headers.get('retry-after')).toBe('1')
      expect(res.headers.get('content-type')).toContain('application/json')
      expect(await res.json()).toMatchObject({ code: 'SERVICE_UNAVAILABLE' })
      // sent again at once: refused the same way (the first left no claim behind to conflict with or replay)
      expect((await ask()).status).toBe(503)
      await eventually(() => gw.gw.deps.simulator!.stats.queriesOpen === 0)
    } finally {
      await pg.start()
    }
    // the refused request left nothing behind: the same request id is a new stream, not a conflict or a replay
    // (sent again at once, while the database is still coming back: 503 again, never 409 or an empty stream)
    let events: Array<SseReader['seen'][number]> = []
    await eventually(async () => {
      const res = await ask()
      expect([200, 503]).toContain(res.status)
      if (res.status !== 200) return false
      events = (await new SseReader(res).rest()).filter((e) => e.event)
      return true
    }, 20_000)
    expect(events.map((e) => e.event)).toEqual(['stream_start', 'retrieval_start', 'retrieval_progress', 'retrieval_result', 'generation_start', 'generation_chunk', 'generation_chunk', 'generation_chunk', 'generation_done', 'stream_end'])
    const items = await messages(events[0]!.data!.conversation_id as string)
    expect(items.map((m) => [m.role, m.status])).toEqual([
      ['user', 'completed'],
      ['assistant', 'completed'],
    ])
  }, 60_000)

  test('a voice turn and the session\'s end while Postgres is away: the transcript and the ended row are stored once it is back', async () => {
    const c = await session(gw.base.replace('http', 'ws'), { headers: user.auth })
    await pg.stop()
    try {
      for (let i = 0; i < 3; i++) c.ws.send(Buffer.alloc(640, i))
      c.send({ type: 'stop' })
      await c.waitForType('tts_complete')
      c.send({ type: 'end_session' })
      expect((await c.closed).code).toBe(1000)
      await Bun.sleep(1000)
    } finally {
      await pg.start()
    }
    const row = async () => (await (await fetch(`${gw.base}/api/v2/voice/sessions/${c.init.session_id}`, { headers: user.auth })).json()) as Record<string, unknown>
    await eventually(async () => (await row()).status !== 'active', 20_000)
    expect(await row()).toMatchObject({ status: 'completed', end_reason: 'client_ended', packets: 3 })
    const final = c.ofType('asr_final')[0]!
    const answer = c.ofType('llm_response_chunk').map((m) => m.content).join('')
    let items: Array<Record<string, unknown>> = []
    await eventually(async () => (items = await messages(c.init.conversation_id)).length === 2, 20_000)
    expect(items.map((m) => [m.role, m.content, m.modality])).toEqual([
      ['user', final.text, 'voice'],
      ['assistant', answer, 'voice'],
    ])
  }, 60_000)

  test('shutting down while an answer waits for Postgres: one last try, then the gateway stops at once (no minute-long wait)', async () => {
    const other = await listeningGateway({ DATABASE_URL: pg.url })
    const reader = new SseReader(await fetch(`${other.base}/api/v2/chat/stream`, chatRequest(user, { message: 'bye [[sim chunks=40 delay_ms=20]]' })))
    const requestId = (await reader.until('stream_start')).data!.request_id as string
    // the question is stored before the upstream is asked: stopped after the first chunk, only the answer meets the outage
    await reader.until('generation_chunk')
    await pg.stop()
    try {
      expect((await reader.rest()).filter((e) => e.event).at(-1)!.event).toBe('stream_end')
      await other.gw.app.stop(true)
      const started = performance.now()
      await other.gw.close()
      expect(performance.now() - started).toBeLessThan(5000)
      // the answer is given up on, and said so
      expect(other.gw.logs.filter((l) => l.request_id === requestId).map((l) => [l.level, l.msg])).toContainEqual(['error', 'could not store the assistant message'])
    } finally {
      await pg.start()
    }
  }, 60_000)
})
