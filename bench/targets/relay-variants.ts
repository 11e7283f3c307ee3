/**
 * The bare relay with one piece of the gateway swapped in at a time, to find where the gateway's extra cost per
 * event goes (bench/chat.ts --variants). RELAY_VARIANT is a `+`-joined list of:
 * - `pool`: the upstream read through the gateway's pool (src/upstream: timers, breaker, NDJSON batches);
 * - `feed`: the response written by the gateway's EventFeed + watchFeed (push, direct stream) instead of pull + enqueue;
 * - `elysia`: the route served by Elysia instead of a bare Bun.serve fetch;
 * - `splice`: each line's own text extended with the enrichment (the gateway's `enrichedText`) instead of
 *   serialised again.
 * Per-line work is otherwise the relay's: decode, JSON.parse, enrich, JSON.stringify.
 *
 *   RELAY_VARIANT=pool+feed ALGO_SERVICE_URL=http://127.0.0.1:8081 PORT=8091 bun bench/targets/relay-variants.ts
 */
import { Elysia } from 'elysia'
import { EventFeed, watchFeed } from '../../src/modules/chat/feed'
import { enrichedText } from '../../src/modules/chat/answer'
import { eventName, formatEvent, formatEventData } from '../../src/modules/chat/sse'
import { createUpstreamPool } from '../../src/upstream'

const upstreamUrl = (process.env.ALGO_SERVICE_URL ?? 'http://127.0.0.1:8081').replace(/\/+$/, '')
const parts = new Set((process.env.RELAY_VARIANT ?? '').split('+').filter(Boolean))
const decoder = new TextDecoder()
const unixSeconds = () => Math.floor(Date.now() / 1000)
let nextId = 0

const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' }

const pool = parts.has('pool')
  ? createUpstreamPool({ urls: [upstreamUrl], firstByteTimeoutMs: 30_000, idleTimeoutMs: 60_000, healthIntervalMs: 0, userAgent: 'relay-variants' })
  : undefined

type Line = { value: Record<string, unknown>; text: string }

/** the upstream's lines of each read, parsed, as the gateway's pool hands them out */
async function* upstreamLines(body: unknown, requestId: string, signal: AbortSignal): AsyncGenerator<Line[]> {
  if (pool) {
    const s = await pool.query({ body, requestId, signal })
    for await (const batch of s.batches) yield batch.flatMap((i) => (i.kind === 'line' ? [i] : []))
    return
  }
  const res = await fetch(`${upstreamUrl}/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
    body: JSON.stringify(body),
    signal,
  })
  if (!res.ok || !res.body) throw new Error(`upstream HTTP ${res.status}`)
  let partial: Uint8Array | undefined
  for await (const bytes of res.body as AsyncIterable<Uint8Array>) {
    const out: Line[] = []
    let start = 0
    while (start < bytes.length) {
      const nl = bytes.indexOf(10, start)
      if (nl === -1) {
        const rest = bytes.subarray(start)
        partial = partial ? Bun.concatArrayBuffers([partial, rest], Infinity, true) : rest.slice()
        break
      }
      let line = bytes.subarray(start, nl)
      if (partial) {
        line = Bun.concatArrayBuffers([partial, line], Infinity, true)
        partial = undefined
      }
      start = nl + 1
      const text = decoder.decode(line)
      if (text.trim() === '') continue
      try {
        out.push({ value: JSON.parse(text) as Record<string, unknown>, text })
      } catch {}
    }
    if (out.length > 0) yield out
  }
}

async function chatStream(req: Request, message: string, conversationId: unknown): Promise<Response> {
  const requestId = `req_${process.pid}_${nextId++}`
  const started = Date.now()
  const ctrl = new AbortController()
  req.signal.addEventListener('abort', () => ctrl.abort(), { once: true })
  const body = { messages: [{ role: 'user', content: message }], request_id: requestId, conversation_id: conversationId ?? null }
  let seq = 0
  let lineNumber = 0
  const splice = parts.has('splice')
  const enrich = (lines: Line[]) =>
    lines.map(({ value: line, text }) => {
      const n = ++lineNumber
      const data = splice ? enrichedText(text, line, requestId, n, unixSeconds()) : undefined
      if (data !== undefined) return formatEventData(seq++, eventName(line), data)
      line.request_id = requestId
      line.line_number = n
      line.timestamp = unixSeconds()
      return formatEvent(seq++, eventName(line), line)
    })
  const start = () => formatEvent(seq++, 'stream_start', { request_id: requestId, timestamp: unixSeconds() })
  const end = () => formatEvent(seq++, 'stream_end', { request_id: requestId, lines_processed: lineNumber, duration_ms: Date.now() - started, timestamp: unixSeconds() })

  if (parts.has('feed')) {
    const feed = new EventFeed()
    feed.push(start())
    void (async () => {
      try {
        for await (const lines of upstreamLines(body, requestId, ctrl.signal)) feed.pushAll(enrich(lines))
      } catch {}
      feed.push(end())
      feed.finish()
    })()
    return new Response(watchFeed(feed, -1, req.signal, { attached() {}, detached() {} }), { headers: SSE_HEADERS })
  }

  let lines: AsyncGenerator<Line[]> | undefined
  const stream = new ReadableStream<string>({
    start(controller) {
      controller.enqueue(start())
      lines = upstreamLines(body, requestId, ctrl.signal)
    },
    async pull(controller) {
      const next = await lines!.next().catch(() => ({ done: true as const, value: undefined }))
      if (next.done) {
        controller.enqueue(end())
        controller.close()
        return
      }
      for (const text of enrich(next.value)) controller.enqueue(text)
    },
    cancel() {
      ctrl.abort()
      void lines?.return(undefined)
    },
  })
  return new Response(stream, { headers: SSE_HEADERS })
}

type Server = ReturnType<typeof Bun.serve>
let port: number
if (parts.has('elysia')) {
  const app = new Elysia()
    .get('/health', () => ({ status: 'healthy', version: 'relay-variants' }))
    .post('/api/v2/chat/stream', ({ body, request, server }) => {
      const b = body as { message: string; conversation_id?: unknown }
      server?.timeout(request, 0)
      return chatStream(request, b.message, b.conversation_id)
    })
    .listen({ port: Number(process.env.PORT ?? 0), hostname: '127.0.0.1' })
  port = app.server!.port!
} else {
  const server: Server = Bun.serve({
    port: Number(process.env.PORT ?? 0),
    hostname: '127.0.0.1',
    async fetch(req, server) {
      const { pathname } = new URL(req.url)
      if (pathname === '/health') return Response.json({ status: 'healthy', version: 'relay-variants' })
      if (pathname === '/api/v2/chat/stream' && req.method === 'POST') {
        server.timeout(req, 0)
        const b = (await req.json()) as { message: string; conversation_id?: unknown }
        return chatStream(req, b.message, b.conversation_id)
      }
      return new Response('not found', { status: 404 })
    },
  })
  port = server.port!
}
console.log(JSON.stringify({ msg: 'relay variant listening', variant: [...parts].join('+') || 'plain', port, upstream: upstreamUrl }))
process.on('SIGTERM', () => process.exit(0))
