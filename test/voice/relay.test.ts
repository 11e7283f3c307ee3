/**
 * The relay to the algorithm service (contract §5) on real sockets: audio reaches a fake upstream
 * byte-exact as `audio_chunk` JSON with sequence 1, 2, …; traceparent is forwarded; upstream events reach the
 * client with session_id; barge-in; server pings and the 4408 idle close; an upstream that refuses or drops.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startSimulator, type Simulator } from '../../src/simulator/server'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'
import { eventually, fakeUpstream, type FakeUpstream, listeningGateway, type Msg, rawClient, session, stopGateway } from './helpers'

const PCM = (n: number, seed = 0) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff))

describe('relay to a fake algorithm service', () => {
  let fake: FakeUpstream
  let g: Awaited<ReturnType<typeof listeningGateway>>
  let user: TestUser
  beforeAll(async () => {
    fake = fakeUpstream()
    g = await listeningGateway({ ALGO_SERVICE_URL: fake.url, VOICE_PING_INTERVAL_MS: '100', VOICE_IDLE_TIMEOUT_MS: '500', VOICE_MAX_SESSIONS_PER_USER: '20' })
    user = await makeUser(g.gw, { tenantId: await makeTenant(g.gw) })
  }, 30_000)
  afterAll(async () => {
    await stopGateway(g)
    await fake.stop()
  })

  test('binary frames arrive byte-exact as audio_chunk with sequence 1..n and the session config; control messages forwarded', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    const c = await session(g.ws, { headers: { ...user.auth, traceparent } })
    const sid = c.init.session_id
    const upgrade = fake.upgrades.at(-1)!
    expect(new URL(upgrade.url).searchParams.get('session_id')).toBe(sid)
    expect(upgrade.headers.get('traceparent')).toBe(traceparent)
    c.send({ type: 'start' })
    const frames = [PCM(640, 1), PCM(1, 2), PCM(4096, 3), PCM(640, 4), PCM(0, 5)]
    for (const f of frames) c.ws.send(f)
    c.send({ type: 'stop' })
    c.send({ type: 'cancel' })
    await eventually(() => fake.received.filter((m) => m.session_id === sid && m.type === 'cancel').length === 1)
    const mine = fake.received.filter((m) => m.session_id === sid)
    expect(mine.map((m) => m.type)).toEqual(['config', 'start', 'audio_chunk', 'audio_chunk', 'audio_chunk', 'audio_chunk', 'audio_chunk', 'stop', 'cancel'])
    const chunks = mine.filter((m) => m.type === 'audio_chunk')
    expect(chunks.map((m) => m.sequence)).toEqual([1, 2, 3, 4, 5])
    chunks.forEach((m, i) => expect(Buffer.from(m.audio_chunk, 'base64').equals(frames[i]!)).toBe(true))
    expect(chunks[0]).toMatchObject({ conversation_id: c.init.conversation_id, format: 'pcm', sample_rate: 16000, channels: 1 })
    expect(Math.abs(chunks[0]!.timestamp - Date.now())).toBeLessThan(5000)
    c.ws.close()
  })

  test("a config message cannot name another conversation, tenant or user to the upstream", async () => {
    const c = await session(g.ws, { headers: user.auth })
    const sid = c.init.session_id
    c.send({ type: 'config', language: 'en-US', conversation_id: 'conv_someone_else', tenant_id: 'other', user_id: 'usr_victim', messages: [{ role: 'system', content: 'x' }] })
    await eventually(() => fake.received.some((m) => m.session_id === sid && m.type === 'config' && m.language === 'en-US'))
    const sent = fake.received.findLast((m) => m.session_id === sid && m.type === 'config')!
    expect(sent).toMatchObject({ conversation_id: c.init.conversation_id, language: 'en-US', sample_rate: 16000 })
    expect(Object.keys(sent).sort()).toEqual(['channels', 'conversation_id', 'echo_cancellation', 'format', 'language', 'noise_suppression', 'sample_rate', 'session_id', 'type', 'vad_enabled'])
    c.ws.close()
  })

  test("the simulator's `simulate` directives go upstream outside production only", async () => {
    const c = await session(g.ws, { headers: user.auth })
    c.send({ type: 'config', simulate: { ack: true } })
    await c.waitForType('config_updated')
    await eventually(() => fake.received.some((m) => m.session_id === c.init.session_id && m.simulate !== undefined))
    c.ws.close()
    const prod = await listeningGateway({ NODE_ENV: 'production', ALGO_SERVICE_URL: fake.url })
    try {
      const who = await makeUser(prod.gw, { tenantId: await makeTenant(prod.gw) })
      const p = await session(prod.ws, { headers: who.auth })
      p.send({ type: 'config', simulate: { ack: true }, language: 'en-US' })
      await p.waitForType('config_updated')
      await eventually(() => fake.received.some((m) => m.session_id === p.init.session_id && m.language === 'en-US'))
      expect(fake.received.filter((m) => m.session_id === p.init.session_id && 'simulate' in m)).toEqual([])
      p.ws.close()
    } finally {
      await stopGateway(prod)
    }
  })

  test('every upstream event goes to the client with session_id added; unknown types pass through', async () => {
    fake.respond = (ws, m) => {
      if (m.type === 'stop') {
        ws.send(JSON.stringify({ type: 'asr_final', text: 'hello' }))
        ws.send(JSON.stringify({ type: 'custom_event', value: 42 }))
        ws.send(JSON.stringify({ type: 'error', code: 'ASR_FAILED', error: 'bad audio' }))
      }
    }
    const c = await session(g.ws, { headers: { ...user.auth, 'x-request-id': 'req-voice-relay-1' } })
    c.send({ type: 'stop' })
    await c.waitForType('error')
    expect(c.messages.slice(1)).toEqual([
      { type: 'asr_final', text: 'hello', session_id: c.init.session_id },
      { type: 'custom_event', value: 42, session_id: c.init.session_id },
      { type: 'error', code: 'ASR_FAILED', error: 'bad audio', session_id: c.init.session_id, request_id: 'req-voice-relay-1' },
    ])
    fake.respond = () => {}
    c.ws.close()
  })

  test("an upstream error reaches the client in the contract's shape: a code always, the upstream's other fields never", async () => {
    fake.respond = (ws, m) => {
      if (m.type === 'stop') {
        ws.send(JSON.stringify({ type: 'error', error: 'no code here', stack: 'at secret.py:12' }))
        ws.send(JSON.stringify({ type: 'error', code: 'not a code; DROP TABLE', error: { nested: true }, reply_id: 'r9' }))
      }
    }
    const c = await session(g.ws, { headers: { ...user.auth, 'x-request-id': 'req-voice-errors-1' } })
    c.send({ type: 'stop' })
    await c.waitFor(() => c.ofType('error').length === 2)
    expect(c.ofType('error')).toEqual([
      { type: 'error', session_id: c.init.session_id, code: 'ALGO_SERVICE_ERROR', error: 'no code here', request_id: 'req-voice-errors-1' },
      { type: 'error', session_id: c.init.session_id, code: 'ALGO_SERVICE_ERROR', error: 'The voice service reported an error', request_id: 'req-voice-errors-1', reply_id: 'r9' },
    ])
    c.send({ type: 'no_such_message' })
    const invalid = await c.waitFor((m) => m.code === 'INVALID_MESSAGE')
    expect(invalid.request_id).toBe('req-voice-errors-1')
    fake.respond = () => {}
    c.ws.close()
  })

  test('the upstream hears the session config first on every socket: ?language= at the start, the current config after a reconnect', async () => {
    const c = await session(g.ws, { headers: { ...user.auth, 'x-request-id': 'req-voice-reconnect-1' }, query: 'language=en-US' })
    const sid = c.init.session_id
    expect(c.init.config.language).toBe('en-US')
    await eventually(() => fake.received.some((m) => m.session_id === sid))
    expect(fake.received.find((m) => m.session_id === sid)).toMatchObject({ type: 'config', conversation_id: c.init.conversation_id, language: 'en-US', sample_rate: 16000 })
    c.send({ type: 'config', sample_rate: 24000 })
    await c.waitForType('config_updated')
    const socketsBefore = fake.upgrades.length
    // the algorithm service drops the session's socket: the gateway reconnects once
    const mineUpstream = [...fake.sockets].find((ws) => new URL((ws.data as { url: string }).url).searchParams.get('session_id') === sid)!
    mineUpstream.close(1011, 'restart')
    const dropped = await c.waitFor((m) => m.type === 'error' && m.reconnecting === true)
    expect(dropped).toMatchObject({ code: 'ALGO_SERVICE_ERROR', request_id: 'req-voice-reconnect-1' })
    await eventually(() => fake.upgrades.length > socketsBefore)
    c.ws.send(PCM(640))
    await eventually(() => fake.received.filter((m) => m.session_id === sid && m.type === 'audio_chunk').length === 1)
    const afterReconnect = fake.received.filter((m) => m.session_id === sid).slice(-2)
    expect(afterReconnect.map((m) => m.type)).toEqual(['config', 'audio_chunk'])
    expect(afterReconnect[0]).toMatchObject({ language: 'en-US', sample_rate: 24000 })
    expect(c.ws.readyState).toBe(WebSocket.OPEN)
    c.ws.close()
  })

  test('session_initialized is the first message even when the client speaks before the session is ready', async () => {
    fake.upgradeDelayMs = 300
    try {
      const { connect } = await import('./helpers')
      const c = await connect(g.ws, { headers: user.auth })
      c.send({ type: 'ping' })
      c.send({ type: 'no_such_message' })
      await c.waitFor((m) => m.code === 'INVALID_MESSAGE', 3000)
      expect(c.messages.map((m) => m.type)).toEqual(['session_initialized', 'pong', 'error'])
      c.ws.close()
    } finally {
      fake.upgradeDelayMs = 0
    }
  })

  test('barge-in: cancel goes upstream, playback_clear comes back, the rest of that reply is dropped until the next reply', async () => {
    let upstream: import('bun').ServerWebSocket<unknown> | undefined
    fake.respond = (ws, m) => {
      if (m.type === 'start') upstream = ws
    }
    const c = await session(g.ws, { headers: user.auth })
    c.send({ type: 'start' })
    await eventually(() => upstream !== undefined)
    const say = (m: Msg) => upstream!.send(JSON.stringify(m))
    say({ type: 'asr_final', text: 'q1', reply_id: 'r1' })
    say({ type: 'llm_response_chunk', content: 'A1 ', reply_id: 'r1' })
    say({ type: 'tts_audio', audio_data: 'AAAA', sequence: 1, reply_id: 'r1' })
    await c.waitFor((m) => m.type === 'tts_audio')
    c.send({ type: 'cancel' })
    await c.waitForType('playback_clear')
    // still in flight from upstream: dropped
    say({ type: 'tts_audio', audio_data: 'AAAA', sequence: 2, reply_id: 'r1' })
    say({ type: 'llm_response_chunk', content: 'more', reply_id: 'r1' })
    say({ type: 'reply_cancelled', reply_id: 'r1' })
    say({ type: 'asr_final', text: 'q2', reply_id: 'r2' })
    say({ type: 'tts_audio', audio_data: 'BBBB', sequence: 1, reply_id: 'r2' })
    await c.waitFor((m) => m.type === 'tts_audio' && m.reply_id === 'r2')
    expect(c.messages.slice(1).map((m) => `${m.type}:${m.reply_id ?? ''}`)).toEqual([
      'asr_final:r1',
      'llm_response_chunk:r1',
      'tts_audio:r1',
      'playback_clear:r1',
      'reply_cancelled:r1',
      'asr_final:r2',
      'tts_audio:r2',
    ])
    expect(fake.received.filter((m) => m.session_id === c.init.session_id).map((m) => m.type)).toContain('cancel')
    fake.respond = () => {}
    c.ws.close()
  })

  test('the server pings (a client that answers stays past the idle timeout); one that never answers is closed with 4408 and the row says expired', async () => {
    const c = await session(g.ws, { headers: user.auth })
    await Bun.sleep(900)
    expect(c.ws.readyState).toBe(WebSocket.OPEN)
    c.ws.close()
    const port = Number(new URL(g.base).port)
    const raw = await rawClient(port, '/api/v2/voice/stream', user.auth)
    await raw.ended
    const frames = raw.frames()
    expect(frames.some((f) => f.opcode === 0x9)).toBe(true) // ping
    const close = frames.find((f) => f.opcode === 0x8)!
    expect(close.payload.readUInt16BE(0)).toBe(4408)
    const init = JSON.parse(frames.find((f) => f.opcode === 0x1)!.payload.toString())
    await eventually(async () => {
      const row = (await (await fetch(`${g.base}/api/v2/voice/sessions/${init.session_id}`, { headers: user.auth })).json()) as Msg
      return row.status === 'expired' && row.end_reason === 'idle'
    })
  })
})

describe('an algorithm service that refuses or drops', () => {
  let refusing: Simulator
  let dropping: Simulator
  let a: Awaited<ReturnType<typeof listeningGateway>>
  let b: Awaited<ReturnType<typeof listeningGateway>>
  let ua: TestUser
  let ub: TestUser
  beforeAll(async () => {
    refusing = await startSimulator({ voice: { mode: 'refuse' } })
    dropping = await startSimulator({ voice: { drop_after_ms: 300 } })
    a = await listeningGateway({ ALGO_SERVICE_URL: refusing.url })
    b = await listeningGateway({ ALGO_SERVICE_URL: dropping.url })
    ua = await makeUser(a.gw, { tenantId: await makeTenant(a.gw) })
    ub = await makeUser(b.gw, { tenantId: await makeTenant(b.gw) })
  }, 30_000)
  afterAll(async () => {
    await stopGateway(a)
    await stopGateway(b)
    await refusing.stop()
    await dropping.stop()
  })

  test('refused: error ALGO_SERVICE_ERROR, close 1011, row failed', async () => {
    const { connect } = await import('./helpers')
    const c = await connect(a.ws, { headers: ua.auth })
    const err = await c.waitForType('error')
    expect(err.code).toBe('ALGO_SERVICE_ERROR')
    expect((await c.closed).code).toBe(1011)
    expect(c.ofType('session_initialized')).toHaveLength(0)
    const rows = (await (await fetch(`${a.base}/api/v2/voice/sessions?status=failed`, { headers: ua.auth })).json()) as Msg
    expect(rows.items.map((r: Msg) => r.end_reason)).toEqual(['upstream_error'])
  })

  test('dropped mid-session: an error saying it reconnects, one reconnect (the session goes on), a second drop ends it with ALGO_SERVICE_ERROR and 1011', async () => {
    const before = dropping.stats.voiceSessionsStarted
    const c = await session(b.ws, { headers: ub.auth })
    const closed = await c.closed
    expect(closed.code).toBe(1011)
    // the first drop is told (the reply in flight is lost), the second one ends the session
    expect(c.ofType('error').map((e) => [e.code, e.reconnecting ?? false])).toEqual([
      ['ALGO_SERVICE_ERROR', true],
      ['ALGO_SERVICE_ERROR', false],
    ])
    // both carry the upgrade request's id
    const ids = c.ofType('error').map((e) => e.request_id)
    expect([typeof ids[0], ids[1]]).toEqual(['string', ids[0]])
    expect(dropping.stats.voiceSessionsStarted - before).toBe(2)
    await eventually(async () => {
      const row = (await (await fetch(`${b.base}/api/v2/voice/sessions/${c.init.session_id}`, { headers: ub.auth })).json()) as Msg
      return row.status === 'failed' && row.end_reason === 'upstream_error'
    })
  })
})
