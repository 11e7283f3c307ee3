/**
 * A question whose stream was lost with its holder gets a `failed` answer right after it, once, and only when
 * the stream is live nowhere — embedded (a previous run of the process held it) and behind Redis (the holder's
 * presence lapsed, seen twice). The whole path with real processes is in crash.test.ts and at the end here.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { newId } from '../../src/lib/ids'
import { createLostAnswerSweeper, idAt, lostAnswerId, relayedAnswer } from '../../src/modules/chat/lost'
import { formatEvent } from '../../src/modules/chat/sse'
import { createMessageWriter } from '../../src/modules/conversations/writer'
import { createPresence, keys } from '../../src/store'
import { createTestApp, TEST_ADMIN_PASSWORD, TEST_JWT_SECRET, type TestApp } from '../helpers/app'
import { makeUser, type TestUser } from '../helpers/identity'
import { freePort } from '../helpers/private-servers'
import { bareEnv, spawnGateway } from '../helpers/process'
import { ci, createThrowawayDatabase, hasPostgres, hasRedis, redisUrl } from '../helpers/services'
import { unlimitedTenant } from '../admin/helpers'
import { chatRequest, eventually, SseReader } from './helpers'

if (ci && (!hasPostgres || !hasRedis)) throw new Error('lost.test needs Postgres and Redis under CI=true')

/** the app's own sweeper stays out of the way: each test drives one it made */
const QUIET = { CHAT_LOST_SWEEP_S: '3600' }

async function world(gw: TestApp) {
  const tenantId = await unlimitedTenant(gw)
  return { tenantId, user: await makeUser(gw, { tenantId }) }
}

/** a conversation with one question (request id `rid`) and no answer, written the way a chat stream writes it */
async function askedQuestion(gw: TestApp, user: TestUser, rid: string) {
  const conversation = { id: newId('conv'), tenantId: user.tenantId, userId: user.id }
  const questionId = newId('msg')
  await createMessageWriter({ db: gw.deps.db }).start(conversation, { id: questionId, role: 'user', content: 'why?', requestId: rid, userId: user.id })
  return { conversationId: conversation.id, questionId }
}

async function messagesOf(gw: TestApp, user: TestUser, conversationId: string) {
  const res = await gw.request(`/api/v2/conversations/${conversationId}/messages`, { headers: user.auth })
  expect(res.status).toBe(200)
  return ((await res.json()) as { items: Array<Record<string, unknown>> }).items
}

async function conversationOf(gw: TestApp, user: TestUser, conversationId: string) {
  return (await (await gw.request(`/api/v2/conversations/${conversationId}`, { headers: user.auth })).json()) as Record<string, unknown>
}

const rid = () => `req-${crypto.randomUUID()}`

test('ids: the lost answer sorts right after its question and before anything asked a millisecond later; the same question, the same id', () => {
  const q = newId('msg')
  const a = lostAnswerId(q)
  expect(a).toMatch(/^msg_[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}$/)
  expect(a > q).toBe(true)
  expect(a < idAt(Number.parseInt(q.slice(4, 16), 16) + 2)).toBe(true)
  expect(lostAnswerId(q)).toBe(a)
  expect(lostAnswerId(newId('msg'))).not.toBe(a)
})

test('the relayed text of a log: the chunks in order, the last references; other events and torn or broken ones ignored', () => {
  const log = [
    formatEvent(0, 'stream_start', { request_id: 'r' }),
    formatEvent(1, 'retrieval_result', { references: [{ id: 'doc-1' }] }),
    formatEvent(2, 'generation_chunk', { content: 'Hello' }),
    'id: 3\nevent: generation_chunk\ndata: {broken\n\n',
    formatEvent(4, 'generation_chunk', { delta: ', world' }),
    formatEvent(5, 'message', { content: 'not a chunk' }),
    'id: 6\nevent: generation_chunk\ndata: {"content":"torn"}',
  ].join('')
  expect(relayedAnswer(log)).toEqual({ content: 'Hello, world', references: [{ id: 'doc-1' }] })
  expect(relayedAnswer(null)).toEqual({ content: '', references: null })
})

describe('embedded (PGlite, in-process store)', () => {
  let gw: TestApp
  let w: Awaited<ReturnType<typeof world>>

  beforeAll(async () => {
    gw = await createTestApp(QUIET)
    w = await world(gw)
  }, 60_000)
  afterAll(() => gw?.close())

  const sweeper = () => createLostAnswerSweeper({ db: gw.deps.db, store: gw.deps.store, presence: gw.deps.presence, logger: gw.deps.logger, minAgeMs: 0, sweepMs: 3_600_000 })

  test('a question a previous run of the process left without an answer gets one failed, empty answer right after it; sweeping again, or two sweepers at once, write it once', async () => {
    const { conversationId, questionId } = await askedQuestion(gw, w.user, rid())
    await Bun.sleep(5)
    const [one, two] = [sweeper(), sweeper()]
    const written = await Promise.all([one.sweep(), two.sweep()])
    expect(written.reduce((a, b) => a + b, 0)).toBe(1)
    expect(await one.sweep()).toBe(0)
    await Promise.all([one.close(), two.close()])
    const items = await messagesOf(gw, w.user, conversationId)
    expect(items.map((m) => [m.id, m.role, m.status, m.content])).toEqual([
      [questionId, 'user', 'completed', 'why?'],
      [lostAnswerId(questionId), 'assistant', 'failed', ''],
    ])
    expect(items[1]!.request_id).toBe(items[0]!.request_id)
    expect(await conversationOf(gw, w.user, conversationId)).toMatchObject({ message_count: 2 })
    // the next question of the conversation comes after the lost answer
    const res = await gw.request('/api/v2/chat/stream', chatRequest(w.user, { message: 'again', conversation_id: conversationId }))
    await new SseReader(res).rest()
    const after = await messagesOf(gw, w.user, conversationId)
    expect(after.map((m) => [m.role, m.status])).toEqual([
      ['user', 'completed'],
      ['assistant', 'failed'],
      ['user', 'completed'],
      ['assistant', 'completed'],
    ])
  })

  test('a stream running on this instance, a question asked since the start that nobody holds, and an answered one are left alone', async () => {
    const s = sweeper()
    await Bun.sleep(5)
    const running = rid()
    const reader = new SseReader(await gw.request('/api/v2/chat/stream', chatRequest(w.user, { message: 'slow [[sim chunks=40 delay_ms=20]]', request_id: running })))
    const start = await reader.until('stream_start')
    await reader.until('generation_chunk')
    const orphan = await askedQuestion(gw, w.user, rid())
    const answered = await askedQuestion(gw, w.user, rid())
    await createMessageWriter({ db: gw.deps.db }).append({ id: answered.conversationId, tenantId: w.tenantId }, { role: 'assistant', content: 'yes', requestId: (await messagesOf(gw, w.user, answered.conversationId))[0]!.request_id as string, userId: w.user.id })
    await Bun.sleep(2)
    expect(await s.sweep()).toBe(0)
    const events = await reader.rest()
    expect(events.filter((e) => e.event).at(-1)!.event).toBe('stream_end')
    expect(await s.sweep()).toBe(0)
    await s.close()
    const streamed = await messagesOf(gw, w.user, start.data!.conversation_id as string)
    expect(streamed.map((m) => [m.role, m.status])).toEqual([
      ['user', 'completed'],
      ['assistant', 'completed'],
    ])
    expect((await messagesOf(gw, w.user, orphan.conversationId)).map((m) => m.role)).toEqual(['user'])
    expect((await messagesOf(gw, w.user, answered.conversationId)).map((m) => m.role)).toEqual(['user', 'assistant'])
  })

  test('a conversation deleted before the sweep: nothing written, nothing thrown, and the next lost question is still answered', async () => {
    const gone = await askedQuestion(gw, w.user, rid())
    const kept = await askedQuestion(gw, w.user, rid())
    expect((await gw.request(`/api/v2/conversations/${gone.conversationId}`, { method: 'DELETE', headers: w.user.auth })).status).toBe(204)
    await Bun.sleep(5)
    const s = sweeper()
    expect(await s.sweep()).toBeGreaterThanOrEqual(1) // the earlier test's orphan is also from before this sweeper
    await s.close()
    expect((await messagesOf(gw, w.user, kept.conversationId)).map((m) => m.status)).toEqual(['completed', 'failed'])
    expect((await gw.request(`/api/v2/conversations/${gone.conversationId}/messages`, { headers: w.user.auth })).status).toBe(404)
  })
})

describe.skipIf(!hasPostgres || !hasRedis)('Postgres + Redis', () => {
  let database: { url: string; drop: () => Promise<void> }
  let gw: TestApp
  let w: Awaited<ReturnType<typeof world>>

  beforeAll(async () => {
    database = await createThrowawayDatabase()
    gw = await createTestApp({ ...QUIET, DATABASE_URL: database.url, REDIS_URL: redisUrl })
    w = await world(gw)
  }, 60_000)
  afterAll(async () => {
    await gw?.close()
    await database?.drop()
  })

  const claim = (requestId: string, fields: Record<string, unknown>) =>
    gw.deps.store.set(keys.chatStream(w.tenantId, requestId), JSON.stringify({ user: w.user.id, hash: 'h', ...fields }), { ttlMs: 60_000 })

  test('a live claim whose holder has stopped: nothing on the first look, on a look one sweep later a failed answer with the text and references the log holds; a present holder, an ended claim or no claim: left alone', async () => {
    const alive = createPresence(gw.deps.store)
    const dead = newId('inst') // an instance whose presence key has lapsed (never written)
    const lostRid = rid()
    const lost = await askedQuestion(gw, w.user, lostRid)
    await claim(lostRid, { state: 'live', inst: dead })
    const log = [
      formatEvent(0, 'stream_start', { request_id: lostRid }),
      formatEvent(1, 'retrieval_result', { references: [{ id: 'doc-9', score: 0.7 }] }),
      formatEvent(2, 'generation_chunk', { content: 'It is \u0000because' }),
    ].join('')
    await gw.deps.store.set(keys.chatEvents(w.tenantId, lostRid), log, { ttlMs: 60_000 })
    const others = await Promise.all(
      [{ state: 'live', inst: alive.id }, { state: 'ended', inst: dead }, undefined].map(async (c) => {
        const id = rid()
        const q = await askedQuestion(gw, w.user, id)
        if (c) await claim(id, c)
        return q
      }),
    )
    // an hour between sweeps, so that no timer sweep races the explicit ones; the clock is moved instead
    const sweepMs = 3_600_000
    let clock = Date.now() + 2
    const s = createLostAnswerSweeper({ db: gw.deps.db, store: gw.deps.store, presence: gw.deps.presence, logger: gw.deps.logger, minAgeMs: 0, sweepMs })
    const timed = createLostAnswerSweeper({ db: gw.deps.db, store: gw.deps.store, presence: gw.deps.presence, logger: gw.deps.logger, minAgeMs: 0, sweepMs, now: () => clock })
    await Bun.sleep(2)
    expect(await timed.sweep()).toBe(0)
    expect((await messagesOf(gw, w.user, lost.conversationId)).map((m) => m.role)).toEqual(['user'])
    clock += sweepMs - 1
    expect(await timed.sweep()).toBe(0) // not yet one sweep apart
    clock += 1
    expect(await timed.sweep()).toBe(1)
    // a second instance's first look finds it answered
    expect(await s.sweep()).toBe(0)
    await Promise.all([s.close(), timed.close()])
    const items = await messagesOf(gw, w.user, lost.conversationId)
    expect(items[1]).toMatchObject({ id: lostAnswerId(lost.questionId), role: 'assistant', status: 'failed', content: 'It is \uFFFDbecause', references: [{ id: 'doc-9', score: 0.7 }], request_id: lostRid })
    for (const q of others) expect((await messagesOf(gw, w.user, q.conversationId)).map((m) => m.role)).toEqual(['user'])
    await alive.close()
  })
})

describe('embedded gateway killed mid-stream and started again on its data', () => {
  test('the question it was answering gets a failed answer; the conversation goes on', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'vh-lost-'))
    const port = await freePort()
    const start = () => {
      const gw = spawnGateway({
        cwd: dataDir,
        port,
        env: bareEnv({ PORT: String(port), HOST: '127.0.0.1', NODE_ENV: 'test', DATA_DIR: dataDir, JWT_SECRET: TEST_JWT_SECRET, BOOTSTRAP_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD, CHAT_LOST_SWEEP_S: '1' }),
      })
      return gw.waitUntilListening().then(() => gw)
    }
    let gw = await start()
    const login = await fetch(`${gw.baseUrl}/api/v2/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'admin@example.com', password: TEST_ADMIN_PASSWORD }),
    })
    expect(login.status).toBe(200)
    const auth = { authorization: `Bearer ${((await login.json()) as { access_token: string }).access_token}` }
    const user = { auth } as TestUser
    const reader = new SseReader(await fetch(`${gw.baseUrl}/api/v2/chat/stream`, chatRequest(user, { message: 'long [[sim chunks=1000 delay_ms=20]]' })))
    const started = await reader.until('stream_start')
    for (let i = 0; i < 3; i++) await reader.until('generation_chunk')
    gw.proc.kill('SIGKILL')
    await gw.proc.exited
    gw = await start()
    try {
      const conversationId = started.data!.conversation_id as string
      const url = `${gw.baseUrl}/api/v2/conversations/${conversationId}/messages`
      let items: Array<Record<string, unknown>> = []
      await eventually(async () => {
        items = ((await (await fetch(url, { headers: auth })).json()) as { items: typeof items }).items
        return items.length === 2
      }, 10_000)
      expect(items.map((m) => [m.role, m.status])).toEqual([
        ['user', 'completed'],
        ['assistant', 'failed'],
      ])
      const next = await fetch(`${gw.baseUrl}/api/v2/chat/stream`, chatRequest(user, { message: 'and now?', conversation_id: conversationId }))
      expect((await new SseReader(next).rest()).filter((e) => e.event).at(-1)!.event).toBe('stream_end')
    } finally {
      await gw.stop()
    }
  }, 60_000)
})
