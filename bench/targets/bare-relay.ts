/**
 * The yardstick of the chat benchmark: a bare `Bun.serve` relay of the gateway's chat protocol, with no
 * framework, auth, persistence or metrics. `POST /api/v2/chat/stream` fetches `POST {ALGO_SERVICE_URL}/query`,
 * cuts the NDJSON body into lines and writes one SSE event per line, framed by stream_start and stream_end.
 *
 * It does the per-line work a plain relay of the protocol does: cut on raw bytes, decode the line, JSON.parse it,
 * add request_id / line_number / timestamp, JSON.stringify it, enqueue one string per event. (The gateway decodes
 * a read's lines together and extends each line's own text instead of serialising it again; `bench/chat.ts
 * --variants splice` runs this relay's structure with that, to show what it is worth on its own.)
 *
 *   ALGO_SERVICE_URL=http://127.0.0.1:8081 PORT=8090 bun bench/targets/bare-relay.ts
 */
const upstreamUrl = (process.env.ALGO_SERVICE_URL ?? 'http://127.0.0.1:8081').replace(/\/+$/, '')
const decoder = new TextDecoder()
const unixSeconds = () => Math.floor(Date.now() / 1000)
let nextId = 0

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
}

const EVENT_NAME = /^[a-z][a-z0-9_.]{0,63}$/

const sse = (id: number, event: string, data: Record<string, unknown>) =>
  `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`

async function chatStream(req: Request): Promise<Response> {
  let body: { message?: unknown; request_id?: unknown; conversation_id?: unknown }
  try {
    body = (await req.json()) as typeof body
  } catch {
    return Response.json({ error: 'invalid JSON' }, { status: 400 })
  }
  if (typeof body.message !== 'string' || body.message.trim() === '') {
    return Response.json({ error: 'message is required' }, { status: 400 })
  }
  const requestId = typeof body.request_id === 'string' ? body.request_id : `req_${process.pid}_${nextId++}`
  const message = body.message
  const started = Date.now()
  const ctrl = new AbortController()
  req.signal.addEventListener('abort', () => ctrl.abort(), { once: true })

  let seq = 0
  let lineNumber = 0
  let reader: { read(): Promise<{ done: true; value?: undefined } | { done: false; value: Uint8Array }>; cancel(): Promise<void> } | undefined
  let partial: Uint8Array | undefined

  /** one event per complete line of `bytes` (a partial last line is kept for the next chunk) */
  function relayLines(controller: ReadableStreamDefaultController<string>, bytes: Uint8Array) {
    let start = 0
    while (start < bytes.length) {
      const nl = bytes.indexOf(10, start)
      if (nl === -1) {
        const rest = bytes.subarray(start)
        partial = partial ? Bun.concatArrayBuffers([partial, rest], Infinity, true) : rest.slice()
        return
      }
      let line = bytes.subarray(start, nl)
      if (partial) {
        line = Bun.concatArrayBuffers([partial, line], Infinity, true)
        partial = undefined
      }
      start = nl + 1
      relayLine(controller, line)
    }
  }

  function relayLine(controller: ReadableStreamDefaultController<string>, bytes: Uint8Array) {
    const text = decoder.decode(bytes)
    if (text.trim() === '') return
    lineNumber++
    let value: Record<string, unknown>
    try {
      value = JSON.parse(text) as Record<string, unknown>
    } catch {
      return // invalid lines are skipped, as the gateway does
    }
    const type = typeof value.type === 'string' && EVENT_NAME.test(value.type) ? value.type : 'message'
    controller.enqueue(sse(seq++, type, { ...value, request_id: requestId, line_number: lineNumber, timestamp: unixSeconds() }))
  }

  const stream = new ReadableStream<string>({
    async start(controller) {
      controller.enqueue(sse(seq++, 'stream_start', { request_id: requestId, timestamp: unixSeconds() }))
      const res = await fetch(`${upstreamUrl}/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
        body: JSON.stringify({ messages: [{ role: 'user', content: message }], request_id: requestId, conversation_id: body.conversation_id ?? null }),
        signal: ctrl.signal,
      })
      if (!res.ok || !res.body) {
        controller.enqueue(sse(seq++, 'error', { request_id: requestId, code: 'ALGO_SERVICE_ERROR', status: res.status }))
        controller.close()
        return
      }
      reader = res.body.getReader()
    },
    async pull(controller) {
      if (!reader) return
      const chunk = await reader.read()
      if (chunk.done) {
        if (partial) relayLine(controller, partial)
        controller.enqueue(
          sse(seq++, 'stream_end', { request_id: requestId, lines_processed: lineNumber, duration_ms: Date.now() - started, timestamp: unixSeconds() }),
        )
        controller.close()
        return
      }
      relayLines(controller, chunk.value)
    },
    cancel() {
      ctrl.abort()
      void reader?.cancel().catch(() => {})
    },
  })
  return new Response(stream, { headers: SSE_HEADERS })
}

const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: '127.0.0.1',
  async fetch(req, server) {
    const { pathname } = new URL(req.url)
    if (pathname === '/health') return Response.json({ status: 'healthy', version: 'bare-relay' })
    if (pathname === '/api/v2/chat/stream' && req.method === 'POST') {
      server.timeout(req, 0) // a paced stream is not idle, as in the gateway
      return chatStream(req)
    }
    return new Response('not found', { status: 404 })
  },
})
export {}
console.log(JSON.stringify({ msg: 'bare relay listening', port: server.port, upstream: upstreamUrl }))
// a clean exit on SIGTERM (as the gateway's), so that runtime exit hooks such as --cpu-prof run
process.on('SIGTERM', () => process.exit(0))
