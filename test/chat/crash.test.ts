/**
 * A holder that dies without an ending (SIGKILL): a client following its stream from another instance, and a
 * client resuming it there afterwards, learn that the stream was lost within seconds — from the dead
 * instance's presence — instead of waiting a minute for its claim to age out; its streams and voice sessions
 * stop counting against the user's quotas at once, and its questions get a failed answer. Real processes,
 * Postgres, Redis.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TEST_JWT_SECRET, TEST_ADMIN_PASSWORD } from '../helpers/app'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'
import { freePort } from '../helpers/private-servers'
import { bareEnv, type GatewayProcess, spawnGateway } from '../helpers/process'
import { ci, createThrowawayDatabase, hasPostgres, hasRedis, redisUrl } from '../helpers/services'
import { session, upgradeStatus } from '../voice/helpers'
import { chatRequest, eventually, listeningGateway, SseReader, type SseEvent } from './helpers'

if (ci && (!hasPostgres || !hasRedis)) throw new Error('crash.test needs Postgres and Redis under CI=true')

describe.skipIf(!hasPostgres || !hasRedis)('a holder killed mid-stream (Postgres + Redis)', () => {
  let database: { url: string; drop: () => Promise<void> }
  let a: GatewayProcess
  let b: Awaited<ReturnType<typeof listeningGateway>>
  let user: TestUser

  beforeAll(async () => {
    database = await createThrowawayDatabase()
    b = await listeningGateway({ DATABASE_URL: database.url, REDIS_URL: redisUrl, CHAT_PING_INTERVAL_MS: '200', VOICE_LOST_SWEEP_S: '1', CHAT_LOST_SWEEP_S: '1' })
    const port = await freePort()
    a = spawnGateway({
      cwd: mkdtempSync(join(tmpdir(), 'vh-crash-')),
      port,
      env: bareEnv({
        PORT: String(port),
        HOST: '127.0.0.1',
        NODE_ENV: 'test',
        DATABASE_URL: database.url,
        REDIS_URL: redisUrl,
        JWT_SECRET: TEST_JWT_SECRET,
        BOOTSTRAP_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
        CHAT_DISCONNECT_GRACE_S: '60',
      }),
    })
    await a.waitUntilListening()
    // the checks below poll B for seconds: no request-rate limit may answer them (the stream quota stays at 4)
    user = await makeUser(b.gw, { tenantId: await makeTenant(b.gw, { quotas: { requests_per_minute_per_user: 0, requests_per_minute: 0 } }) })
  }, 60_000)
  afterAll(async () => {
    if (a?.proc.exitCode === null) a.proc.kill('SIGKILL')
    await b?.gw.app.stop(true)
    await b?.gw.close()
    await database?.drop()
  })

  const events = (seen: SseEvent[]) => seen.filter((e) => e.event)
  const rid = () => `req-${crypto.randomUUID()}`

  test('the follower on B gets every event it had, then STREAM_ERROR "lost" and stream_end, within seconds; a later resume or re-POST on B at once; its streams and voice sessions no longer count against the quotas, and its session rows say instance_lost', async () => {
    const followed = rid()
    const dropped = rid()
    const body = (id: string) => ({ message: 'long [[sim chunks=1000 delay_ms=20]]', request_id: id })
    const first = new SseReader(await fetch(`${a.baseUrl}/api/v2/chat/stream`, chatRequest(user, body(followed))))
    const followedConversation = (await first.until('stream_start')).data!.conversation_id as string
    await first.until('generation_chunk')
    // the other stream's client leaves at once: A keeps it running (grace 60 s) and nobody follows it
    const ctrl = new AbortController()
    const other = new SseReader(await fetch(`${a.baseUrl}/api/v2/chat/stream`, chatRequest(user, body(dropped), ctrl.signal)))
    const droppedConversation = (await other.until('stream_start')).data!.conversation_id as string
    await other.until('generation_chunk')
    // two more, so that the user holds all four streams the quota allows when A dies
    for (let i = 0; i < 2; i++) {
      const r = new SseReader(await fetch(`${a.baseUrl}/api/v2/chat/stream`, chatRequest(user, body(rid()), ctrl.signal)))
      await r.until('generation_chunk')
    }
    ctrl.abort()
    // and both voice sessions a user may hold
    const wsA = a.baseUrl.replace('http', 'ws')
    const voiceOnA: string[] = []
    for (let i = 0; i < 2; i++) voiceOnA.push((await session(wsA, { headers: user.auth })).init.session_id)
    expect((await upgradeStatus(a.baseUrl, user.auth)).status).toBe(429)

    const follower = new SseReader(await fetch(`${b.base}/api/v2/chat/stream/${followed}`, { headers: user.auth }))
    for (let i = 0; i < 5; i++) await follower.until('generation_chunk')
    a.proc.kill('SIGKILL')
    await a.proc.exited
    const killed = performance.now()
    const seen = events(await follower.rest())
    const tookMs = performance.now() - killed
    expect(seen.map((e) => e.id)).toEqual(seen.map((_, i) => i))
    expect(seen.filter((e) => e.event === 'generation_chunk').length).toBeGreaterThanOrEqual(5)
    expect(seen.slice(-2).map((e) => [e.event, e.data?.code])).toEqual([
      ['error', 'STREAM_ERROR'],
      ['stream_end', undefined],
    ])
    // presence lapses 5 s after the last refresh, checked after 3 s of silence; the claim alone would take 60 s
    expect(tookMs).toBeLessThan(12_000)

    for (const ask of [
      () => fetch(`${b.base}/api/v2/chat/stream/${dropped}`, { headers: user.auth }),
      () => fetch(`${b.base}/api/v2/chat/stream`, chatRequest(user, body(dropped))),
    ]) {
      const asked = performance.now()
      const res = await ask()
      expect(res.status).toBe(200)
      const got = events(await new SseReader(res).rest())
      expect(got.map((e) => e.event)).toEqual(['error', 'stream_end'])
      expect(got[0]!.data).toMatchObject({ code: 'STREAM_ERROR', request_id: dropped })
      expect(performance.now() - asked).toBeLessThan(2_000)
    }

    // the dead holder's four streams no longer count against the user's quota of four
    const fresh = rid()
    const res = await fetch(`${b.base}/api/v2/chat/stream`, chatRequest(user, { message: 'after the crash', request_id: fresh }))
    expect(res.status).toBe(200)
    const answer = events(await new SseReader(res).rest())
    expect(answer.at(-1)!.event).toBe('stream_end')
    // nor its voice sessions against the voice quota
    const voice = await session(b.base.replace('http', 'ws'), { headers: user.auth })
    expect(voice.init.session_id).toBeString()
    // and B's sweep marks the dead instance's session rows
    const status = async (id: string) => ((await (await fetch(`${b.base}/api/v2/voice/sessions/${id}`, { headers: user.auth })).json()) as Record<string, unknown>)
    await eventually(async () => (await Promise.all(voiceOnA.map(status))).every((v) => v.status === 'failed' && v.end_reason === 'instance_lost'), 10_000)
    expect(await status(voice.init.session_id)).toMatchObject({ status: 'active' })
    voice.ws.close()

    // B's chat sweep gives the dead holder's questions a failed answer: with the text the follower was sent, or
    // empty where nobody followed (the dead holder never wrote its log)
    const messagesOf = async (conversationId: string) => {
      const res = await fetch(`${b.base}/api/v2/conversations/${conversationId}/messages`, { headers: user.auth })
      expect({ conversationId, status: res.status }).toEqual({ conversationId, status: 200 })
      return ((await res.json()) as { items: Array<Record<string, unknown>> }).items
    }
    const followerText = seen.filter((e) => e.event === 'generation_chunk').map((e) => e.data!.content as string).join('')
    await eventually(async () => (await messagesOf(followedConversation)).length === 2 && (await messagesOf(droppedConversation)).length === 2, 10_000)
    const [question, lostAnswer] = await messagesOf(followedConversation)
    expect(question).toMatchObject({ role: 'user', request_id: followed })
    expect(lostAnswer).toMatchObject({ role: 'assistant', status: 'failed', request_id: followed })
    expect(lostAnswer!.content as string).toStartWith(followerText)
    expect(followerText.length).toBeGreaterThan(0)
    expect((await messagesOf(droppedConversation)).map((m) => [m.role, m.status, m.content])).toEqual([
      ['user', 'completed', body(dropped).message],
      ['assistant', 'failed', ''],
    ])
  }, 40_000)
})
