/**
 * The yardstick of the voice benchmark: a bare `Bun.serve` WebSocket relay of the gateway's voice protocol
 * (contract §5), with no framework, auth, limits, persistence, metrics, backpressure or heartbeat.
 *
 * `GET /api/v2/voice/stream` upgrades; each client socket gets one upstream socket to
 * `{ALGO_SERVICE_URL}/voice/stream?session_id=…&conversation_id=…`. Client frames sent before the upstream is
 * open wait in a queue; once it is open the client gets `session_initialized`. Per frame it does the work the
 * gateway does on its hot path:
 * - binary client frame → the seed's `audio_chunk` JSON (same prefix/sequence/timestamp/base64 layout as
 *   src/modules/voice/session.ts), one upstream send;
 * - text client frame → forwarded upstream as it is (control messages, e.g. `config` with `simulate`);
 * - upstream event → JSON.parse, `session_id` added with JSON.stringify unless it already carries this
 *   session's id (then the raw text goes on — exactly the gateway's rule), one client send.
 *
 *   ALGO_SERVICE_URL=http://127.0.0.1:8081 PORT=8092 bun bench/targets/bare-voice-relay.ts
 */
import type { ServerWebSocket } from 'bun'

const upstreamBase = (process.env.ALGO_SERVICE_URL ?? 'http://127.0.0.1:8081').replace(/\/+$/, '').replace(/^http/, 'ws')
const CONFIG = { sample_rate: 16000, channels: 1, format: 'pcm', language: 'zh-CN', vad_enabled: true, noise_suppression: true, echo_cancellation: false }

interface Data {
  id: string
  conversationId: string
  upstream?: WebSocket
  upstreamOpen: boolean
  queue: string[]
  sequence: number
  audioPrefix: string
}

let n = 0

function toUpstream(ws: ServerWebSocket<Data>, text: string): void {
  const d = ws.data
  if (d.upstreamOpen) d.upstream!.send(text)
  else d.queue.push(text)
}

const server = Bun.serve<Data>({
  port: Number(process.env.PORT ?? 8092),
  hostname: '127.0.0.1',
  fetch(req, srv) {
    const path = new URL(req.url).pathname
    if (path === '/health') return new Response('ok')
    if (path !== '/api/v2/voice/stream') return new Response('not found', { status: 404 })
    const k = ++n
    const id = `vs_bare_${process.pid}_${k}`
    const conversationId = `conv_bare_${k}`
    const audioPrefix = `{"type":"audio_chunk","session_id":${JSON.stringify(id)},"conversation_id":${JSON.stringify(conversationId)},"format":"pcm","sample_rate":16000,"channels":1,"sequence":`
    if (srv.upgrade(req, { data: { id, conversationId, upstreamOpen: false, queue: [], sequence: 0, audioPrefix } })) return undefined
    return new Response('expected a WebSocket upgrade', { status: 400 })
  },
  websocket: {
    maxPayloadLength: 1024 * 1024,
    open(ws) {
      const d = ws.data
      const up = new WebSocket(`${upstreamBase}/voice/stream?session_id=${encodeURIComponent(d.id)}&conversation_id=${encodeURIComponent(d.conversationId)}`)
      d.upstream = up
      up.onopen = () => {
        d.upstreamOpen = true
        for (const text of d.queue) up.send(text)
        d.queue = []
        ws.send(JSON.stringify({ type: 'session_initialized', session_id: d.id, conversation_id: d.conversationId, config: CONFIG, server_time: Date.now() / 1000 }))
      }
      up.onmessage = (e) => {
        if (typeof e.data !== 'string') return
        let msg: Record<string, unknown>
        try {
          msg = JSON.parse(e.data)
        } catch {
          return
        }
        if (typeof msg !== 'object' || msg === null) return
        ws.send(msg.session_id === d.id ? e.data : JSON.stringify({ ...msg, session_id: d.id }))
      }
      up.onclose = () => {
        d.upstreamOpen = false
        try {
          ws.close(1011, 'upstream closed')
        } catch {}
      }
      up.onerror = () => {}
    },
    message(ws, message) {
      if (typeof message === 'string') return toUpstream(ws, message)
      const d = ws.data
      toUpstream(ws, `${d.audioPrefix}${++d.sequence},"timestamp":${Date.now()},"audio_chunk":"${message.toString('base64')}"}`)
    },
    close(ws) {
      const up = ws.data.upstream
      ws.data.upstreamOpen = false
      try {
        up?.close(1000, 'session ended')
      } catch {}
    },
  },
})

process.once('SIGTERM', () => {
  server.stop(true)
  process.exit(0)
})
