/**
 * Voice test helpers: a listening gateway, real WebSocket clients that record what they get, a fake
 * algorithm service that records what the gateway sends it, and a raw client that stops reading.
 */
import net from 'node:net'
import type { Server, ServerWebSocket } from 'bun'
import { createTestApp, type TestApp } from '../helpers/app'

export type Msg = Record<string, any>

export async function listeningGateway(env: Record<string, string> = {}): Promise<{ gw: TestApp; base: string; ws: string }> {
  const gw = await createTestApp(env)
  gw.app.listen({ port: 0, hostname: '127.0.0.1' })
  const base = `http://127.0.0.1:${gw.app.server!.port}`
  return { gw, base, ws: base.replace('http', 'ws') }
}

export async function stopGateway(g: { gw: TestApp } | undefined): Promise<void> {
  if (!g) return
  await g.gw.app.stop(true)
  await g.gw.close()
}

export interface VoiceClient {
  ws: WebSocket
  messages: Msg[]
  /** resolves with the close event */
  closed: Promise<CloseEvent>
  waitFor(pred: (m: Msg) => boolean, ms?: number): Promise<Msg>
  waitForType(type: string, ms?: number): Promise<Msg>
  send(m: Msg): void
  ofType(type: string): Msg[]
}

export function wrap(ws: WebSocket): VoiceClient {
  const messages: Msg[] = []
  const listeners = new Set<() => void>()
  ws.addEventListener('message', (e) => {
    messages.push(typeof e.data === 'string' ? JSON.parse(e.data) : { binary: e.data })
    for (const l of [...listeners]) l()
  })
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener('close', resolve))
  function waitFor(pred: (m: Msg) => boolean, ms = 5000): Promise<Msg> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = messages.find(pred)
        if (!found) return
        listeners.delete(check)
        clearTimeout(timer)
        resolve(found)
      }
      const timer = setTimeout(() => {
        listeners.delete(check)
        reject(new Error(`no matching message within ${ms} ms; got ${messages.map((m) => m.type).join(',')}`))
      }, ms)
      listeners.add(check)
      check()
    })
  }
  return {
    ws,
    messages,
    closed,
    waitFor,
    waitForType: (type, ms) => waitFor((m) => m.type === type, ms),
    send: (m) => ws.send(JSON.stringify(m)),
    ofType: (type) => messages.filter((m) => m.type === type),
  }
}

export interface ConnectOptions {
  headers?: Record<string, string>
  protocols?: string[]
  query?: string
  path?: string
}

/** opens a socket; resolves once open (or rejects with the close code if refused) */
export async function connect(wsBase: string, opts: ConnectOptions = {}): Promise<VoiceClient> {
  const url = `${wsBase}${opts.path ?? '/api/v2/voice/stream'}${opts.query ? `?${opts.query}` : ''}`
  const ws = new WebSocket(url, { headers: opts.headers, protocols: opts.protocols } as unknown as string[])
  const client = wrap(ws)
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve())
    ws.addEventListener('close', (e) => reject(new Error(`closed before open: ${e.code}`)))
  })
  return client
}

/** opens a voice session and waits for session_initialized */
export async function session(wsBase: string, opts: ConnectOptions = {}): Promise<VoiceClient & { init: Msg }> {
  const client = await connect(wsBase, opts)
  const init = await client.waitForType('session_initialized')
  return { ...client, init }
}

/** the HTTP answer to an upgrade request that is refused */
export async function upgradeStatus(base: string, headers: Record<string, string> = {}, path = '/api/v2/voice/stream'): Promise<{ status: number; code?: string; body: any }> {
  const res = await fetch(`${base}${path}`, {
    headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
  })
  const text = await res.text()
  let body: any
  try {
    body = JSON.parse(text)
  } catch {
    body = text
  }
  return { status: res.status, code: body?.code, body }
}

export { eventually } from '../helpers/wait'

/** a fake algorithm service: records every message and upgrade; `respond` answers each message */
export interface FakeUpstream {
  url: string
  received: Msg[]
  upgrades: Request[]
  sockets: Set<ServerWebSocket<unknown>>
  respond: (ws: ServerWebSocket<unknown>, m: Msg) => void
  /** how long the upgrade answer waits (a slow algorithm service) */
  upgradeDelayMs: number
  stop(): Promise<void>
}

export function fakeUpstream(): FakeUpstream {
  const fake: FakeUpstream = {
    url: '',
    received: [],
    upgrades: [],
    sockets: new Set(),
    respond: () => {},
    upgradeDelayMs: 0,
    stop: async () => {
      await server.stop(true)
    },
  }
  const server: Server<unknown> = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req, srv) {
      fake.upgrades.push(req)
      if (fake.upgradeDelayMs > 0) await Bun.sleep(fake.upgradeDelayMs)
      if (srv.upgrade(req, { data: { url: req.url } })) return undefined
      return new Response('no', { status: 400 })
    },
    websocket: {
      maxPayloadLength: 4 * 1024 * 1024,
      open: (ws) => void fake.sockets.add(ws),
      message(ws, raw) {
        const m = JSON.parse(String(raw))
        fake.received.push(m)
        fake.respond(ws, m)
      },
      close: (ws) => void fake.sockets.delete(ws),
    },
  })
  fake.url = `http://127.0.0.1:${server.port}`
  return fake
}

/**
 * A WebSocket client on a raw TCP socket that never answers pings. With `paused` it stops reading after the
 * upgrade answer, so the server's send buffer for it only grows: a client on a stalled network. Otherwise
 * it keeps every byte it gets (`frames()` decodes them).
 */
export async function rawClient(
  port: number,
  path: string,
  headers: Record<string, string>,
  opts: { paused?: boolean } = {},
): Promise<{ send(text: string): void; frames(): Array<{ opcode: number; payload: Buffer }>; resume(): void; destroy(): void; ended: Promise<void> }> {
  let body = Buffer.alloc(0)
  const sock = net.connect(port, '127.0.0.1')
  const ended = new Promise<void>((resolve) => sock.once('close', () => resolve()))
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()))
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
  sock.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
  )
  await new Promise<void>((resolve, reject) => {
    let head = Buffer.alloc(0)
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      if (!head.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) return reject(new Error(`upgrade refused: ${head.toString().split('\r\n')[0]}`))
      sock.off('data', onData)
      body = head.subarray(end + 4)
      if (opts.paused) sock.pause()
      sock.on('data', (more: Buffer) => {
        body = Buffer.concat([body, more])
      })
      resolve()
    }
    sock.on('data', onData)
  })
  return {
    send: (text) => void sock.write(clientTextFrame(text)),
    frames: () => decodeFrames(body),
    resume: () => void sock.resume(),
    destroy: () => sock.destroy(),
    ended,
  }
}

/** server frames (unmasked) in `buf`; a partial last frame is left out */
function decodeFrames(buf: Buffer): Array<{ opcode: number; payload: Buffer }> {
  const out: Array<{ opcode: number; payload: Buffer }> = []
  let i = 0
  while (i + 2 <= buf.length) {
    const opcode = buf[i]! & 0x0f
    let len = buf[i + 1]! & 0x7f
    let at = i + 2
    if (len === 126) {
      if (at + 2 > buf.length) break
      len = buf.readUInt16BE(at)
      at += 2
    } else if (len === 127) {
      if (at + 8 > buf.length) break
      len = Number(buf.readBigUInt64BE(at))
      at += 8
    }
    if (at + len > buf.length) break
    out.push({ opcode, payload: buf.subarray(at, at + len) })
    i = at + len
  }
  return out
}

/** masks and frames a client text message (for the raw client) */
export function clientTextFrame(text: string): Buffer {
  const payload = Buffer.from(text)
  const mask = Buffer.from([1, 2, 3, 4])
  const len = payload.length
  const head = len < 126 ? Buffer.from([0x81, 0x80 | len]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 0xff])
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))
  return Buffer.concat([head, mask, masked])
}
