/**
 * The session protocol of contract §5 on real sockets, against the embedded simulator: every client
 * message type, upstream events relayed with session_id, invalid input answered without closing, the
 * 1 MiB frame limit, and what is stored (the session row, the transcript as messages).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'
import { eventually, listeningGateway, type Msg, session, stopGateway } from './helpers'

let g: Awaited<ReturnType<typeof listeningGateway>>
let user: TestUser

beforeAll(async () => {
  g = await listeningGateway({ VOICE_MAX_SESSIONS_PER_USER: '20' })
  user = await makeUser(g.gw, { tenantId: await makeTenant(g.gw) })
}, 30_000)
afterAll(() => stopGateway(g))

const PCM = (n: number, seed = 0) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff))

async function sessionRow(id: string): Promise<Msg> {
  const res = await fetch(`${g.base}/api/v2/voice/sessions/${id}`, { headers: user.auth })
  expect(res.status).toBe(200)
  return res.json() as Promise<Msg>
}

describe('voice session protocol', () => {
  test('session_initialized carries the session, a new conversation, the default config, capabilities and server_time', async () => {
    const c = await session(g.ws, { headers: user.auth })
    const conversationId = c.init.conversation_id
    // (Bun's toMatchObject writes the asymmetric matchers into the received object: read values first)
    expect({ ...c.init }).toMatchObject({
      type: 'session_initialized',
      session_id: expect.stringMatching(/^vs_/),
      conversation_id: expect.stringMatching(/^conv_/),
      config: { sample_rate: 16000, channels: 1, format: 'pcm', language: 'zh-CN', vad_enabled: true, noise_suppression: true, echo_cancellation: false },
      capabilities: expect.objectContaining({ barge_in: true, max_frame_bytes: 1048576 }),
    })
    expect(Math.abs(c.init.server_time - Date.now() / 1000)).toBeLessThan(5)
    // the conversation exists and belongs to the user
    expect((await fetch(`${g.base}/api/v2/conversations/${conversationId}`, { headers: user.auth })).status).toBe(200)
    c.ws.close()
  })

  test('?language= sets the initial language; config → config_updated; a bad config is INVALID_MESSAGE and changes nothing', async () => {
    const c = await session(g.ws, { headers: user.auth, query: 'language=en-US' })
    expect(c.init.config.language).toBe('en-US')
    c.send({ type: 'config', sample_rate: 8000, echo_cancellation: true })
    const updated = await c.waitForType('config_updated')
    expect(updated).toEqual({
      type: 'config_updated',
      session_id: c.init.session_id,
      config: { ...c.init.config, sample_rate: 8000, echo_cancellation: true },
    })
    c.send({ type: 'config', channels: 7 })
    const err = await c.waitForType('error')
    expect(err).toMatchObject({ code: 'INVALID_MESSAGE', session_id: c.init.session_id, error: expect.stringContaining('channels') })
    c.send({ type: 'ping' })
    await c.waitForType('pong')
    expect(c.ofType('config_updated')).toHaveLength(1)
    c.ws.close()
  })

  test('ping → pong with server_time; unknown types and non-JSON get INVALID_MESSAGE and the socket stays open', async () => {
    const c = await session(g.ws, { headers: user.auth })
    c.ws.send('not json')
    c.send({ type: 'dance' })
    c.ws.send('[1,2]')
    await c.waitFor(() => c.ofType('error').length === 3)
    expect(c.ofType('error').map((e) => e.code)).toEqual(['INVALID_MESSAGE', 'INVALID_MESSAGE', 'INVALID_MESSAGE'])
    c.send({ type: 'ping' })
    const pong = await c.waitForType('pong')
    expect(pong.session_id).toBe(c.init.session_id)
    expect(typeof pong.server_time).toBe('number')
    expect(c.ws.readyState).toBe(WebSocket.OPEN)
    c.ws.close()
  })

  test('audio, start and stop: every upstream event of the reply reaches the client with session_id', async () => {
    const c = await session(g.ws, { headers: user.auth })
    c.send({ type: 'start' })
    for (let i = 0; i < 10; i++) c.ws.send(PCM(640, i))
    await c.waitForType('asr_partial')
    c.send({ type: 'stop' })
    await c.waitForType('tts_complete')
    const types = c.messages.map((m) => m.type)
    for (const t of ['asr_partial', 'asr_final', 'retrieval_progress', 'llm_response_chunk', 'tts_audio', 'tts_complete']) expect(types).toContain(t)
    for (const m of c.messages) expect(m.session_id).toBe(c.init.session_id)
    const tts = c.ofType('tts_audio')[0]!
    expect(Buffer.from(tts.audio_data, 'base64').length).toBeGreaterThan(0)
    c.ws.close()
  })

  test('end_session closes with 1000; the row says completed with its counters; the transcript is stored as messages', async () => {
    const c = await session(g.ws, { headers: user.auth })
    for (let i = 0; i < 3; i++) c.ws.send(PCM(640))
    c.send({ type: 'stop' })
    await c.waitForType('tts_complete')
    c.send({ type: 'end_session' })
    expect((await c.closed).code).toBe(1000)
    const id = c.init.session_id
    await eventually(async () => (await sessionRow(id)).status !== 'active', 5000, 'the row to be completed')
    const row = await sessionRow(id)
    expect(row).toMatchObject({ id, status: 'completed', end_reason: 'client_ended', packets: 3, bytes: 1920, asr_count: 1, tts_count: 5, dropped_frames: 0, error_count: 0 })
    expect(row.avg_relay_latency_ms).toBeGreaterThanOrEqual(0)
    expect(row.ended_at).not.toBeNull()
    const final = c.ofType('asr_final')[0]!
    const answer = c.ofType('llm_response_chunk').map((m) => m.content).join('')
    await eventually(async () => {
      const res = await fetch(`${g.base}/api/v2/conversations/${c.init.conversation_id}/messages`, { headers: user.auth })
      return ((await res.json()) as Msg).items.length === 2
    })
    const res = await fetch(`${g.base}/api/v2/conversations/${c.init.conversation_id}/messages`, { headers: user.auth })
    const items = ((await res.json()) as Msg).items
    expect(items.map((m: Msg) => [m.role, m.content, m.modality, m.status])).toEqual([
      ['user', final.text, 'voice', 'completed'],
      ['assistant', answer, 'voice', 'completed'],
    ])
  })

  test('a given conversation_id is used; another user’s is 404 before the upgrade', async () => {
    const conv = (await (
      await fetch(`${g.base}/api/v2/conversations`, { method: 'POST', headers: { ...user.auth, 'content-type': 'application/json' }, body: '{}' })
    ).json()) as Msg
    const c = await session(g.ws, { headers: user.auth, query: `conversation_id=${conv.id}` })
    expect(c.init.conversation_id).toBe(conv.id)
    c.ws.close()
    const other = await makeUser(g.gw, { tenantId: user.tenantId })
    const res = await fetch(`${g.base}/api/v2/voice/stream?conversation_id=${conv.id}`, {
      headers: { ...other.auth, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
    })
    expect(res.status).toBe(404)
    expect(((await res.json()) as Msg).code).toBe('CONVERSATION_NOT_FOUND')
  })

  test('a frame over 1 MiB closes the socket with 1009; one of exactly 1 MiB is relayed', async () => {
    const c = await session(g.ws, { headers: user.auth })
    c.ws.send(PCM(1024 * 1024))
    c.send({ type: 'ping' })
    await c.waitForType('pong')
    c.ws.send(PCM(1024 * 1024 + 1))
    expect((await c.closed).code).toBe(1009)
    await eventually(async () => (await sessionRow(c.init.session_id)).status !== 'active')
    const row = await sessionRow(c.init.session_id)
    expect([row.packets, row.status, row.end_reason]).toEqual([1, 'failed', 'message_too_large'])
  })

  test('metrics: voice connections gauge, frames relayed by direction, relay latency, sessions by ending', async () => {
    const metric = async (prefix: string) => {
      const text = await (await fetch(`${g.base}/metrics`)).text()
      const line = text.split('\n').find((l) => l.startsWith(prefix))
      return line ? Number(line.split(' ').at(-1)) : 0
    }
    const c = await session(g.ws, { headers: user.auth })
    expect(await metric('websocket_connections_active{type="voice"}')).toBe(1)
    const upBefore = await metric('voice_frames_relayed_total{direction="upstream"}')
    c.ws.send(PCM(640))
    c.send({ type: 'stop' })
    await c.waitForType('tts_complete')
    expect(await metric('voice_frames_relayed_total{direction="upstream"}')).toBe(upBefore + 2)
    expect(await metric('voice_frames_relayed_total{direction="downstream"}')).toBeGreaterThan(5)
    expect(await metric('voice_relay_latency_seconds_count{direction="upstream"}')).toBeGreaterThan(0)
    const endedBefore = await metric('voice_session_endings_total{reason="client_ended"}')
    c.send({ type: 'end_session' })
    await c.closed
    await eventually(async () => (await metric('websocket_connections_active{type="voice"}')) === 0)
    expect(await metric('voice_session_endings_total{reason="client_ended"}')).toBe(endedBefore + 1)
  })
})
