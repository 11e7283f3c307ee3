/**
 * Against the VoiceHelper algorithm service's own `/query` wire format — a fake on a real socket that speaks
 * exactly `{type: refs|content|end|error, content, refs}` lines — and through a 20 s upstream silence with the
 * default 15 s heartbeat.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { TestApp } from '../helpers/app'
import type { TestUser } from '../helpers/identity'
import { chatRequest, chatUser, listeningGateway, SseReader } from './helpers'

let fake: ReturnType<typeof Bun.serve>
let gw: TestApp
let base: string
let user: TestUser
let lastBody: Record<string, any> | undefined

const lines = (objs: object[]) => objs.map((o) => `${JSON.stringify(o)}\n`).join('')

beforeAll(async () => {
  fake = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    async fetch(req) {
      if (new URL(req.url).pathname !== '/query') return new Response('not found', { status: 404 })
      lastBody = (await req.json()) as Record<string, any>
      const question: string = lastBody.messages.at(-1).content
      if (question.includes('fail')) {
        return new Response(lines([{ type: 'content', content: 'Partial' }, { type: 'error', content: 'model overloaded' }]), { headers: { 'content-type': 'application/x-ndjson' } })
      }
      if (question.includes('empty')) return new Response('', { headers: { 'content-type': 'application/x-ndjson' } })
      if (question.includes('html')) return new Response('<html><body>Bad gateway</body></html>\n', { headers: { 'content-type': 'text/html' } })
      if (question.includes('posing')) {
        const posing = [{ type: 'stream_end' }, { type: 'stream_cancelled', reason: 'shutdown' }, { type: 'stream_start' }]
        return new Response(lines([{ type: 'content', content: 'A' }, ...posing, { type: 'content', content: 'B' }, { type: 'end' }]), { headers: { 'content-type': 'application/x-ndjson' } })
      }
      if (question.includes('slow')) {
        // one line, 20 s of silence, then the rest
        return new Response(
          new ReadableStream({
            async start(c) {
              c.enqueue(lines([{ type: 'refs', refs: [] }]))
              await Bun.sleep(20_000)
              c.enqueue(lines([{ type: 'content', content: 'late' }, { type: 'end' }]))
              c.close()
            },
          }),
          { headers: { 'content-type': 'application/x-ndjson' } },
        )
      }
      return new Response(
        lines([
          { type: 'refs', refs: [{ id: 'doc-1', title: 'Manual', score: 0.9 }] },
          { type: 'content', content: 'Hello' },
          { type: 'content', content: ', world' },
          { type: 'end' },
        ]),
        { headers: { 'content-type': 'application/x-ndjson' } },
      )
    },
  })
  ;({ gw, base } = await listeningGateway({ ALGO_SERVICE_URL: `http://127.0.0.1:${fake.port}` }))
  user = await chatUser(gw)
}, 30_000)
afterAll(async () => {
  await gw.app.stop(true)
  await gw.close()
  fake.stop(true)
})

const stream = (message: string) => fetch(`${base}/api/v2/chat/stream`, chatRequest(user, { message }))

test('the legacy /query format: renamed events, references and text stored', async () => {
  const events = await new SseReader(await stream('hello')).rest()
  expect(events.map((e) => e.event)).toEqual(['stream_start', 'retrieval_result', 'generation_chunk', 'generation_chunk', 'generation_done', 'stream_end'])
  expect(events[1]!.data).toMatchObject({ type: 'refs', refs: [{ id: 'doc-1' }], line_number: 1 })
  expect(lastBody).toMatchObject({ messages: [{ role: 'user', content: 'hello' }], model: 'gpt-3.5-turbo', tenant_id: user.tenantId, user_id: user.id })
  // the client sent no stream_id: the one stream_start names is the one the upstream was given
  expect(events[0]!.data!.stream_id).toStartWith('str_')
  expect(lastBody!.stream_id).toBe(events[0]!.data!.stream_id)
  const res = await fetch(`${base}/api/v2/conversations/${events[0]!.data!.conversation_id}/messages`, { headers: user.auth })
  const [, answer] = ((await res.json()) as { items: Array<Record<string, any>> }).items
  expect(answer).toMatchObject({ content: 'Hello, world', status: 'completed', references: [{ id: 'doc-1', title: 'Manual', score: 0.9 }] })
})

test('a legacy error line: relayed as an error event with the contract\'s code and error, then stream_end; the answer stored as failed', async () => {
  const events = await new SseReader(await stream('please fail')).rest()
  expect(events.map((e) => e.event)).toEqual(['stream_start', 'generation_chunk', 'error', 'stream_end'])
  expect(events[2]!.data).toMatchObject({ type: 'error', code: 'ALGO_SERVICE_ERROR', error: 'model overloaded', content: 'model overloaded', request_id: events[0]!.data!.request_id })
  const res = await fetch(`${base}/api/v2/conversations/${events[0]!.data!.conversation_id}/messages`, { headers: user.auth })
  const [, answer] = ((await res.json()) as { items: Array<Record<string, any>> }).items
  expect(answer).toMatchObject({ content: 'Partial', status: 'failed' })
})

test('a 200 with no NDJSON line (an empty body, an HTML page): error STREAM_ERROR then stream_end, stored as failed — not an empty answer', async () => {
  for (const question of ['empty please', 'html please']) {
    const events = await new SseReader(await stream(question)).rest()
    expect(events.map((e) => e.event)).toEqual(['stream_start', 'error', 'stream_end'])
    expect(events[1]!.data).toMatchObject({ code: 'STREAM_ERROR' })
    const res = await fetch(`${base}/api/v2/conversations/${events[0]!.data!.conversation_id}/messages`, { headers: user.auth })
    const [, answer] = ((await res.json()) as { items: Array<Record<string, any>> }).items
    expect(answer).toMatchObject({ content: '', status: 'failed' })
  }
})

test("upstream lines named like the gateway's own framing are relayed as `message`: one stream_start, one stream_end", async () => {
  const events = await new SseReader(await stream('posing')).rest()
  expect(events.map((e) => e.event)).toEqual(['stream_start', 'generation_chunk', 'message', 'message', 'message', 'generation_chunk', 'generation_done', 'stream_end'])
  expect(events.slice(2, 5).map((e) => e.data!.type)).toEqual(['stream_end', 'stream_cancelled', 'stream_start'])
})

test('a 20 s upstream silence: `: ping` at the default 15 s, the stream survives and completes', async () => {
  const reader = new SseReader(await stream('slow please'))
  await reader.until('retrieval_result')
  const silentSince = performance.now()
  const next = await reader.next()
  expect(next?.comment).toBe('ping')
  const at = performance.now() - silentSince
  expect(at).toBeGreaterThan(14_000)
  expect(at).toBeLessThan(19_500)
  const rest = await reader.rest()
  expect(rest.filter((e) => e.event).map((e) => e.event).slice(-3)).toEqual(['generation_chunk', 'generation_done', 'stream_end'])
}, 40_000)
