import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { simulatedAnswer, startSimulator, type Simulator } from '../../src/simulator/server.ts'

let sim: Simulator

beforeAll(async () => {
  sim = await startSimulator()
})
afterAll(async () => {
  await sim.stop()
})

type Msg = Record<string, any>

interface Client {
  ws: WebSocket
  messages: Msg[]
  closed: Promise<CloseEvent>
  /** Resolves with the first message (at or after `from`) matching `pred`. */
  waitFor(pred: (m: Msg) => boolean, ms?: number): Promise<Msg>
  send(m: Msg): void
}

async function connect(params = ''): Promise<Client> {
  const ws = new WebSocket(`${sim.url.replace('http', 'ws')}/voice/stream?session_id=s1${params}`)
  const messages: Msg[] = []
  const listeners = new Set<() => void>()
  ws.onmessage = (e) => {
    messages.push(JSON.parse(String(e.data)))
    for (const l of listeners) l()
  }
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener('close', resolve))
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve()
    ws.onerror = () => reject(new Error('websocket failed'))
  })
  function waitFor(pred: (m: Msg) => boolean, ms = 2000): Promise<Msg> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = messages.find(pred)
        if (found) {
          listeners.delete(check)
          clearTimeout(timer)
          resolve(found)
        }
      }
      const timer = setTimeout(() => {
        listeners.delete(check)
        reject(new Error(`no matching message; got ${messages.map((m) => m.type).join(',')}`))
      }, ms)
      listeners.add(check)
      check()
    })
  }
  return { ws, messages, closed, waitFor, send: (m) => ws.send(JSON.stringify(m)) }
}

const PCM = Buffer.alloc(640).toString('base64')
function audio(sequence: number): Msg {
  return {
    type: 'audio_chunk',
    session_id: 's1',
    conversation_id: 'c1',
    audio_chunk: PCM,
    timestamp: Date.now(),
    sequence,
    format: 'pcm',
    sample_rate: 16000,
    channels: 1,
  }
}

async function settle(): Promise<void> {
  await Bun.sleep(50)
}

describe('voice: recognition', () => {
  test('an asr_partial every 10 audio chunks by default, growing word by word', async () => {
    const c = await connect()
    for (let i = 1; i <= 25; i++) c.send(audio(i))
    await c.waitFor((m) => m.type === 'asr_partial' && m.text === 'simulated utterance')
    await settle()
    const partials = c.messages.filter((m) => m.type === 'asr_partial')
    expect(partials.map((m) => m.text)).toEqual(['simulated', 'simulated utterance'])
    expect(partials.every((m) => m.session_id === 's1')).toBe(true)
    c.ws.close()
  })

  test('stop ends the utterance: asr_final, retrieval_progress, reply chunks, tts audio, tts_complete', async () => {
    const c = await connect('&transcript=what%20time%20is%20it')
    c.send({ type: 'start' })
    for (let i = 1; i <= 3; i++) c.send(audio(i))
    c.send({ type: 'stop' })
    await c.waitFor((m) => m.type === 'tts_complete')
    const reply = c.messages.filter((m) => m.reply_id)
    expect(reply.map((m) => m.type)).toEqual([
      'asr_final',
      'retrieval_progress',
      ...Array(4).fill('llm_response_chunk'),
      ...Array(5).fill('tts_audio'),
      'tts_complete',
    ])
    expect(reply[0]).toMatchObject({ text: 'what time is it', utterance: 1, audio_chunks: 3 })
    const text = reply
      .filter((m) => m.type === 'llm_response_chunk')
      .map((m) => m.content)
      .join('')
    expect(text).toBe(simulatedAnswer('what time is it', { chunks: 4 }))
    const tts = reply.filter((m) => m.type === 'tts_audio')
    expect(tts.map((m) => m.sequence)).toEqual([1, 2, 3, 4, 5])
    for (const frame of tts) {
      expect(frame.sample_rate).toBe(16000)
      expect(Buffer.from(frame.audio_data, 'base64').length).toBe(3200)
    }
    // A real tone, not silence.
    const pcm = new Int16Array(Buffer.from(tts[0]!.audio_data, 'base64').buffer.slice(0))
    expect(Math.max(...pcm)).toBeGreaterThan(1000)
    c.ws.close()
  })

  test('each utterance gets its own reply id and transcript number', async () => {
    const c = await connect('&tts_frames=1')
    c.send({ type: 'stop' })
    await c.waitFor((m) => m.type === 'tts_complete')
    c.send({ type: 'stop' })
    await c.waitFor((m) => m.type === 'asr_final' && m.utterance === 2)
    const finals = c.messages.filter((m) => m.type === 'asr_final')
    expect(finals.map((m) => m.text)).toEqual(['simulated utterance 1', 'simulated utterance 2'])
    expect(finals[0]!.reply_id).not.toBe(finals[1]!.reply_id)
    c.ws.close()
  })

  test('reply_chunks, tts_frames and tts_frame_bytes shape the reply', async () => {
    const c = await connect('&reply_chunks=2&tts_frames=3&tts_frame_bytes=640')
    c.send({ type: 'stop' })
    await c.waitFor((m) => m.type === 'tts_complete')
    expect(c.messages.filter((m) => m.type === 'llm_response_chunk')).toHaveLength(2)
    const tts = c.messages.filter((m) => m.type === 'tts_audio')
    expect(tts).toHaveLength(3)
    expect(Buffer.from(tts[0]!.audio_data, 'base64').length).toBe(640)
    c.ws.close()
  })
})

describe('voice: cancel', () => {
  test('cancel during a reply stops its tts_audio at once', async () => {
    const c = await connect('&tts_frames=50&tts_delay_ms=20')
    c.send({ type: 'stop' })
    await c.waitFor((m) => m.type === 'tts_audio' && m.sequence === 2)
    c.send({ type: 'cancel' })
    const cancelled = await c.waitFor((m) => m.type === 'reply_cancelled')
    const countAtCancel = c.messages.filter((m) => m.type === 'tts_audio').length
    await Bun.sleep(150)
    expect(c.messages.filter((m) => m.type === 'tts_audio').length).toBe(countAtCancel)
    expect(countAtCancel).toBeLessThan(5)
    expect(c.messages.some((m) => m.type === 'tts_complete')).toBe(false)
    expect(cancelled.reply_id).toBe(c.messages.find((m) => m.type === 'asr_final')!.reply_id)
    c.ws.close()
  })

  test('cancel with no reply running is harmless and silent', async () => {
    const c = await connect()
    c.send({ type: 'cancel' })
    c.send({ type: 'ping' })
    await c.waitFor((m) => m.type === 'pong')
    expect(c.messages.map((m) => m.type)).toEqual(['pong'])
    c.ws.close()
  })
})

describe('voice: options from the URL', () => {
  test('ack=1 answers every audio_chunk with audio_ack carrying its sequence', async () => {
    const c = await connect('&ack=1')
    for (let i = 1; i <= 5; i++) c.send(audio(i))
    await c.waitFor((m) => m.type === 'audio_ack' && m.sequence === 5)
    expect(c.messages.filter((m) => m.type === 'audio_ack').map((m) => m.sequence)).toEqual([1, 2, 3, 4, 5])
    c.ws.close()
  })

  test('mode=refuse rejects the upgrade with HTTP 503', async () => {
    const res = await fetch(`${sim.url}/voice/stream?mode=refuse`, {
      headers: {
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Version': '13',
      },
    })
    expect(res.status).toBe(503)
    expect(((await res.json()) as Msg).code).toBe('SIMULATED_REFUSAL')
    const ws = new WebSocket(`${sim.url.replace('http', 'ws')}/voice/stream?mode=refuse`)
    const outcome = await new Promise<string>((resolve) => {
      ws.onopen = () => resolve('open')
      ws.onerror = () => resolve('error')
    })
    expect(outcome).toBe('error')
  })

  test('bad option values are refused with 400 before the upgrade', async () => {
    const res = await fetch(`${sim.url}/voice/stream?tts_frames=lots`)
    expect(res.status).toBe(400)
  })

  test('drop_after_ms closes the socket abruptly (no close frame)', async () => {
    const t0 = performance.now()
    const c = await connect('&drop_after_ms=100')
    const ev = await c.closed
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90)
    expect(ev.code).toBe(1006)
  })

  test('voiceSocketsOpen counts open sockets', async () => {
    const started = sim.stats.voiceSessionsStarted
    const a = await connect()
    const b = await connect()
    expect(sim.stats.voiceSocketsOpen).toBe(2)
    expect(sim.stats.voiceSessionsStarted).toBe(started + 2)
    a.ws.close()
    b.ws.close()
    await Promise.all([a.closed, b.closed])
    await settle()
    expect(sim.stats.voiceSocketsOpen).toBe(0)
  })

  test('simulate in a config message changes options mid-session', async () => {
    const c = await connect()
    c.send({ type: 'config', simulate: { ack: true } })
    c.send(audio(9))
    await c.waitFor((m) => m.type === 'audio_ack' && m.sequence === 9)
    c.ws.close()
  })
})

describe('voice: malformed messages', () => {
  const bad: Array<[string, string]> = [
    ['not JSON', '{nope'],
    ['not an object', '[1]'],
    ['unknown type', '{"type":"dance"}'],
    ['audio_chunk without audio', '{"type":"audio_chunk","sequence":1}'],
    ['audio_chunk with non-base64 audio', '{"type":"audio_chunk","audio_chunk":"***","sequence":1}'],
    ['config with a bad simulate', '{"type":"config","simulate":{"tts_frames":-2}}'],
  ]
  for (const [name, raw] of bad) {
    test(`${name} → error INVALID_MESSAGE, connection stays open`, async () => {
      const c = await connect()
      c.ws.send(raw)
      const err = await c.waitFor((m) => m.type === 'error')
      expect(err.code).toBe('INVALID_MESSAGE')
      expect(typeof err.error).toBe('string')
      c.send({ type: 'ping' })
      await c.waitFor((m) => m.type === 'pong')
      c.ws.close()
    })
  }
})

describe('voice: lifecycle', () => {
  test('stop() closes open voice sockets', async () => {
    const own = await startSimulator()
    const ws = new WebSocket(`${own.url.replace('http', 'ws')}/voice/stream?session_id=x`)
    await new Promise((resolve) => (ws.onopen = resolve))
    const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener('close', resolve))
    expect(own.stats.voiceSocketsOpen).toBe(1)
    await own.stop()
    expect((await closed).code).toBe(1001)
  })

  test('closing the socket mid-reply leaves nothing running', async () => {
    const c = await connect('&tts_frames=1000&tts_delay_ms=5')
    c.send({ type: 'stop' })
    await c.waitFor((m) => m.type === 'tts_audio')
    c.ws.close()
    await c.closed
    await settle()
    expect(sim.stats.voiceSocketsOpen).toBe(0)
  })
})
