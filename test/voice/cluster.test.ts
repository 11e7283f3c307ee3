/**
 * Two gateway instances on one Postgres and one Redis: a session held by A is observed from B, ended by a
 * DELETE sent to B, closed with 4401 when its token is revoked through B, and counted by B's limits.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { makeTenant, makeTenantWithUsers, makeUser, type TestUser } from '../helpers/identity'
import { ci, createThrowawayDatabase, hasPostgres, hasRedis, redisUrl } from '../helpers/services'
import { connect, eventually, listeningGateway, type Msg, session, stopGateway, upgradeStatus } from './helpers'

if (ci && (!hasPostgres || !hasRedis)) throw new Error('voice cluster.test needs Postgres and Redis under CI=true')

describe.skipIf(!hasPostgres || !hasRedis)('voice across two instances (Postgres + Redis)', () => {
  let database: { url: string; drop: () => Promise<void> }
  let a: Awaited<ReturnType<typeof listeningGateway>>
  let b: Awaited<ReturnType<typeof listeningGateway>>
  let admin: TestUser
  let user: TestUser

  beforeAll(async () => {
    database = await createThrowawayDatabase()
    const env = { DATABASE_URL: database.url, REDIS_URL: redisUrl, VOICE_MAX_SESSIONS_PER_USER: '2' }
    a = await listeningGateway(env)
    b = await listeningGateway(env)
    ;({ admin, user } = await makeTenantWithUsers(a.gw))
  }, 60_000)
  afterAll(async () => {
    await stopGateway(a)
    await stopGateway(b)
    await database?.drop()
  })

  test('an observer on B follows a session held by A: its events, then session_ended', async () => {
    const c = await session(a.ws, { headers: user.auth })
    const o = await connect(b.ws, { headers: admin.auth, path: `/api/v2/voice/sessions/${c.init.session_id}/observe` })
    await o.waitForType('observing')
    // the watch reaches A through Redis: pings until the observer sees a pong
    await eventually(async () => {
      c.send({ type: 'ping' })
      await Bun.sleep(30)
      return o.ofType('pong').length > 0
    })
    c.ws.send(Buffer.alloc(640))
    c.send({ type: 'stop' })
    await o.waitForType('tts_complete')
    expect(o.ofType('asr_final')[0]!.session_id).toBe(c.init.session_id)
    expect(o.ofType('tts_audio')).toHaveLength(0)
    c.send({ type: 'end_session' })
    expect(await o.waitForType('session_ended')).toMatchObject({ status: 'completed' })
    expect((await o.closed).code).toBe(1000)
  })

  test('DELETE sent to B ends the session A holds; another tenant gets 404 from either', async () => {
    const c = await session(a.ws, { headers: user.auth })
    const outsider = await makeUser(b.gw, { tenantId: await makeTenant(b.gw), roles: ['admin'] })
    expect((await fetch(`${b.base}/api/v2/voice/sessions/${c.init.session_id}`, { method: 'DELETE', headers: outsider.auth })).status).toBe(404)
    expect(c.ws.readyState).toBe(WebSocket.OPEN)
    const res = await fetch(`${b.base}/api/v2/voice/sessions/${c.init.session_id}`, { method: 'DELETE', headers: user.auth })
    expect(res.status).toBe(200)
    expect((await c.closed).code).toBe(1000)
    expect(c.messages.at(-1)).toMatchObject({ type: 'session_ending', reason: 'deleted' })
    await eventually(async () => {
      const row = (await (await fetch(`${b.base}/api/v2/voice/sessions/${c.init.session_id}`, { headers: user.auth })).json()) as Msg
      return row.status === 'cancelled'
    })
  })

  test('logging out through B closes the session on A with 4401 within 2 s', async () => {
    const who = await makeUser(a.gw, { tenantId: user.tenantId })
    const c = await session(a.ws, { headers: who.auth })
    const t0 = Date.now()
    expect((await fetch(`${b.base}/api/v2/auth/logout`, { method: 'POST', headers: who.auth })).status).toBeLessThan(300)
    expect((await c.closed).code).toBe(4401)
    expect(Date.now() - t0).toBeLessThan(2000)
  })

  test('the per-user limit counts sessions on both instances', async () => {
    const who = await makeUser(a.gw, { tenantId: user.tenantId })
    const one = await session(a.ws, { headers: who.auth })
    const two = await session(b.ws, { headers: who.auth })
    expect(await upgradeStatus(a.base, who.auth)).toMatchObject({ status: 429, code: 'QUOTA_EXCEEDED' })
    expect(await upgradeStatus(b.base, who.auth)).toMatchObject({ status: 429, code: 'QUOTA_EXCEEDED' })
    two.ws.close()
    await two.closed
    await eventually(async () => (await session(a.ws, { headers: who.auth }).then((c) => (c.ws.close(), true)).catch(() => false)))
    one.ws.close()
  })
})
