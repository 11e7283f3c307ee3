/**
 * GET/DELETE /api/v2/admin/sessions: the live chat streams and voice sessions of every instance, seen and
 * ended by an admin of their tenant (or a super_admin), invisible to everyone else. Embedded (one instance,
 * in-process store) and two instances on Postgres + Redis.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { channels, createStore } from '../../src/store'
import { makeUser, type TestUser } from '../helpers/identity'
import { ci, createThrowawayDatabase, hasPostgres, hasRedis, redisUrl } from '../helpers/services'
import { chatRequest, eventually, SseReader } from '../chat/helpers'
import { listeningGateway, session, stopGateway } from '../voice/helpers'
import { adminWorld, as, auditRows, collectPages } from './helpers'

if (ci && (!hasPostgres || !hasRedis)) throw new Error('admin sessions.test needs Postgres and Redis under CI=true')

type Gateway = Awaited<ReturnType<typeof listeningGateway>>
type World = Awaited<ReturnType<typeof adminWorld>>

const rid = () => `req-${crypto.randomUUID()}`

/** a chat stream that stays live (200 chunks, 20 ms apart) until its first chunk arrived */
async function liveStream(at: Gateway, who: TestUser, requestId = rid()) {
  const reader = new SseReader(await fetch(`${at.base}/api/v2/chat/stream`, chatRequest(who, { message: 'long [[sim chunks=200 delay_ms=20]]', request_id: requestId })))
  const start = await reader.until('stream_start')
  await reader.until('generation_chunk')
  return { reader, requestId, conversationId: start.data!.conversation_id as string, id: `chat:${who.tenantId}:${requestId}` }
}

describe('admin sessions on one embedded instance', () => {
  let g: Gateway
  let world: World
  let other: World
  beforeAll(async () => {
    g = await listeningGateway({ CHAT_PING_INTERVAL_MS: '100' })
    ;[world, other] = await Promise.all([adminWorld(g.gw), adminWorld(g.gw)])
  }, 30_000)
  afterAll(() => stopGateway(g))

  test("an admin sees the tenant's live chat streams and voice sessions; ending a stream cancels it for its client and stores it as cancelled", async () => {
    const stream = await liveStream(g, world.user)
    const voice = await session(g.ws, { headers: world.user.auth })
    const list = await as(g.gw, world.admin).get('/sessions')
    expect(list.status).toBe(200)
    expect(list.body.partial).toBe(false)
    expect(list.body.next_cursor).toBeNull()
    const byKind = Object.fromEntries(list.body.items.map((s: any) => [s.kind, s]))
    expect(byKind.chat).toMatchObject({ id: stream.id, tenant_id: world.tenantId, user_id: world.user.id, ref: stream.requestId, conversation_id: stream.conversationId })
    expect(byKind.voice).toMatchObject({ kind: 'voice', tenant_id: world.tenantId, user_id: world.user.id, ref: voice.init.session_id, conversation_id: voice.init.conversation_id })
    expect(Date.parse(byKind.chat.started_at)).toBeGreaterThan(Date.now() - 60_000)
    expect(list.body.items).toHaveLength(2)

    const ended = await as(g.gw, world.admin).del(`/sessions/${encodeURIComponent(stream.id)}`)
    expect(ended).toEqual({ status: 200, body: { id: stream.id, kind: 'chat', status: 'ended' } })
    expect((await stream.reader.until('stream_cancelled')).data).toEqual({ request_id: stream.requestId, reason: 'admin_ended' })
    await eventually(async () => {
      const msgs = await fetch(`${g.base}/api/v2/conversations/${stream.conversationId}/messages`, { headers: world.user.auth })
      const items = ((await msgs.json()) as { items: Array<Record<string, unknown>> }).items
      return items.length === 2 && items[1]!.status === 'cancelled'
    })
    expect(await auditRows(g.gw, 'session.end', stream.id)).toMatchObject([{ outcome: 'success', tenantId: world.tenantId }])
    // over: gone from the list, and a second DELETE finds nothing
    await eventually(async () => (await as(g.gw, world.admin).get('/sessions?kind=chat')).body.items.length === 0)
    expect((await as(g.gw, world.admin).del(`/sessions/${encodeURIComponent(stream.id)}`)).status).toBe(404)

    // a voice session is closed the way DELETE /voice/sessions/:id closes it (the id's colons may go unescaped)
    expect((await as(g.gw, world.admin).del(`/sessions/${byKind.voice.id}`)).status).toBe(200)
    expect((await voice.waitForType('session_ending')).reason).toBe('deleted')
    expect((await voice.closed).code).toBe(1000)
  })

  test("a plain user may not look; another tenant's admin sees none of it and cannot end it; a super_admin sees every tenant", async () => {
    const stream = await liveStream(g, world.user)
    try {
      const refused = await as(g.gw, world.user).get('/sessions')
      expect(refused.status).toBe(403)
      expect(refused.body.code).toBe('PERMISSION_DENIED')
      expect((await as(g.gw, world.user).del(`/sessions/${encodeURIComponent(stream.id)}`)).body.code).toBe('PERMISSION_DENIED')

      expect((await as(g.gw, other.admin).get('/sessions')).body.items).toEqual([])
      expect((await as(g.gw, other.admin).get(`/sessions?tenant_id=${world.tenantId}`)).status).toBe(403)
      const foreign = await as(g.gw, other.admin).del(`/sessions/${encodeURIComponent(stream.id)}`)
      expect(foreign.status).toBe(404)
      expect(foreign.body.code).toBe('NOT_FOUND')
      // both refusals are audited, each in the caller's own tenant
      const rows = (await auditRows(g.gw, 'session.end', stream.id)).map((r) => [r.outcome, r.tenantId]).sort()
      expect(rows).toEqual([['denied', world.tenantId], ['failure', other.tenantId]].sort())

      // the stream went on untouched
      expect((await stream.reader.until('generation_chunk')).event).toBe('generation_chunk')

      const everywhere = await as(g.gw, other.root).get('/sessions')
      expect(everywhere.body.items.map((s: any) => s.id)).toContain(stream.id)
      const scoped = await as(g.gw, other.root).get(`/sessions?tenant_id=${other.tenantId}`)
      expect(scoped.body.items).toEqual([])
    } finally {
      await as(g.gw, world.admin).del(`/sessions/${encodeURIComponent(stream.id)}`)
    }
  })

  test('a monitor of one kind sees only that kind; bad ids, kinds and cursors are 4xx in the contract shape', async () => {
    const chatOnly = await makeUser(g.gw, { tenantId: world.tenantId, roles: ['user'], permissions: ['chat:monitor'] })
    const stream = await liveStream(g, world.user)
    const voice = await session(g.ws, { headers: world.user.auth })
    try {
      const seen = await as(g.gw, chatOnly).get('/sessions')
      expect(seen.body.items.map((s: any) => s.kind)).toEqual(['chat'])
      expect((await as(g.gw, chatOnly).get('/sessions?kind=voice')).status).toBe(403)
      const voiceId = `voice:${world.tenantId}:${voice.init.session_id}`
      expect((await as(g.gw, chatOnly).del(`/sessions/${encodeURIComponent(voiceId)}`)).status).toBe(403)

      for (const path of ['/sessions?kind=sms', '/sessions?limit=0', '/sessions?cursor=not-a-cursor', '/sessions?tenant_id=BAD!']) {
        const r = await as(g.gw, world.admin).get(path)
        expect([r.status, r.body.code]).toEqual([400, 'VALIDATION_FAILED'])
      }
      for (const id of ['nonsense', 'chat:', `chat:${world.tenantId}:nope`, 'x'.repeat(300), `chat:${world.tenantId}:\u0000`]) {
        const r = await as(g.gw, world.admin).del(`/sessions/${encodeURIComponent(id)}`)
        expect(r.status).toBeOneOf([400, 404])
        expect(typeof r.body.code).toBe('string')
      }
      // the attempt on an id Postgres cannot store is audited all the same (NUL shown as U+FFFD)
      expect(await auditRows(g.gw, 'session.end', `chat:${world.tenantId}:\uFFFD`)).toMatchObject([{ outcome: 'failure' }])
      expect(g.gw.logs.filter((l) => l.msg === 'audit write failed')).toEqual([])
    } finally {
      await as(g.gw, world.admin).del(`/sessions/${encodeURIComponent(stream.id)}`)
      voice.ws.close()
    }
  })

  test('pages follow next_cursor, newest first, every live session exactly once', async () => {
    // five streams of two users (a user may hold four at once)
    const streams = []
    for (let i = 0; i < 5; i++) streams.push(await liveStream(g, i % 2 ? world.user : world.admin))
    try {
      const { items, pages } = await collectPages((q) => as(g.gw, world.admin).get(`/sessions${q}&kind=chat`), 2)
      expect(pages).toEqual([2, 2, 1])
      expect(items.map((s) => s.id)).toEqual(streams.map((s) => s.id).reverse())
    } finally {
      for (const s of streams) await as(g.gw, world.admin).del(`/sessions/${encodeURIComponent(s.id)}`)
    }
  }, 20_000)
})

describe.skipIf(!hasPostgres || !hasRedis)('admin sessions across two instances (Postgres + Redis)', () => {
  let database: { url: string; drop: () => Promise<void> }
  let a: Gateway
  let b: Gateway
  let world: World
  beforeAll(async () => {
    database = await createThrowawayDatabase()
    const env = { DATABASE_URL: database.url, REDIS_URL: redisUrl, CHAT_PING_INTERVAL_MS: '100' }
    a = await listeningGateway(env)
    b = await listeningGateway(env)
    world = await adminWorld(a.gw)
  }, 60_000)
  afterAll(async () => {
    await stopGateway(a)
    await stopGateway(b)
    await database?.drop()
  })

  test('B lists the streams and voice sessions A and B hold, and ends the one A holds: its client gets stream_cancelled, its upstream is closed', async () => {
    const onA = await liveStream(a, world.user)
    const onB = await liveStream(b, world.user)
    const voice = await session(a.ws, { headers: world.user.auth })
    try {
      const list = await as(b.gw, world.admin).get('/sessions')
      expect(list.body.partial).toBe(false)
      const instances = Object.fromEntries(list.body.items.map((s: any) => [s.id, s.instance]))
      expect(Object.keys(instances).sort()).toEqual([onA.id, onB.id, `voice:${world.tenantId}:${voice.init.session_id}`].sort())
      expect(instances[onA.id]).not.toBe(instances[onB.id])
      expect(instances[onA.id]).toBe(instances[`voice:${world.tenantId}:${voice.init.session_id}`])

      const queriesOpen = () => a.gw.deps.simulator!.stats.queriesOpen
      expect(queriesOpen()).toBe(1)
      expect((await as(b.gw, world.admin).del(`/sessions/${encodeURIComponent(onA.id)}`)).status).toBe(200)
      expect((await onA.reader.until('stream_cancelled')).data!.reason).toBe('admin_ended')
      await eventually(() => queriesOpen() === 0)
      expect((await as(b.gw, world.admin).del(`/sessions/${encodeURIComponent(onA.id)}`)).status).toBe(404)

      expect((await as(b.gw, world.admin).del(`/sessions/${encodeURIComponent(`voice:${world.tenantId}:${voice.init.session_id}`)}`)).status).toBe(200)
      expect((await voice.closed).code).toBe(1000)
    } finally {
      await as(b.gw, world.admin).del(`/sessions/${encodeURIComponent(onB.id)}`)
    }
  }, 30_000)

  test('an instance that does not answer within a second leaves the list partial instead of hanging it', async () => {
    // another connection subscribed to the question channel that never answers: Redis counts it as an instance
    const mute = await createStore({ redisUrl })
    await mute.subscribe(channels.liveQuery(), () => {})
    try {
      const started = performance.now()
      const list = await as(a.gw, world.admin).get('/sessions')
      expect(list.status).toBe(200)
      expect(list.body.partial).toBe(true)
      expect(performance.now() - started).toBeLessThan(3_000)
    } finally {
      await mute.close()
    }
  })
})
