/**
 * Backpressure both ways (contract §5, TRAPS: Bun's send() returns -1 past the buffer and silently drops past
 * backpressureLimit): a client that stops reading gets `throttle`, its stale tts_audio is dropped and counted,
 * control events still arrive, and what the gateway holds for it stays bounded; an algorithm service that
 * stops reading loses the oldest audio (counted) while the session stays responsive.
 */
import { createHash } from 'node:crypto'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'
import { eventually, listeningGateway, type Msg, rawClient, session, stopGateway } from './helpers'

const MAX = 64 * 1024

async function metric(base: string, name: string, direction: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name}{direction="${direction}"}`))
  return line ? Number(line.split(' ').at(-1)) : 0
}

describe('a client that stops reading', () => {
  let g: Awaited<ReturnType<typeof listeningGateway>>
  let user: TestUser
  beforeAll(async () => {
    g = await listeningGateway({ VOICE_MAX_BUFFERED_BYTES: String(MAX) })
    user = await makeUser(g.gw, { tenantId: await makeTenant(g.gw) })
  }, 30_000)
  afterAll(() => stopGateway(g))

  test('gets throttle; stale tts_audio is dropped and counted; tts_complete still arrives; the backlog stays bounded', async () => {
    const port = Number(new URL(g.base).port)
    const raw = await rawClient(port, '/api/v2/voice/stream', user.auth, { paused: true })
    // 400 frames of 48 KB (~26 MB of base64) as fast as the gateway reads them
    raw.send(JSON.stringify({ type: 'config', simulate: { tts_frames: 400, tts_frame_bytes: 48000 } }))
    raw.send(JSON.stringify({ type: 'stop' }))
    await eventually(async () => (await metric(g.base, 'voice_frames_dropped_total', 'downstream')) > 300, 20_000, 'drops')
    const frames = await new Promise<Array<{ opcode: number; payload: Buffer }>>((resolve) => {
      raw.resume()
      const poll = setInterval(() => {
        const f = raw.frames()
        if (f.some((x) => x.opcode === 1 && x.payload.includes('"tts_complete"'))) {
          clearInterval(poll)
          resolve(f)
        }
      }, 20)
    })
    const events = frames.filter((f) => f.opcode === 1).map((f) => JSON.parse(f.payload.toString()) as Msg)
    const delivered = frames.reduce((n, f) => n + f.payload.length, 0)
    const tts = events.filter((e) => e.type === 'tts_audio')
    expect(events.some((e) => e.type === 'throttle')).toBe(true)
    expect(events.at(-1)!.type).toBe('tts_complete')
    // text events are never dropped
    expect(events.filter((e) => e.type === 'llm_response_chunk')).toHaveLength(4)
    expect(tts.length).toBeLessThan(150)
    // what was held for the client: the kernel's socket buffers plus at most MAX in Bun, not the 26 MB sent
    expect(delivered).toBeLessThan(10 * 1024 * 1024)
    const sessionId = events[0]!.session_id
    raw.destroy()
    await eventually(async () => {
      const row = (await (await fetch(`${g.base}/api/v2/voice/sessions/${sessionId}`, { headers: user.auth })).json()) as Msg
      return row.status !== 'active' && row.dropped_frames === 400 - tts.length && row.tts_count === 400
    })
  }, 30_000)
})

/** a WebSocket server that completes the handshake and then never reads again */
function stalledUpstream(): Promise<{ url: string; close(): void }> {
  const server = net.createServer((s) => {
    let head = ''
    s.on('data', (d) => {
      head += d.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      const key = /sec-websocket-key: *(\S+)/i.exec(head)![1]!
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
      s.removeAllListeners('data')
      s.pause()
      s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
    })
  })
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, close: () => server.close() })),
  )
}

describe('an algorithm service that stops reading', () => {
  let upstream: { url: string; close(): void }
  let g: Awaited<ReturnType<typeof listeningGateway>>
  let user: TestUser
  beforeAll(async () => {
    upstream = await stalledUpstream()
    g = await listeningGateway({ ALGO_SERVICE_URL: upstream.url, VOICE_MAX_BUFFERED_BYTES: String(MAX) })
    user = await makeUser(g.gw, { tenantId: await makeTenant(g.gw) })
  }, 30_000)
  afterAll(async () => {
    await stopGateway(g)
    upstream.close()
  })

  test('the oldest audio is dropped and counted; the client is still answered', async () => {
    const c = await session(g.ws, { headers: user.auth })
    const frame = Buffer.alloc(32 * 1024, 7)
    for (let i = 0; i < 600; i++) c.ws.send(frame) // ~26 MB of base64 JSON
    await eventually(async () => (await metric(g.base, 'voice_frames_dropped_total', 'upstream')) > 0, 10_000, 'upstream drops')
    c.send({ type: 'ping' })
    await c.waitForType('pong')
    c.ws.close()
    await eventually(async () => {
      const row = (await (await fetch(`${g.base}/api/v2/voice/sessions/${c.init.session_id}`, { headers: user.auth })).json()) as Msg
      return row.status !== 'active' && row.packets === 600 && row.dropped_frames > 100
    })
  }, 30_000)
})
