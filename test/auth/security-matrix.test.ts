/**
 * The security matrix, generated from the route table: every /api/v2 route that is not declared public
 * here is protected, and each protected route refuses each kind of bad caller with the contract's code.
 * A new route is covered the moment it is mounted.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { tenants, users } from '../../src/db/schema'
import { createTestApp, jsonRequest, TEST_JWT_SECRET, type TestApp } from '../helpers/app'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'
import { hmacToken } from './jwt-attacks'

/** Routes anyone may call. Adding to this list is a security decision: say why next to the entry. */
const PUBLIC_ROUTES = new Set([
  'POST /api/v2/auth/register', // self sign-up, gated by the tenant's allow_signup
  'POST /api/v2/auth/login', // credentials in the body
  'POST /api/v2/auth/refresh', // the refresh token in the body is the credential
])

interface ProtectedRoute {
  method: string
  path: string
  url: string
  permission: string
}

let gw: TestApp
let routes: ProtectedRoute[]
let tenantId: string
let otherTenant: string
let good: TestUser
let revoked: TestUser
let disabled: TestUser
let noGrants: TestUser
let suspended: TestUser
let superAdmin: TestUser

beforeAll(async () => {
  gw = await createTestApp()
  routes = gw.app.routes
    .filter((r) => r.path.startsWith('/api/v2/') && !PUBLIC_ROUTES.has(`${r.method} ${r.path}`))
    .map((r) => {
      const detail = (r.hooks as { detail?: Record<string, unknown> }).detail ?? {}
      return {
        method: r.method,
        path: r.path,
        url: r.path.replace(/:[A-Za-z_]+\??/g, 'matrix-id'),
        permission: String(detail['x-permission'] ?? 'NONE'),
      }
    })
  tenantId = await makeTenant(gw)
  otherTenant = await makeTenant(gw)
  const suspendedTenant = await makeTenant(gw)
  ;[good, revoked, disabled, noGrants, suspended, superAdmin] = await Promise.all([
    makeUser(gw, { tenantId, roles: ['admin'] }),
    makeUser(gw, { tenantId, roles: ['admin'] }),
    makeUser(gw, { tenantId, roles: ['admin'] }),
    makeUser(gw, { tenantId, roles: [] }),
    makeUser(gw, { tenantId: suspendedTenant, roles: ['admin'] }),
    makeUser(gw, { tenantId, roles: ['super_admin'] }),
  ])
  expect((await gw.request('/api/v2/auth/logout', { method: 'POST', headers: revoked.auth })).status).toBe(200)
  const db = gw.deps.db.db
  await db.update(users).set({ status: 'disabled' }).where(eq(users.id, disabled.id))
  await gw.deps.identity.bus.publish({ t: 'user', tenant: tenantId, id: disabled.id, ended: true })
  await db.update(tenants).set({ status: 'suspended' }).where(eq(tenants.id, suspendedTenant))
  await gw.deps.identity.bus.publish({ t: 'tenant', id: suspendedTenant, ended: true })
}, 60_000)
afterAll(() => gw.close())

function claimsOf(user: TestUser): Record<string, unknown> {
  return JSON.parse(Buffer.from(user.accessToken.split('.')[1]!, 'base64url').toString())
}

async function call(route: ProtectedRoute, headers: Record<string, string>): Promise<Response> {
  // WebSocket routes refuse before the upgrade: an upgrade request gets the HTTP answer
  if (route.method === 'WS') {
    const upgrade = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' }
    return gw.request(route.url, { headers: { ...upgrade, ...headers } })
  }
  const init =
    route.method === 'GET' || route.method === 'DELETE'
      ? { method: route.method, headers }
      : jsonRequest(route.method, {}, headers)
  return gw.request(route.url, init)
}

async function expectRefused(route: ProtectedRoute, headers: Record<string, string>, status: number, code: string) {
  const res = await call(route, headers)
  const body = (await res.json()) as { code: string }
  expect({ route: `${route.method} ${route.path}`, status: res.status, code: body.code }).toEqual({
    route: `${route.method} ${route.path}`,
    status,
    code,
  })
}

describe('the route table', () => {
  test('every protected route declares what it requires', () => {
    expect(routes.length).toBeGreaterThan(0)
    for (const r of routes) expect({ route: `${r.method} ${r.path}`, permission: r.permission }).not.toEqual({ route: `${r.method} ${r.path}`, permission: 'NONE' })
  })
})

describe('security matrix: every protected route', () => {
  const cases: Array<[string, () => Record<string, string>, number, string]> = [
    ['no token', () => ({}), 401, 'TOKEN_MISSING'],
    ['malformed header', () => ({ authorization: 'Bearer' }), 401, 'TOKEN_INVALID'],
    ['garbage token', () => ({ authorization: 'Bearer not.a.jwt' }), 401, 'TOKEN_INVALID'],
    ['basic auth instead of bearer', () => ({ authorization: 'Basic YWRtaW46YWRtaW4=' }), 401, 'TOKEN_INVALID'],
    [
      'expired token',
      () => {
        const now = Math.floor(Date.now() / 1000)
        return { authorization: `Bearer ${hmacToken({ alg: 'HS256', typ: 'JWT' }, { ...claimsOf(good), iat: now - 7200, nbf: now - 7200, exp: now - 3600 }, TEST_JWT_SECRET)}` }
      },
      401,
      'TOKEN_INVALID',
    ],
    [
      'token signed with another secret',
      () => ({ authorization: `Bearer ${hmacToken({ alg: 'HS256', typ: 'JWT' }, claimsOf(good), 'another-secret-another-secret-0123456789')}` }),
      401,
      'TOKEN_INVALID',
    ],
    ['revoked token (after logout)', () => revoked.auth, 401, 'TOKEN_REVOKED'],
    ['disabled user', () => disabled.auth, 401, 'USER_DISABLED'],
    ['suspended tenant', () => suspended.auth, 403, 'TENANT_SUSPENDED'],
    ['unknown API key', () => ({ 'x-api-key': 'vh_doesnotexist' }), 401, 'TOKEN_INVALID'],
    ['another tenant in X-Tenant-ID', () => ({ ...good.auth, 'x-tenant-id': otherTenant }), 403, 'TENANT_MISMATCH'],
  ]
  for (const [name, headers, status, code] of cases) {
    test(`${name} → ${status} ${code}`, async () => {
      for (const route of routes) await expectRefused(route, headers(), status, code)
    })
  }

  test('a caller without the permission → 403 PERMISSION_DENIED (routes that require one)', async () => {
    const guarded = routes.filter((r) => r.permission !== 'authenticated')
    expect(guarded.length).toBeGreaterThan(0)
    for (const route of guarded) await expectRefused(route, noGrants.auth, 403, 'PERMISSION_DENIED')
  })

  test('refusals are counted by code in /metrics', async () => {
    const text = await (await gw.request('/metrics')).text()
    for (const code of ['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_REVOKED', 'USER_DISABLED', 'TENANT_SUSPENDED', 'TENANT_MISMATCH', 'PERMISSION_DENIED']) {
      expect(text).toMatch(new RegExp(`auth_failures_total\\{code="${code}"\\} [1-9]`))
    }
  })

  test('a caller holding everything is let through: whatever the answer, it is not an auth refusal and not a 5xx', async () => {
    for (const route of routes.filter((r) => !r.path.endsWith('/logout'))) {
      const res = await call(route, superAdmin.auth)
      const body = (await res.clone().json().catch(() => ({}))) as { code?: string }
      expect({ route: `${route.method} ${route.path}`, status: res.status < 500, code: body.code }).not.toMatchObject({
        code: expect.stringMatching(/^(TOKEN_|USER_|TENANT_|PERMISSION_DENIED)/),
      })
      expect(res.status).toBeLessThan(500)
    }
  })
})
