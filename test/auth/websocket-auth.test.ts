/**
 * The same auth macro guards WebSocket routes: the upgrade is refused with the HTTP status and code of the
 * contract before any socket opens, and an admitted socket knows its principal.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, type TestApp } from '../helpers/app'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'

let gw: TestApp
let port: number
let allowed: TestUser
let noGrants: TestUser

beforeAll(async () => {
  gw = await createTestApp()
  const app = gw.app.ws('/test/ws', {
    auth: 'voice:write',
    open(ws) {
      const { principal } = ws.data as unknown as { principal: { userId: string; tenantId: string } }
      ws.send(JSON.stringify({ user_id: principal.userId, tenant_id: principal.tenantId }))
    },
    message() {},
  })
  port = app.listen({ port: 0, hostname: '127.0.0.1' }).server!.port!
  const tenantId = await makeTenant(gw)
  ;[allowed, noGrants] = await Promise.all([makeUser(gw, { tenantId }), makeUser(gw, { tenantId, roles: [] })])
}, 30_000)
afterAll(async () => {
  await gw.app.server?.stop(true)
  await gw.close()
})

function open(headers: Record<string, string>): Promise<{ message?: Record<string, string>; closed?: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/test/ws`, { headers } as unknown as string[])
    ws.onmessage = (e) => {
      resolve({ message: JSON.parse(String(e.data)) })
      ws.close()
    }
    ws.onclose = (e) => resolve({ closed: e.code })
  })
}

async function upgradeStatus(headers: Record<string, string>): Promise<{ status: number; code: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/test/ws`, {
    headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
  })
  return { status: res.status, code: ((await res.json()) as { code: string }).code }
}

describe('auth on a WebSocket route', () => {
  test('an authorised caller is admitted and the socket carries the principal', async () => {
    const result = await open(allowed.auth)
    expect(result.message).toEqual({ user_id: allowed.id, tenant_id: allowed.tenantId })
  })

  test('refusals happen before the upgrade, as HTTP with the contract codes', async () => {
    expect(await upgradeStatus({})).toEqual({ status: 401, code: 'TOKEN_MISSING' })
    expect(await upgradeStatus({ authorization: 'Bearer forged.token.here' })).toEqual({ status: 401, code: 'TOKEN_INVALID' })
    expect(await upgradeStatus(noGrants.auth)).toEqual({ status: 403, code: 'PERMISSION_DENIED' })
    expect((await open({})).message).toBeUndefined()
  })
})
