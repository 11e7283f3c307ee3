import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { TestApp } from '../helpers/app'
import type { TestUser } from '../helpers/identity'
import { chatRequest, chatUser, eventually, listeningGateway, SseReader } from './helpers'

let gw: TestApp
let base: string
let user: TestUser

beforeAll(async () => {
  ;({ gw, base } = await listeningGateway({ ALGO_FIRST_BYTE_TIMEOUT_MS: '300', ALGO_IDLE_TIMEOUT_MS: '300', CHAT_PING_INTERVAL_MS: '100', CHAT_MAX_STREAM_BYTES: '65536' }))
  user = await chatUser(gw)
}, 30_000)
afterAll(async () => {
  await gw.app.stop(true)
  await gw.close()
})

async function endingOf(message: string) {
  const events = await new SseReader(await fetch(`${base}/api/v2/chat/stream`, chatRequest(user, { message }))).rest()
  const named = events.filter((e) => e.event)
  return { names: named.slice(-2).map((e) => e.event), code: named.at(-2)!.data!.code }
}

test('no first line in time → error ALGO_TIMEOUT then stream_end', async () => {
  expect(await endingOf('slow [[sim first_byte_delay_ms=2000]]')).toEqual({ names: ['error', 'stream_end'], code: 'ALGO_TIMEOUT' })
  await eventually(() => gw.deps.simulator!.stats.queriesOpen === 0)
})

test('an upstream silent past the idle timeout → error ALGO_TIMEOUT', async () => {
  expect(await endingOf('stall [[sim chunks=3 fail_after=2 mode=stall]]')).toEqual({ names: ['error', 'stream_end'], code: 'ALGO_TIMEOUT' })
  await eventually(() => gw.deps.simulator!.stats.queriesOpen === 0)
})

test('a line over 1 MiB → error STREAM_ERROR', async () => {
  expect(await endingOf('big [[sim chunks=3 fail_after=2 mode=oversized_line]]')).toEqual({ names: ['error', 'stream_end'], code: 'STREAM_ERROR' })
  await eventually(() => gw.deps.simulator!.stats.queriesOpen === 0)
})

test('an answer past CHAT_MAX_STREAM_BYTES is cut: STREAM_ERROR, upstream closed, the text sent so far stored as failed', async () => {
  // 200 chunks of 4 KiB: 800 KiB of answer against a 64 KiB cap
  const events = await new SseReader(await fetch(`${base}/api/v2/chat/stream`, chatRequest(user, { message: 'huge [[sim chunks=200 chunk_size=4096]]' }))).rest()
  const named = events.filter((e) => e.event)
  expect(named.slice(-2).map((e) => e.event)).toEqual(['error', 'stream_end'])
  expect(named.at(-2)!.data).toMatchObject({ code: 'STREAM_ERROR', error: expect.stringContaining('65536') })
  expect(events.map((e) => e.id).filter((id) => id !== undefined)).toEqual(named.map((_, i) => i))
  const sent = named.filter((e) => e.event === 'generation_chunk').map((e) => String(e.data!.content))
  expect(sent.length).toBeGreaterThan(5)
  expect(sent.length).toBeLessThan(200)
  await eventually(() => gw.deps.simulator!.stats.queriesOpen === 0)
  const res = await fetch(`${base}/api/v2/conversations/${named[0]!.data!.conversation_id}/messages`, { headers: user.auth })
  const [, answer] = ((await res.json()) as { items: Array<Record<string, unknown>> }).items
  expect(answer).toMatchObject({ role: 'assistant', status: 'failed', content: sent.join('') })
})

test('no total timeout: an answer lasting 4× the idle timeout, with lines in between, completes', async () => {
  const started = performance.now()
  const events = await new SseReader(await fetch(`${base}/api/v2/chat/stream`, chatRequest(user, { message: 'long [[sim chunks=60 delay_ms=20]]' }))).rest()
  expect(performance.now() - started).toBeGreaterThan(1200)
  expect(events.filter((e) => e.event === 'generation_chunk')).toHaveLength(60)
  expect(events.at(-1)!.event).toBe('stream_end')
})

test('bytes flow before the first upstream line: stream_start, then pings while the upstream thinks', async () => {
  const { gw: patient, base: patientBase } = await listeningGateway({ ALGO_FIRST_BYTE_TIMEOUT_MS: '5000', CHAT_PING_INTERVAL_MS: '100' })
  try {
    const who = await chatUser(patient)
    const reader = new SseReader(await fetch(`${patientBase}/api/v2/chat/stream`, chatRequest(who, { message: 'think [[sim first_byte_delay_ms=600 chunks=1]]' })))
    const first = await reader.next()
    expect(first?.event).toBe('stream_start')
    const second = await reader.next()
    expect(second?.comment).toBe('ping')
    const rest = await reader.rest()
    expect(rest.filter((e) => e.event).at(-1)!.event).toBe('stream_end')
  } finally {
    await patient.app.stop(true)
    await patient.close()
  }
}, 20_000)
