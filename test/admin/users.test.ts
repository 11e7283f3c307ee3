/** /api/v2/admin/users: CRUD, pagination, validation, and changes reaching existing tokens at once. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { users } from '../../src/db/schema'
import { createTestApp, jsonRequest, type TestApp } from '../helpers/app'
import { makeUser } from '../helpers/identity'
import { eventually } from '../helpers/wait'
import { adminWorld, as, auditRows, collectPages } from './helpers'

let gw: TestApp
let world: Awaited<ReturnType<typeof adminWorld>>
const email = () => `n${crypto.randomUUID().slice(0, 10)}@example.com`

beforeAll(async () => {
  gw = await createTestApp()
  world = await adminWorld(gw)
}, 60_000)
afterAll(() => gw.close())

async function login(address: string, password: string, tenantId: string) {
  return gw.request('/api/v2/auth/login', jsonRequest('POST', { email: address, password, tenant_id: tenantId }))
}

describe('create', () => {
  test('→ 201 with the contract fields; the new user can log in; the password is stored hashed and never returned', async () => {
    const address = email()
    const reply = await as(gw, world.admin).post('/users', { email: address.toUpperCase(), password: 'a-long-password', username: 'Ada' })
    expect(reply.status).toBe(201)
    expect(reply.body).toMatchObject({ email: address, username: 'Ada', tenant_id: world.tenantId, roles: ['user'], status: 'active' })
    expect(reply.body.id).toStartWith('usr_')
    expect(Date.parse(reply.body.created_at)).not.toBeNaN()
    expect(JSON.stringify(reply.body)).not.toContain('a-long-password')
    expect(Object.keys(reply.body).some((k) => k.includes('password'))).toBe(false)

    const [row] = await gw.deps.db.db.select().from(users).where(eq(users.id, reply.body.id))
    expect(row!.passwordHash).toStartWith('$argon2id$')
    expect((await login(address, 'a-long-password', world.tenantId)).status).toBe(200)

    const [audit] = await auditRows(gw, 'admin.user.create', reply.body.id)
    expect(audit).toMatchObject({ tenantId: world.tenantId, actorId: world.admin.id, targetType: 'user', outcome: 'success' })
    expect(audit!.details).not.toContain('a-long-password')
  })

  test('the same email twice in a tenant (any case) → 409 EMAIL_TAKEN; in another tenant it is fine', async () => {
    const address = email()
    const admin = as(gw, world.admin)
    expect((await admin.post('/users', { email: address, password: 'password-1' })).status).toBe(201)
    const again = await admin.post('/users', { email: address.toUpperCase(), password: 'password-2' })
    expect(again.status).toBe(409)
    expect(again.body.code).toBe('EMAIL_TAKEN')
    const other = await adminWorld(gw)
    expect((await as(gw, other.admin).post('/users', { email: address, password: 'password-3' })).status).toBe(201)
  })

  test.each([
    ['a short password', { email: 'a@example.com', password: 'short' }, 'password'],
    ['a malformed email', { email: 'not-an-email', password: 'password-1' }, 'email'],
    ['a malformed role name', { email: 'a@example.com', password: 'password-1', roles: ['Not A Role'] }, 'roles'],
    ['an unknown role', { email: 'a@example.com', password: 'password-1', roles: ['wizard'] }, 'roles'],
  ])('%s → 400 VALIDATION_FAILED naming the field', async (_name, body, field) => {
    const reply = await as(gw, world.admin).post('/users', body)
    expect(reply.status).toBe(400)
    expect(reply.body.code).toBe('VALIDATION_FAILED')
    expect(JSON.stringify(reply.body.details)).toContain(field)
  })

  test("tenant_id other than the caller's: 403 TENANT_MISMATCH for an admin, allowed for a super_admin", async () => {
    const other = await adminWorld(gw)
    const denied = await as(gw, world.admin).post('/users', { email: email(), password: 'password-1', tenant_id: other.tenantId })
    expect(denied.status).toBe(403)
    expect(denied.body.code).toBe('TENANT_MISMATCH')
    const made = await as(gw, world.root).post('/users', { email: email(), password: 'password-1', tenant_id: other.tenantId, roles: ['admin'] })
    expect(made.status).toBe(201)
    expect(made.body).toMatchObject({ tenant_id: other.tenantId, roles: ['admin'] })
    const unknown = await as(gw, world.root).post('/users', { email: email(), password: 'password-1', tenant_id: 'no-such-tenant' })
    expect(unknown.status).toBe(400)
  })
})

describe('read', () => {
  test('list pages newest first: every user of the tenant exactly once, no gaps', async () => {
    const mine = await adminWorld(gw)
    const admin = as(gw, mine.admin)
    for (let i = 0; i < 7; i++) expect((await admin.post('/users', { email: email(), password: 'password-1' })).status).toBe(201)
    const { items, pages } = await collectPages((q) => admin.get(`/users${q}`), 3)
    const expected = (await gw.deps.db.db.select({ id: users.id }).from(users).where(eq(users.tenantId, mine.tenantId))).map((u) => u.id)
    expect(items.map((u) => u.id)).toEqual([...expected].sort().reverse())
    expect(pages).toEqual([3, 3, 3, 1]) // 3 from adminWorld + 7
    expect(items.every((u) => u.tenant_id === mine.tenantId)).toBe(true)
  })

  test.each([0, 101, 'x'])('limit=%p → 400', async (limit) => {
    expect((await as(gw, world.admin).get(`/users?limit=${limit}`)).status).toBe(400)
  })

  test('a super_admin without X-Tenant-ID sees every tenant and may filter by ?tenant_id=', async () => {
    const other = await adminWorld(gw)
    const root = as(gw, world.root)
    const all = await collectPages((q) => root.get(`/users${q}`), 100)
    const tenantsSeen = new Set(all.items.map((u) => u.tenant_id))
    expect(tenantsSeen.has(world.tenantId) && tenantsSeen.has(other.tenantId) && tenantsSeen.has('default')).toBe(true)
    const filtered = await root.get(`/users?tenant_id=${other.tenantId}`)
    expect(filtered.body.items.map((u: { tenant_id: string }) => u.tenant_id)).toEqual(Array(3).fill(other.tenantId))
    // an admin naming another tenant is refused, not silently widened or narrowed
    expect((await as(gw, world.admin).get(`/users?tenant_id=${other.tenantId}`)).body.code).toBe('TENANT_MISMATCH')
  })

  test('GET /users/:id → the user; unknown → 404', async () => {
    const admin = as(gw, world.admin)
    expect((await admin.get(`/users/${world.user.id}`)).body).toMatchObject({ id: world.user.id, email: world.user.email })
    expect((await admin.get('/users/usr_nope')).status).toBe(404)
  })
})

describe('update', () => {
  test('PATCH roles and username → 200, audited with before and after', async () => {
    const target = await makeUser(gw, { tenantId: world.tenantId })
    const reply = await as(gw, world.admin).patch(`/users/${target.id}`, { roles: ['user', 'admin'], username: 'promoted' })
    expect(reply.status).toBe(200)
    expect(reply.body).toMatchObject({ roles: ['user', 'admin'], username: 'promoted' })
    const [audit] = await auditRows(gw, 'admin.user.update', target.id)
    expect(JSON.parse(audit!.details!).changes.roles).toEqual({ from: ['user'], to: ['user', 'admin'] })
    // the new role works on the user's existing token
    expect((await as(gw, target).get('/users')).status).toBe(200)
  })

  test('disabling → the existing token fails with 401 USER_DISABLED on the next request, live connections end', async () => {
    const target = await makeUser(gw, { tenantId: world.tenantId })
    const me = as(gw, target)
    expect((await me.get('/api/v2/auth/me')).status).toBe(200) // now cached
    const ended: string[] = []
    gw.deps.identity.live.register({ id: `c-${target.id}`, kind: 'voice', tenantId: world.tenantId, userId: target.id, startedAt: Date.now(), end: (r) => ended.push(r) })

    expect((await as(gw, world.admin).patch(`/users/${target.id}`, { status: 'disabled' })).body.status).toBe('disabled')
    const refused = await me.get('/api/v2/auth/me')
    expect(refused.status).toBe(401)
    expect(refused.body.code).toBe('USER_DISABLED')
    expect(ended).toEqual(['token_revoked'])

    await as(gw, world.admin).patch(`/users/${target.id}`, { status: 'active' })
    expect((await me.get('/api/v2/auth/me')).status).toBe(200)
  })

  test("a role change that takes away a live connection's permission ends it; one that keeps it does not", async () => {
    const target = await makeUser(gw, { tenantId: world.tenantId })
    const ended: string[] = []
    const unregister = gw.deps.identity.live.register({ id: `v-${target.id}`, kind: 'voice', tenantId: world.tenantId, userId: target.id, permission: 'voice:write', startedAt: Date.now(), end: (r) => ended.push(r) })
    const admin = as(gw, world.admin)
    expect((await admin.patch(`/users/${target.id}`, { username: 'renamed' })).status).toBe(200)
    expect((await admin.patch(`/users/${target.id}`, { roles: ['user', 'admin'] })).status).toBe(200)
    await Bun.sleep(100)
    expect(ended).toEqual([])
    expect((await admin.patch(`/users/${target.id}`, { roles: [] })).status).toBe(200)
    await eventually(() => ended.length > 0, 1_000)
    expect(ended).toEqual(['token_revoked'])
    unregister()
  })

  test('PUT /users/:id/permissions → direct grants replaced and effective on the next request', async () => {
    const target = await makeUser(gw, { tenantId: world.tenantId })
    const me = as(gw, target)
    expect((await me.get('/audit-logs')).status).toBe(403)
    const reply = await as(gw, world.admin).put(`/users/${target.id}/permissions`, { permissions: ['audit:read', 'audit:read'] })
    expect(reply.status).toBe(200)
    expect(reply.body.permissions).toEqual(['audit:read'])
    expect((await me.get('/audit-logs')).status).toBe(200)
    const [audit] = await auditRows(gw, 'admin.user.permissions', target.id)
    expect(JSON.parse(audit!.details!)).toEqual({ from: [], to: ['audit:read'] })
    await as(gw, world.admin).put(`/users/${target.id}/permissions`, { permissions: [] })
    expect((await me.get('/audit-logs')).status).toBe(403)
  })

  test('malformed permissions → 400 VALIDATION_FAILED naming each', async () => {
    const reply = await as(gw, world.admin).put(`/users/${world.user.id}/permissions`, { permissions: ['chat:write', 'chat:fly', 'nonsense'] })
    expect(reply.status).toBe(400)
    expect(reply.body.details[0]).toMatchObject({ field: 'permissions', values: ['chat:fly', 'nonsense'] })
  })

  test.each([
    ['an empty patch', {}],
    ['an unknown status', { status: 'banned' }],
  ])('%s → 400', async (_name, body) => {
    expect((await as(gw, world.admin).patch(`/users/${world.user.id}`, body)).status).toBe(400)
  })
})

describe('delete', () => {
  test('→ 204; the user is gone, their token fails, and a second delete is 404', async () => {
    const target = await makeUser(gw, { tenantId: world.tenantId })
    const admin = as(gw, world.admin)
    expect((await admin.del(`/users/${target.id}`)).status).toBe(204)
    expect(await gw.deps.db.db.select().from(users).where(eq(users.id, target.id))).toEqual([])
    expect((await as(gw, target).get('/api/v2/auth/me')).status).toBe(401)
    expect((await admin.del(`/users/${target.id}`)).status).toBe(404)
    const audits = await auditRows(gw, 'admin.user.delete', target.id)
    expect(audits.map((a) => `${a.outcome} by ${a.actorId}`).sort()).toEqual([`failure by ${world.admin.id}`, `success by ${world.admin.id}`])
  })
})
