/**
 * Administration is not a way up: nobody grants, assigns or takes away what they do not hold, nobody
 * manages someone more powerful, and nobody locks themselves out. Every refusal leaves the rows as they
 * were and is audited as `denied`.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { roles, users } from '../../src/db/schema'
import { createTestApp, type TestApp } from '../helpers/app'
import { makeUser, type TestUser } from '../helpers/identity'
import { adminWorld, as, auditRows, type Reply } from './helpers'

let gw: TestApp
let world: Awaited<ReturnType<typeof adminWorld>>

beforeAll(async () => {
  gw = await createTestApp()
  world = await adminWorld(gw)
}, 60_000)
afterAll(() => gw.close())

const userRow = async (id: string) => (await gw.deps.db.db.select().from(users).where(eq(users.id, id)))[0]

function expectDenied(reply: Reply, named: Record<string, string[]>) {
  expect(reply.status).toBe(403)
  expect(reply.body.code).toBe('PERMISSION_DENIED')
  expect(reply.body.details).toEqual(named)
}

describe('no granting what you do not hold', () => {
  test.each([['tenant:read'], ['system:monitor'], ['*:*'], ['tenant:*']])('an admin granting %s directly → 403 naming it, row unchanged', async (grant) => {
    const target = await makeUser(gw, { tenantId: world.tenantId })
    const before = await userRow(target.id)
    expectDenied(await as(gw, world.admin).put(`/users/${target.id}/permissions`, { permissions: ['chat:write', grant] }), { permissions: [grant] })
    expect(await userRow(target.id)).toEqual(before)
    const [audit] = await auditRows(gw, 'admin.user.permissions', target.id)
    expect(audit).toMatchObject({ outcome: 'denied', actorId: world.admin.id, tenantId: world.tenantId })
  })

  test('an admin cannot make a super_admin, by create or by update; a super_admin can', async () => {
    const target = await makeUser(gw, { tenantId: world.tenantId })
    expectDenied(await as(gw, world.admin).patch(`/users/${target.id}`, { roles: ['super_admin'] }), { roles: ['super_admin'] })
    expectDenied(await as(gw, world.admin).post('/users', { email: 'sneaky@example.com', password: 'password-1', roles: ['super_admin'] }), {
      roles: ['super_admin'],
    })
    expect((await userRow(target.id))!.roles).toEqual(['user'])
    expect((await as(gw, world.root).patch(`/users/${target.id}`, { roles: ['super_admin'] })).status).toBe(200)
  })

  test('an admin may make another admin in their own tenant', async () => {
    const target = await makeUser(gw, { tenantId: world.tenantId })
    expect((await as(gw, world.admin).patch(`/users/${target.id}`, { roles: ['admin'] })).body.roles).toEqual(['admin'])
  })

  test('a helpdesk role (user:*) cannot hand out admin, audit:read, or a role wider than itself', async () => {
    const root = as(gw, world.root)
    expect((await root.post('/roles', { name: 'helpdesk', permissions: ['user:*'] })).status).toBe(201)
    const desk = await makeUser(gw, { tenantId: world.tenantId, roles: ['helpdesk'] })
    const target = await makeUser(gw, { tenantId: world.tenantId, roles: [] })
    const helpdesk = as(gw, desk)
    expectDenied(await helpdesk.patch(`/users/${target.id}`, { roles: ['admin'] }), { roles: ['admin'] })
    expectDenied(await helpdesk.put(`/users/${target.id}/permissions`, { permissions: ['audit:read'] }), { permissions: ['audit:read'] })
    // what it does hold it may pass on
    expect((await helpdesk.put(`/users/${target.id}/permissions`, { permissions: ['user:read'] })).status).toBe(200)
  })

  test('custom roles and tenant-wide grants: only grants the caller holds', async () => {
    const admin = as(gw, world.admin)
    expectDenied(await admin.post('/roles', { name: 'tenant-peeker', permissions: ['chat:write', 'tenant:read'] }), { permissions: ['tenant:read'] })
    expect(await gw.deps.db.db.select().from(roles).where(eq(roles.name, 'tenant-peeker'))).toEqual([])
    expectDenied(await admin.put('/tenant-permissions', { permissions: ['system:*'] }), { permissions: ['system:*'] })
    expect((await admin.get('/tenant-permissions')).body.permissions).toEqual([])
  })

  test('nor take away what the caller does not hold: an admin cannot edit a role a super_admin gave tenant:read', async () => {
    expect((await as(gw, world.root).post('/roles', { name: 'tenant-reader', permissions: ['tenant:read'] })).status).toBe(201)
    expectDenied(await as(gw, world.admin).patch('/roles/tenant-reader', { permissions: [] }), { permissions: ['tenant:read'] })
    expect((await as(gw, world.admin).del('/roles/tenant-reader')).status).toBe(403)
  })

  test("an API key is limited to its own grants, not its creator's", async () => {
    const created = await as(gw, world.admin).post('/api/v2/api-keys', { name: 'provisioner', permissions: ['user:write'] })
    expect(created.status).toBe(201)
    const key = as(gw, { 'x-api-key': created.body.key })
    const bare = await makeUser(gw, { tenantId: world.tenantId, roles: [] })
    expectDenied(await key.put(`/users/${bare.id}/permissions`, { permissions: ['audit:read'] }), { permissions: ['audit:read'] })
    expect((await key.put(`/users/${bare.id}/permissions`, { permissions: ['user:read'] })).status).toBe(200)
    // and it cannot manage a user holding more than the key (world.user has the `user` role's grants)
    expectDenied(await key.patch(`/users/${world.user.id}`, { username: 'x' }), { permissions: ['chat:write', 'voice:write', 'apikey:read', 'apikey:write'] })
  })
})

describe('no managing someone more powerful', () => {
  let boss: TestUser
  beforeAll(async () => {
    boss = await makeUser(gw, { tenantId: world.tenantId, roles: ['super_admin'] })
  })

  test.each([
    ['disable', (a: ReturnType<typeof as>) => a.patch(`/users/${boss.id}`, { status: 'disabled' })],
    ['demote', (a: ReturnType<typeof as>) => a.patch(`/users/${boss.id}`, { roles: ['user'] })],
    ['rename', (a: ReturnType<typeof as>) => a.patch(`/users/${boss.id}`, { username: 'demoted' })],
    ['replace grants', (a: ReturnType<typeof as>) => a.put(`/users/${boss.id}/permissions`, { permissions: [] })],
    ['delete', (a: ReturnType<typeof as>) => a.del(`/users/${boss.id}`)],
  ])('an admin trying to %s a super_admin of their tenant → 403, row unchanged', async (_name, act) => {
    const before = await userRow(boss.id)
    const reply = await act(as(gw, world.admin))
    expect(reply.status).toBe(403)
    expect(reply.body.code).toBe('PERMISSION_DENIED')
    expect(await userRow(boss.id)).toEqual(before)
  })
})

describe('no locking yourself out', () => {
  test.each([
    ['disable yourself', (me: TestUser) => as(gw, me).patch(`/users/${me.id}`, { status: 'disabled' })],
    ['demote yourself', (me: TestUser) => as(gw, me).patch(`/users/${me.id}`, { roles: ['user'] })],
    ['delete yourself', (me: TestUser) => as(gw, me).del(`/users/${me.id}`)],
  ])('an admin trying to %s → 400 SELF_LOCKOUT, row unchanged', async (_name, act) => {
    const me = await makeUser(gw, { tenantId: world.tenantId, roles: ['admin'] })
    const before = await userRow(me.id)
    const reply = await act(me)
    expect(reply.status).toBe(400)
    expect(reply.body.code).toBe('SELF_LOCKOUT')
    expect(await userRow(me.id)).toEqual(before)
    expect((await as(gw, me).get('/users')).status).toBe(200)
  })

  test('a super_admin cannot drop their own super_admin role', async () => {
    const reply = await as(gw, world.root).patch(`/users/${world.root.id}`, { roles: ['admin'] })
    expect(reply.body.code).toBe('SELF_LOCKOUT')
    expect(reply.body.details.lost).toContain('super_admin')
  })

  test('nor strip their own direct grants, a role they hold, or the tenant grants their power comes from', async () => {
    const tenant = await adminWorld(gw)
    const root = as(gw, tenant.root)
    // power from direct grants
    const direct = await makeUser(gw, { tenantId: tenant.tenantId, roles: [], permissions: ['user:*'] })
    expect((await as(gw, direct).put(`/users/${direct.id}/permissions`, { permissions: ['user:read'] })).body.code).toBe('SELF_LOCKOUT')
    // power from a custom role
    expect((await root.post('/roles', { name: 'keeper', permissions: ['role:*', 'user:read'] })).status).toBe(201)
    const keeper = await makeUser(gw, { tenantId: tenant.tenantId, roles: ['keeper'] })
    expect((await as(gw, keeper).patch('/roles/keeper', { permissions: ['role:read'] })).body.code).toBe('SELF_LOCKOUT')
    expect((await as(gw, keeper).del('/roles/keeper')).body.code).toBe('SELF_LOCKOUT')
    // power from tenant-wide grants
    expect((await root.put('/tenant-permissions', { permissions: ['role:*'] }, { 'x-tenant-id': tenant.tenantId })).status).toBe(200)
    const member = await makeUser(gw, { tenantId: tenant.tenantId, roles: [] })
    expect((await as(gw, member).put('/tenant-permissions', { permissions: [] })).body.code).toBe('SELF_LOCKOUT')
    expect((await as(gw, member).get('/tenant-permissions')).body.permissions).toEqual(['role:*'])
  })
})
