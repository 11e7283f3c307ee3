/**
 * Sessions as resources (contract §5): the list (own, or tenant-wide with voice:monitor), DELETE ending a
 * live session, observing one, another tenant's session invisible (404), revocation closing with 4401 and
 * shutdown sending session_ending then 1001.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { makeTenantWithUsers, makeUser, type TestUser } from '../helpers/identity'
import { connect, eventually, listeningGateway, type Msg, session, stopGateway, upgradeStatus } from './helpers'

let g: Awaited<ReturnType<typeof listeningGateway>>
let admin: TestUser
let user: TestUser
let outsider: TestUser

beforeAll(async () => {
  g = await listeningGateway({ VOICE_MAX_SESSIONS_PER_USER: '20' })
  ;({ admin, user } = await makeTenantWithUsers(g.gw))
  ;({ admin: outsider } = await makeTenantWithUsers(g.gw))
}, 30_000)
afterAll(() => stopGateway(g))

const get = (path: string, who: TestUser) => fetch(`${g.base}${path}`, { headers: who.auth })
const del = (path: string, who: TestUser) => fetch(`${g.base}${path}`, { method: 'DELETE', headers: who.auth })

describe('voice sessions as resources', () => {
  test('the list: a user sees their own, an admin the tenant’s; another tenant’s session is 404 everywhere', async () => {
    const mine = await session(g.ws, { headers: user.auth })
    const theirs = await session(g.ws, { headers: admin.auth })
    const own = (await (await get('/api/v2/voice/sessions', user)).json()) as Msg
    expect(own.items.map((s: Msg) => s.id)).toEqual([mine.init.session_id])
    expect(own.items[0]).toMatchObject({ status: 'active', user_id: user.id })
    const all = (await (await get('/api/v2/voice/sessions?limit=1', admin)).json()) as Msg
    expect(all.items.map((s: Msg) => s.id)).toEqual([theirs.init.session_id])
    const next = (await (await get(`/api/v2/voice/sessions?limit=1&cursor=${all.next_cursor}`, admin)).json()) as Msg
    expect(next.items.map((s: Msg) => s.id)).toEqual([mine.init.session_id])
    // a plain user cannot see the admin's; nobody outside the tenant can see either
    expect((await get(`/api/v2/voice/sessions/${theirs.init.session_id}`, user)).status).toBe(404)
    expect((await get(`/api/v2/voice/sessions/${mine.init.session_id}`, outsider)).status).toBe(404)
    expect((await del(`/api/v2/voice/sessions/${mine.init.session_id}`, outsider)).status).toBe(404)
    expect(await upgradeStatus(g.base, outsider.auth, `/api/v2/voice/sessions/${mine.init.session_id}/observe`)).toMatchObject({ status: 404 })
    expect(((await (await get('/api/v2/voice/sessions', outsider)).json()) as Msg).items).toEqual([])
    expect(mine.ws.readyState).toBe(WebSocket.OPEN)
    mine.ws.close()
    theirs.ws.close()
  })

  test('DELETE ends a live session: session_ending{reason:"deleted"}, close 1000, row cancelled', async () => {
    const c = await session(g.ws, { headers: user.auth })
    const res = await del(`/api/v2/voice/sessions/${c.init.session_id}`, user)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ id: c.init.session_id, status: 'cancelled' })
    expect((await c.closed).code).toBe(1000)
    expect(c.messages.at(-1)).toMatchObject({ type: 'session_ending', reason: 'deleted', reconnect: false })
    await eventually(async () => ((await (await get(`/api/v2/voice/sessions/${c.init.session_id}`, user)).json()) as Msg).status === 'cancelled')
  })

  test("an admin ending a member's session is audited (whose, and how it ended); ending one's own is not", async () => {
    const { auditLogs } = await import('../../src/db/schema')
    const { eq } = await import('drizzle-orm')
    const mine = await session(g.ws, { headers: user.auth })
    expect((await del(`/api/v2/voice/sessions/${mine.init.session_id}`, user)).status).toBe(200)
    const theirs = await session(g.ws, { headers: user.auth })
    expect((await del(`/api/v2/voice/sessions/${theirs.init.session_id}`, admin)).status).toBe(200)
    await theirs.closed
    const rows = await g.gw.deps.db.db.select().from(auditLogs).where(eq(auditLogs.action, 'voice.session.end'))
    expect(rows.map((r) => [r.actorId, r.targetId, r.outcome, JSON.parse(r.details!)])).toEqual([[admin.id, theirs.init.session_id, 'success', { user_id: user.id, status: 'cancelled' }]])
  })

  test('an admin observes a live session: its events but not audio, then session_ended; plain users may not observe', async () => {
    const c = await session(g.ws, { headers: user.auth })
    expect(await upgradeStatus(g.base, user.auth, `/api/v2/voice/sessions/${c.init.session_id}/observe`)).toMatchObject({ status: 403 })
    const o = await connect(g.ws, { headers: admin.auth, path: `/api/v2/voice/sessions/${c.init.session_id}/observe` })
    await o.waitForType('observing')
    c.ws.send(Buffer.alloc(640))
    c.send({ type: 'stop' })
    await c.waitForType('tts_complete')
    await o.waitForType('tts_complete')
    expect(o.ofType('asr_final')).toHaveLength(1)
    expect(o.ofType('tts_audio')).toHaveLength(0)
    c.send({ type: 'end_session' })
    const ended = await o.waitForType('session_ended')
    expect(ended).toMatchObject({ session_id: c.init.session_id, status: 'completed', reason: 'client_ended' })
    expect((await o.closed).code).toBe(1000)
    expect(await upgradeStatus(g.base, admin.auth, `/api/v2/voice/sessions/${c.init.session_id}/observe`)).toMatchObject({ status: 409 })
  })

  test('logging out revokes the token: the session closes with 4401 within 2 s', async () => {
    const who = await makeUser(g.gw, { tenantId: user.tenantId })
    const c = await session(g.ws, { headers: who.auth })
    const t0 = Date.now()
    expect((await fetch(`${g.base}/api/v2/auth/logout`, { method: 'POST', headers: who.auth })).status).toBeLessThan(300)
    expect((await c.closed).code).toBe(4401)
    expect(Date.now() - t0).toBeLessThan(2000)
  })
})

describe('shutdown', () => {
  test('every live session gets session_ending{reason:"shutdown", reconnect:true} and close 1001; rows are stored', async () => {
    const own = await listeningGateway()
    const { makeTenantWithUsers } = await import('../helpers/identity')
    const { user: u } = await makeTenantWithUsers(own.gw)
    const sessions = [await session(own.ws, { headers: u.auth }), await session(own.ws, { headers: u.auth })]
    await own.gw.deps.lifecycle.shutdown(Date.now())
    for (const c of sessions) {
      expect((await c.closed).code).toBe(1001)
      expect(c.messages.at(-1)).toEqual({ type: 'session_ending', reason: 'shutdown', reconnect: true, session_id: c.init.session_id })
    }
    const res = await fetch(`${own.base}/api/v2/voice/sessions`, { headers: u.auth })
    expect(((await res.json()) as Msg).items.map((s: Msg) => s.status)).toEqual(['cancelled', 'cancelled'])
    // an absent ?status= filters nothing (Elysia would default an optional UnionEnum to its first value)
    const active = await fetch(`${own.base}/api/v2/voice/sessions?status=active`, { headers: u.auth })
    expect(((await active.json()) as Msg).items).toEqual([])
    expect(await upgradeStatus(own.base, u.auth)).toMatchObject({ status: 503 })
    await stopGateway(own)
  })
})
