/**
 * Who may open a voice session, decided before the upgrade (contract §5): Authorization header or a
 * single-use ticket (subprotocol `ticket.<t>` or `?ticket=`), `voice-protocol-v2` echoed, the Origin
 * allowlist, `voice:write`, and the concurrent-session limits per user and per tenant (429).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'
import { connect, eventually, listeningGateway, session, stopGateway, upgradeStatus, type VoiceClient } from './helpers'

let g: Awaited<ReturnType<typeof listeningGateway>>
let user: TestUser
let noVoice: TestUser

beforeAll(async () => {
  g = await listeningGateway({ VOICE_ALLOWED_ORIGINS: 'https://app.example', VOICE_MAX_SESSIONS_PER_USER: '2', VOICE_MAX_SESSIONS_PER_TENANT: '3' })
  const tenantId = await makeTenant(g.gw)
  ;[user, noVoice] = await Promise.all([makeUser(g.gw, { tenantId }), makeUser(g.gw, { tenantId, roles: [], permissions: ['chat:write'] })])
}, 30_000)
afterAll(() => stopGateway(g))

async function ticketFor(who: TestUser): Promise<string> {
  const res = await fetch(`${g.base}/api/v2/voice/tickets`, { method: 'POST', headers: who.auth })
  expect(res.status).toBe(200)
  const body = (await res.json()) as { ticket: string; expires_in: number }
  expect(body.expires_in).toBe(60)
  return body.ticket
}

async function closeAll(clients: VoiceClient[]): Promise<void> {
  for (const c of clients) c.ws.close()
  await Promise.all(clients.map((c) => c.closed))
}

describe('voice admission', () => {
  test('a ticket as subprotocol opens a session for its user; voice-protocol-v2 is echoed, the ticket never is', async () => {
    const ticket = await ticketFor(user)
    const c = await session(g.ws, { protocols: [`ticket.${ticket}`, 'voice-protocol-v2'], headers: { origin: 'https://app.example' } })
    expect(c.ws.protocol).toBe('voice-protocol-v2')
    const row = await (await fetch(`${g.base}/api/v2/voice/sessions/${c.init.session_id}`, { headers: user.auth })).json()
    expect((row as { user_id: string }).user_id).toBe(user.id)
    await closeAll([c])
  })

  test('a ticket is accepted once: the second upgrade with it is 401 (also when both race)', async () => {
    const ticket = await ticketFor(user)
    const c = await session(g.ws, { query: `ticket=${ticket}` })
    expect(c.ws.protocol).toBe('')
    expect(await upgradeStatus(g.base, {}, `/api/v2/voice/stream?ticket=${ticket}`)).toMatchObject({ status: 401, code: 'TOKEN_INVALID' })
    await closeAll([c])
    const raced = await ticketFor(user)
    const outcomes = await Promise.allSettled([0, 1, 2].map(() => connect(g.ws, { protocols: [`ticket.${raced}`] })))
    const opened = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []))
    expect(opened).toHaveLength(1)
    await closeAll(opened)
    expect(await upgradeStatus(g.base, {}, '/api/v2/voice/stream?ticket=made-up')).toMatchObject({ status: 401, code: 'TOKEN_INVALID' })
  })

  test('refusals are HTTP before the upgrade: no credential 401, no voice:write 403, a foreign Origin 403', async () => {
    expect(await upgradeStatus(g.base)).toMatchObject({ status: 401, code: 'TOKEN_MISSING' })
    expect(await upgradeStatus(g.base, noVoice.auth)).toMatchObject({ status: 403, code: 'PERMISSION_DENIED' })
    expect(await upgradeStatus(g.base, { ...user.auth, origin: 'https://evil.example' })).toMatchObject({ status: 403, code: 'ORIGIN_NOT_ALLOWED' })
    const res = await fetch(`${g.base}/api/v2/voice/tickets`, { method: 'POST', headers: noVoice.auth })
    expect(res.status).toBe(403)
    // a ticket from an allowed origin still has to pass the Origin check
    const ticket = await ticketFor(user)
    expect(await upgradeStatus(g.base, { origin: 'https://evil.example' }, `/api/v2/voice/stream?ticket=${ticket}`)).toMatchObject({ status: 403 })
  })

  test('per-user limit: the third concurrent session is 429 QUOTA_EXCEEDED; a slot frees when a session ends', async () => {
    const a = await session(g.ws, { headers: user.auth })
    const b = await session(g.ws, { headers: user.auth })
    const refused = await upgradeStatus(g.base, user.auth)
    expect(refused).toMatchObject({ status: 429, code: 'QUOTA_EXCEEDED' })
    expect(refused.body.details).toEqual({ scope: 'user', limit: 2 })
    a.ws.close()
    await a.closed
    let c: VoiceClient | undefined
    await eventually(async () => {
      c = await session(g.ws, { headers: user.auth }).catch(() => undefined)
      return c !== undefined
    })
    await closeAll([b, c!])
  })

  test('per-tenant limit from the tenant quota (overrides the default), and 0 = unlimited', async () => {
    const tenantId = await makeTenant(g.gw, { quotas: { concurrent_voice_sessions: 2, concurrent_voice_sessions_per_user: 0 } })
    const [x, y] = await Promise.all([makeUser(g.gw, { tenantId }), makeUser(g.gw, { tenantId })])
    const open = [await session(g.ws, { headers: x.auth }), await session(g.ws, { headers: x.auth })]
    const refused = await upgradeStatus(g.base, y.auth)
    expect(refused).toMatchObject({ status: 429, code: 'QUOTA_EXCEEDED' })
    expect(refused.body.details).toEqual({ scope: 'tenant', limit: 2 })
    await closeAll(open)
  })

  test('no Origin (a non-browser client) is allowed; an allowed Origin is allowed', async () => {
    const a = await session(g.ws, { headers: user.auth })
    await closeAll([a])
    const b = await connect(g.ws, { headers: { ...user.auth, origin: 'https://app.example' } })
    await b.waitForType('session_initialized')
    await closeAll([b])
  })
})
