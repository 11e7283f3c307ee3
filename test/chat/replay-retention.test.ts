/**
 * How long a finished stream stays replayable in one instance (embedded store, where the run itself is the
 * replay log): for CHAT_REPLAY_TTL_S, and within CHAT_REPLAY_MAX_BYTES, past which the oldest logs go first.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { TestApp } from '../helpers/app'
import type { TestUser } from '../helpers/identity'
import { chatRequest, chatUser, listeningGateway, SseReader } from './helpers'

let gw: TestApp
let base: string
let user: TestUser

beforeAll(async () => {
  // a 64 KiB cap: one answer of ~50 KB fits, two do not
  ;({ gw, base } = await listeningGateway({ CHAT_REPLAY_TTL_S: '1', CHAT_REPLAY_MAX_BYTES: String(64 * 1024) }))
  user = await chatUser(gw)
}, 30_000)
afterAll(async () => {
  await gw.app.stop(true)
  await gw.close()
})

/** a finished stream, read to its end */
async function finished(message: string): Promise<string> {
  const request_id = `req-${crypto.randomUUID()}`
  const seen = await new SseReader(await fetch(`${base}/api/v2/chat/stream`, chatRequest(user, { message, request_id }))).rest()
  expect(seen.filter((e) => e.event).at(-1)!.event).toBe('stream_end')
  return request_id
}
const resumeStatus = async (requestId: string) => {
  const res = await fetch(`${base}/api/v2/chat/stream/${requestId}`, { headers: user.auth })
  await res.body?.cancel()
  return res.status
}

test('a finished stream is replayable until CHAT_REPLAY_TTL_S has passed, then 404', async () => {
  const rid = await finished('short [[sim chunks=3]]')
  expect(await resumeStatus(rid)).toBe(200)
  await Bun.sleep(1300)
  expect(await resumeStatus(rid)).toBe(404)
})

test('past CHAT_REPLAY_MAX_BYTES the oldest finished stream is forgotten first; the newest stays replayable', async () => {
  const big = 'big [[sim chunks=12 chunk_size=4096]]'
  const older = await finished(big)
  const olderEnded = performance.now()
  expect(await resumeStatus(older)).toBe(200)
  const newer = await finished(big)
  expect(await resumeStatus(newer)).toBe(200)
  expect(await resumeStatus(older)).toBe(404)
  // forgotten for the cap, not for the 1 s TTL
  expect(performance.now() - olderEnded).toBeLessThan(900)
})
