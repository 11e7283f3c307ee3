/** The auth routes through the whole app: what a client of /api/v2/auth and /api/v2/api-keys sees. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { and, eq, like } from 'drizzle-orm'
import { auditLogs } from '../../src/db/schema'
import { createTestApp, jsonRequest, TEST_JWT_SECRET, type TestApp } from '../helpers/app'
import { awayFromWindowEdge, makeTenant, makeUser, TEST_PASSWORD } from '../helpers/identity'
import { LOGIN_LIMITS } from '../../src/modules/auth/service'

const LOGIN_WINDOW_MS = LOGIN_LIMITS.windowMs
import { jwtAttackCases } from './jwt-attacks'

let gw: TestApp
let tenantId: string
beforeAll(async () => {
  gw = await createTestApp()
  tenantId = await makeTenant(gw)
}, 30_000)
afterAll(() => gw.close())

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  gw.request(path, jsonRequest('POST', body, headers))
const login = (email: string, password: string, tenant = tenantId) =>
  post('/api/v2/auth/login', { email, password, tenant_id: tenant })

async function auditActions(userId: string): Promise<string[]> {
  const rows = await gw.deps.db.db.select().from(auditLogs).where(eq(auditLogs.actorId, userId))
  return rows.map((r) => `${r.action}:${r.outcome}`)
}

describe('login', () => {
  test('returns a token pair and the user; the access token works on /auth/me', async () => {
    const user = await makeUser(gw, { tenantId })
    const res = await login(user.email.toUpperCase(), TEST_PASSWORD)
    expect(res.status).toBe(200)
    const body = (await res.json()) as Record<string, any>
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 3600, user: { id: user.id, tenant_id: tenantId, roles: ['user'] } })
    const me = await gw.request('/api/v2/auth/me', { headers: { authorization: `Bearer ${body.access_token}` } })
    expect(me.status).toBe(200)
    expect(await me.json()).toMatchObject({
      user: { id: user.id, status: 'active' },
      tenant: { id: tenantId, status: 'active' },
      permissions: expect.arrayContaining(['chat:write', 'voice:write']),
    })
    expect(me.headers.get('ratelimit-limit')).toBe('120')
  })

  test('unknown user and wrong password are the same 401 INVALID_CREDENTIALS, and are audited', async () => {
    const user = await makeUser(gw, { tenantId })
    const wrong = await login(user.email, 'not-the-password')
    const unknown = await login('nobody@example.com', 'not-the-password')
    for (const res of [wrong, unknown]) {
      expect(res.status).toBe(401)
      expect(((await res.json()) as { code: string }).code).toBe('INVALID_CREDENTIALS')
    }
    expect(await auditActions(user.id)).toContain('auth.login:failure')
  })

  test('an email with a lone surrogate is a 400 naming the field, not a 500', async () => {
    // JSON.stringify writes the lone surrogate as the escape `\ud800`, which no stored email can hold
    const res = await login('\ud800@example.com', 'not-the-password')
    expect(res.status).toBe(400)
    const body = (await res.json()) as { code: string; details: Array<{ field: string }> }
    expect([body.code, body.details[0]!.field]).toEqual(['VALIDATION_FAILED', 'email'])
  })

  test('repeated failures for one account are throttled with 429 and Retry-After; others are unaffected', async () => {
    await awayFromWindowEdge(LOGIN_WINDOW_MS, 10_000)
    const user = await makeUser(gw, { tenantId })
    const other = await makeUser(gw, { tenantId })
    for (let i = 0; i < 10; i++) expect((await login(user.email, 'bad-password')).status).toBe(401)
    const limited = await login(user.email, TEST_PASSWORD)
    expect(limited.status).toBe(429)
    expect(((await limited.json()) as { code: string }).code).toBe('RATE_LIMITED')
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0)
    expect((await login(other.email, TEST_PASSWORD)).status).toBe(200)
  })

  test('wrong passwords sent all at once are counted while in flight: no more are tried than the limit; right ones are not counted', async () => {
    await awayFromWindowEdge(LOGIN_WINDOW_MS, 10_000)
    const user = await makeUser(gw, { tenantId })
    const statuses = await Promise.all(Array.from({ length: 40 }, () => login(user.email, 'bad-password').then((r) => r.status)))
    expect(statuses.filter((s) => s === 401)).toHaveLength(10)
    expect(statuses.filter((s) => s === 429)).toHaveLength(30)
    // a successful login gives its count back: more of them than the limit, one after another, all succeed
    const other = await makeUser(gw, { tenantId })
    for (let i = 0; i < 12; i++) expect((await login(other.email, TEST_PASSWORD)).status).toBe(200)
  })

  test('failed logins from one client address are throttled across accounts (real socket)', async () => {
    const server = gw.app.listen({ port: 0, hostname: '127.0.0.1' }).server!
    try {
      const base = `http://127.0.0.1:${server.port}/api/v2/auth/login`
      const attempt = (email: string, password: string) =>
        fetch(base, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password, tenant_id: tenantId }) })
      const { LOGIN_LIMITS } = await import('../../src/modules/auth/service')
      await awayFromWindowEdge(LOGIN_LIMITS.windowMs, 15_000)
      for (let i = 0; i < LOGIN_LIMITS.perIp; i++) {
        expect((await attempt(`spray-${i}@example.com`, 'guess')).status).toBe(401)
      }
      const user = await makeUser(gw, { tenantId })
      const blocked = await attempt(user.email, TEST_PASSWORD)
      expect(blocked.status).toBe(429)
      expect(blocked.headers.get('retry-after')).not.toBeNull()
    } finally {
      await server.stop(true)
    }
  }, 30_000)

  test('a disabled user and a suspended tenant cannot log in', async () => {
    const suspended = await makeTenant(gw)
    const user = await makeUser(gw, { tenantId: suspended })
    await gw.deps.db.db.update((await import('../../src/db/schema')).tenants).set({ status: 'suspended' }).where(eq((await import('../../src/db/schema')).tenants.id, suspended))
    await gw.deps.identity.bus.publish({ t: 'tenant', id: suspended, ended: true })
    const res = await login(user.email, TEST_PASSWORD, suspended)
    expect(res.status).toBe(403)
    expect(((await res.json()) as { code: string }).code).toBe('TENANT_SUSPENDED')
  })
})

describe('refresh and logout', () => {
  test('refresh rotates; presenting a used refresh token revokes the whole login session', async () => {
    const user = await makeUser(gw, { tenantId })
    const first = await post('/api/v2/auth/refresh', { refresh_token: user.refreshToken })
    expect(first.status).toBe(200)
    const pair = (await first.json()) as { access_token: string; refresh_token: string }
    expect(pair.refresh_token).not.toBe(user.refreshToken)
    const ok = await gw.request('/api/v2/auth/me', { headers: { authorization: `Bearer ${pair.access_token}` } })
    expect(ok.status).toBe(200)

    const reuse = await post('/api/v2/auth/refresh', { refresh_token: user.refreshToken })
    expect(reuse.status).toBe(401)
    expect(((await reuse.json()) as { code: string }).code).toBe('TOKEN_REVOKED')
    // every token of that login is now dead: the old access token, the new one, and the new refresh token
    for (const token of [user.accessToken, pair.access_token]) {
      const res = await gw.request('/api/v2/auth/me', { headers: { authorization: `Bearer ${token}` } })
      expect(res.status).toBe(401)
      expect(((await res.json()) as { code: string }).code).toBe('TOKEN_REVOKED')
    }
    expect((await post('/api/v2/auth/refresh', { refresh_token: pair.refresh_token })).status).toBe(401)
    expect(await auditActions(user.id)).toContain('auth.refresh_reuse:denied')
  })

  test('two concurrent uses of one refresh token: exactly one wins', async () => {
    const user = await makeUser(gw, { tenantId })
    const results = await Promise.all([1, 2, 3].map(() => post('/api/v2/auth/refresh', { refresh_token: user.refreshToken })))
    expect(results.filter((r) => r.status === 200).length).toBeLessThanOrEqual(1)
    expect(results.filter((r) => r.status === 401).length).toBeGreaterThanOrEqual(2)
  })

  test('an unknown refresh token is 401 TOKEN_INVALID', async () => {
    const res = await post('/api/v2/auth/refresh', { refresh_token: 'rt_nope' })
    expect(res.status).toBe(401)
    expect(((await res.json()) as { code: string }).code).toBe('TOKEN_INVALID')
  })

  test('logout revokes the access token and the refresh token, and is audited', async () => {
    const user = await makeUser(gw, { tenantId })
    expect((await gw.request('/api/v2/auth/logout', { method: 'POST', headers: user.auth })).status).toBe(200)
    const me = await gw.request('/api/v2/auth/me', { headers: user.auth })
    expect(me.status).toBe(401)
    expect(((await me.json()) as { code: string }).code).toBe('TOKEN_REVOKED')
    expect((await post('/api/v2/auth/refresh', { refresh_token: user.refreshToken })).status).toBe(401)
    expect(await auditActions(user.id)).toContain('auth.logout:success')
  })

  test('logout with an API key is refused (400) and the key keeps working: logout never claims a revocation it did not do', async () => {
    const user = await makeUser(gw, { tenantId })
    const created = await post('/api/v2/api-keys', { name: 'logout', permissions: ['apikey:read'] }, user.auth)
    const key = { 'x-api-key': ((await created.json()) as { key: string }).key }
    const res = await gw.request('/api/v2/auth/logout', { method: 'POST', headers: key })
    expect(res.status).toBe(400)
    expect(((await res.json()) as { code: string; error: string }).error).toContain('DELETE /api/v2/api-keys/:id')
    expect((await gw.request('/api/v2/api-keys', { headers: key })).status).toBe(200)
    expect(await auditActions(user.id)).not.toContain('auth.logout:success')
  })

  test('a token with under 15 minutes left carries the refresh hint headers', async () => {
    const user = await makeUser(gw, { tenantId })
    const claims = JSON.parse(Buffer.from(user.accessToken.split('.')[1]!, 'base64url').toString())
    const short = await gw.deps.identity.tokens.signAccess({ ...claims, ttlS: 600 })
    const res = await gw.request('/api/v2/auth/me', { headers: { authorization: `Bearer ${short.token}` } })
    expect(res.status).toBe(200)
    expect(res.headers.get('x-token-refresh-required')).toBe('true')
    expect(res.headers.get('x-token-expires-at')).toBe(String(short.exp))
    expect((await gw.request('/api/v2/auth/me', { headers: user.auth })).headers.get('x-token-refresh-required')).toBeNull()
  })
})

describe('register', () => {
  test('creates a user in a tenant that allows sign-up; the same email again is 409', async () => {
    const open = await makeTenant(gw, { allowSignup: true })
    const email = `new-${crypto.randomUUID().slice(0, 8)}@example.com`
    const res = await post('/api/v2/auth/register', { email, password: 'long-enough-1', tenant_id: open })
    expect(res.status).toBe(201)
    expect(await res.json()).toMatchObject({ user: { email, tenant_id: open, roles: ['user'], status: 'active' } })
    expect((await login(email, 'long-enough-1', open)).status).toBe(200)
    const again = await post('/api/v2/auth/register', { email: email.toUpperCase(), password: 'long-enough-1', tenant_id: open })
    expect(again.status).toBe(409)
  })

  test('a tenant closed to sign-up refuses; a short password is a validation error', async () => {
    const closed = await post('/api/v2/auth/register', { email: 'x@example.com', password: 'long-enough-1', tenant_id: tenantId })
    expect(closed.status).toBe(403)
    const short = await post('/api/v2/auth/register', { email: 'y@example.com', password: 'short' })
    expect(short.status).toBe(400)
    expect(((await short.json()) as { details: Array<{ field: string }> }).details[0]!.field).toBe('password')
  })
})

describe('JWT attack matrix over HTTP', () => {
  test('every forged, expired or malformed token is 401 and never 5xx', async () => {
    const user = await makeUser(gw, { tenantId })
    const claims = JSON.parse(Buffer.from(user.accessToken.split('.')[1]!, 'base64url').toString())
    const cases = await jwtAttackCases({
      secret: TEST_JWT_SECRET,
      issuer: claims.iss,
      audience: claims.aud,
      validClaims: { user_id: claims.user_id, username: claims.username, tenant_id: claims.tenant_id, session_id: claims.session_id, roles: claims.roles, scopes: [] },
    })
    expect(cases.length).toBeGreaterThan(40)
    // HTTP itself trims header values and RFC 6750 allows several spaces after "Bearer": a valid token
    // with surrounding whitespace is the same valid token there (the verifier refuses it on its own).
    const overHttp = cases.filter((c) => c.token === c.token.trim())
    expect(cases.length - overHttp.length).toBeLessThanOrEqual(2)
    for (const c of overHttp) {
      const res = await gw.request('/api/v2/auth/me', { headers: { authorization: `Bearer ${c.token}` } })
      expect({ name: c.name, status: res.status }).toEqual({ name: c.name, status: 401 })
    }
  })
})

describe('API keys', () => {
  test('created once with its secret, listed without it, accepted as Bearer and X-API-Key, revoked → 401', async () => {
    const user = await makeUser(gw, { tenantId })
    const created = await post('/api/v2/api-keys', { name: 'ci', permissions: ['apikey:read'] }, user.auth)
    expect(created.status).toBe(201)
    const key = (await created.json()) as { id: string; key: string; prefix: string }
    expect(key.key).toStartWith('vh_')
    const list = (await (await gw.request('/api/v2/api-keys', { headers: user.auth })).json()) as { items: Array<Record<string, unknown>> }
    expect(list.items.map((k) => k.id)).toContain(key.id)
    expect(JSON.stringify(list)).not.toContain(key.key)

    for (const headers of [{ authorization: `Bearer ${key.key}` }, { 'x-api-key': key.key }] as Array<Record<string, string>>) {
      expect((await gw.request('/api/v2/api-keys', { headers })).status).toBe(200)
    }
    // the key holds apikey:read only: it cannot create keys, although its creator can
    const widen = await post('/api/v2/api-keys', { name: 'x', permissions: [] }, { 'x-api-key': key.key })
    expect(widen.status).toBe(403)

    expect((await gw.request(`/api/v2/api-keys/${key.id}`, { method: 'DELETE', headers: user.auth })).status).toBe(204)
    const after = await gw.request('/api/v2/api-keys', { headers: { 'x-api-key': key.key } })
    expect(after.status).toBe(401)
    expect(((await after.json()) as { code: string }).code).toBe('TOKEN_REVOKED')
  })

  test('creating and revoking a key is audited, refusals too; the secret is never in the log', async () => {
    const user = await makeUser(gw, { tenantId })
    const created = (await (await post('/api/v2/api-keys', { name: 'audited', permissions: ['apikey:read'] }, user.auth)).json()) as { id: string; key: string }
    await post('/api/v2/api-keys', { name: 'too wide', permissions: ['user:admin'] }, user.auth)
    expect((await gw.request(`/api/v2/api-keys/${created.id}`, { method: 'DELETE', headers: user.auth })).status).toBe(204)
    expect((await gw.request('/api/v2/api-keys/key_nope', { method: 'DELETE', headers: user.auth })).status).toBe(404)
    const rows = await gw.deps.db.db.select().from(auditLogs).where(and(eq(auditLogs.actorId, user.id), like(auditLogs.action, 'apikey.%'))).orderBy(auditLogs.id)
    expect(rows.map((r) => [r.action, r.outcome, r.targetId])).toEqual([
      ['apikey.create', 'success', created.id],
      ['apikey.create', 'denied', null],
      ['apikey.revoke', 'success', created.id],
      ['apikey.revoke', 'failure', 'key_nope'],
    ])
    expect(rows.every((r) => r.tenantId === tenantId)).toBe(true)
    expect(JSON.stringify(rows)).not.toContain(created.key)
  })

  test('a key can never hold more than its creator; malformed permissions are 400', async () => {
    const user = await makeUser(gw, { tenantId })
    const wider = await post('/api/v2/api-keys', { name: 'x', permissions: ['user:admin'] }, user.auth)
    expect(wider.status).toBe(403)
    expect(await wider.json()).toMatchObject({ code: 'PERMISSION_DENIED', details: { permissions: ['user:admin'] } })
    const bad = await post('/api/v2/api-keys', { name: 'x', permissions: ['chat:fly'] }, user.auth)
    expect(bad.status).toBe(400)
  })

  test('an expired key is refused; another user cannot revoke my key (404)', async () => {
    const user = await makeUser(gw, { tenantId })
    const other = await makeUser(gw, { tenantId })
    const created = (await (await post('/api/v2/api-keys', { name: 'soon', permissions: ['apikey:read'], expires_at: new Date(Date.now() + 1500).toISOString() }, user.auth)).json()) as { id: string; key: string }
    expect((await gw.request('/api/v2/api-keys', { headers: { 'x-api-key': created.key } })).status).toBe(200)
    expect((await gw.request(`/api/v2/api-keys/${created.id}`, { method: 'DELETE', headers: other.auth })).status).toBe(404)
    await Bun.sleep(1600)
    expect((await gw.request('/api/v2/api-keys', { headers: { 'x-api-key': created.key } })).status).toBe(401)
    const past = await post('/api/v2/api-keys', { name: 'past', permissions: [], expires_at: new Date(Date.now() - 1000).toISOString() }, user.auth)
    expect(past.status).toBe(400)
  })

  test.each([
    ['a date without a time', '2030-01-01'],
    ['a day the month does not have', '2030-02-30T00:00:00Z'],
    ['a six-digit year', '+010000-01-01T00:00:00Z'],
    ['an hour of 24', '2030-01-01T24:00:00Z'],
    ['no offset', '2030-01-01T00:00:00'],
  ])('an API key expiry with %s → 400 VALIDATION_FAILED naming expires_at', async (_name, expires_at) => {
    const user = await makeUser(gw, { tenantId })
    const res = await post('/api/v2/api-keys', { name: 'k', permissions: [], expires_at }, user.auth)
    expect(res.status).toBe(400)
    const body = (await res.json()) as { code: string; details: unknown }
    expect(body.code).toBe('VALIDATION_FAILED')
    expect(JSON.stringify(body.details)).toContain('expires_at')
  })

  test('an API key expiry with an offset is kept as that instant', async () => {
    const user = await makeUser(gw, { tenantId })
    const res = await post('/api/v2/api-keys', { name: 'k', permissions: [], expires_at: '2030-06-01T12:00:00.5+02:00' }, user.auth)
    expect(res.status).toBe(201)
    expect(((await res.json()) as { expires_at: string }).expires_at).toBe('2030-06-01T10:00:00.500Z')
  })
})

describe('/auth/me over time', () => {
  test('the same answer on every call, and a role change shows at once', async () => {
    const admin = await makeUser(gw, { tenantId, roles: ['admin'] })
    const user = await makeUser(gw, { tenantId })
    const me = async () => (await (await gw.request('/api/v2/auth/me', { headers: user.auth })).json()) as { user: { roles: string[] }; permissions: string[] }
    const first = await me()
    expect(await me()).toEqual(first)
    expect(first.permissions).not.toContain('user:*')
    const patched = await gw.request(`/api/v2/admin/users/${user.id}`, {
      method: 'PATCH',
      headers: { ...admin.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ roles: ['admin'] }),
    })
    expect(patched.status).toBe(200)
    const after = await me()
    expect(after.user.roles).toEqual(['admin'])
    expect(after.permissions).toContain('user:*')
  })
})

describe('quotas', () => {
  test("per-user and per-tenant request limits come from the tenant's quotas: 429 RATE_LIMITED with headers", async () => {
    await awayFromWindowEdge(60_000, 5_000)
    const limited = await makeTenant(gw, { quotas: { requests_per_minute_per_user: 3, requests_per_minute: 5 } })
    const [one, two] = await Promise.all([makeUser(gw, { tenantId: limited }), makeUser(gw, { tenantId: limited })])
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) statuses.push((await gw.request('/api/v2/auth/me', { headers: one.auth })).status)
    expect(statuses).toEqual([200, 200, 200, 429])
    const refused = await gw.request('/api/v2/auth/me', { headers: one.auth })
    expect(await refused.json()).toMatchObject({ code: 'RATE_LIMITED', details: { scope: 'user' } })
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(refused.headers.get('ratelimit-remaining')).toBe('0')
    // the tenant's 5 per minute: `one`'s refused requests did not spend the tenant's, so `two` has 2 left
    for (let i = 0; i < 2; i++) expect((await gw.request('/api/v2/auth/me', { headers: two.auth })).status).toBe(200)
    const other = await gw.request('/api/v2/auth/me', { headers: two.auth })
    expect(other.status).toBe(429)
    expect(await other.json()).toMatchObject({ details: { scope: 'tenant' } })
    // another tenant is unaffected
    expect((await gw.request('/api/v2/auth/me', { headers: (await makeUser(gw, { tenantId })).auth })).status).toBe(200)
  })
})

describe('tenancy', () => {
  test('a super_admin may act in another tenant with X-Tenant-ID; a non-existent tenant is refused', async () => {
    const admin = await makeUser(gw, { tenantId: 'default', roles: ['super_admin'] })
    const me = await gw.request('/api/v2/auth/me', { headers: { ...admin.auth, 'x-tenant-id': tenantId } })
    expect(me.status).toBe(200)
    expect(((await me.json()) as { tenant: { id: string } }).tenant.id).toBe(tenantId)
    const missing = await gw.request('/api/v2/auth/me', { headers: { ...admin.auth, 'x-tenant-id': 'no-such-tenant' } })
    expect(missing.status).toBe(403)
  })

  test("an API key never acts in another tenant, even a super_admin's", async () => {
    const admin = await makeUser(gw, { tenantId: 'default', roles: ['super_admin'] })
    const created = (await (await post('/api/v2/api-keys', { name: 'svc', permissions: ['apikey:read'] }, admin.auth)).json()) as { key: string }
    expect((await gw.request('/api/v2/auth/me', { headers: { 'x-api-key': created.key } })).status).toBe(200)
    const across = await gw.request('/api/v2/auth/me', { headers: { 'x-api-key': created.key, 'x-tenant-id': tenantId } })
    expect(across.status).toBe(403)
    expect(((await across.json()) as { code: string }).code).toBe('TENANT_MISMATCH')
  })

  test('one token, alternating X-Tenant-ID: each request acts where it says (no principal reused across tenants)', async () => {
    const admin = await makeUser(gw, { tenantId: 'default', roles: ['super_admin'] })
    const plain = await makeUser(gw, { tenantId: 'default' })
    const tenantOf = async (headers: Record<string, string>) => {
      const res = await gw.request('/api/v2/auth/me', { headers })
      return res.status === 200 ? ((await res.json()) as { tenant: { id: string } }).tenant.id : res.status
    }
    for (let i = 0; i < 2; i++) {
      expect(await tenantOf(admin.auth)).toBe('default')
      expect(await tenantOf({ ...admin.auth, 'x-tenant-id': tenantId })).toBe(tenantId)
      // a plain user resolved once without the header is still refused with it
      expect(await tenantOf(plain.auth)).toBe('default')
      expect(await tenantOf({ ...plain.auth, 'x-tenant-id': tenantId })).toBe(403)
    }
  })

  test('a user naming their own tenant in X-Tenant-ID is fine', async () => {
    const user = await makeUser(gw, { tenantId })
    expect((await gw.request('/api/v2/auth/me', { headers: { ...user.auth, 'x-tenant-id': tenantId } })).status).toBe(200)
  })
})

void and
