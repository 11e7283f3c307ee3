/** /api/v2/admin/roles and /tenant-permissions: CRUD, and grants taking effect on the very next request. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { users } from '../../src/db/schema'
import { createTestApp, type TestApp } from '../helpers/app'
import { makeUser } from '../helpers/identity'
import { adminWorld, as, auditRows, collectPages } from './helpers'

let gw: TestApp
let world: Awaited<ReturnType<typeof adminWorld>>

beforeAll(async () => {
  gw = await createTestApp()
  world = await adminWorld(gw)
}, 60_000)
afterAll(() => gw.close())

describe('custom roles CRUD', () => {
  test('create → 201, listed after the built-ins, update and delete → audited', async () => {
    const admin = as(gw, world.admin)
    const created = await admin.post('/roles', { name: 'auditor', permissions: ['audit:read', 'audit:read', 'user:read'] })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ name: 'auditor', permissions: ['audit:read', 'user:read'], built_in: false })

    const list = await admin.get('/roles')
    expect(list.body.items.map((r: { name: string; built_in: boolean }) => `${r.name}:${r.built_in}`)).toEqual([
      'user:true',
      'admin:true',
      'super_admin:true',
      'auditor:false',
    ])
    expect(list.body.items[1].permissions).toContain('user:*')

    const updated = await admin.patch('/roles/auditor', { permissions: ['audit:read'] })
    expect(updated.body.permissions).toEqual(['audit:read'])
    expect((await admin.del('/roles/auditor')).status).toBe(204)
    expect((await admin.get('/roles')).body.items).toHaveLength(3)

    for (const action of ['admin.role.create', 'admin.role.update', 'admin.role.delete']) {
      const [row] = await auditRows(gw, action, 'auditor')
      expect(row).toMatchObject({ tenantId: world.tenantId, actorId: world.admin.id, targetType: 'role', outcome: 'success' })
    }
  })

  test('list pages through built-in and custom roles: each once, no gaps', async () => {
    const mine = await adminWorld(gw)
    const admin = as(gw, mine.admin)
    const names = ['r-a', 'r-b', 'r-c', 'r-d', 'r-e']
    for (const name of names.toReversed()) expect((await admin.post('/roles', { name, permissions: [] })).status).toBe(201)
    for (const limit of [1, 2, 3, 100]) {
      const { items } = await collectPages((q) => admin.get(`/roles${q}`), limit)
      expect(items.map((r) => r.name)).toEqual(['user', 'admin', 'super_admin', ...names])
    }
  })

  test('a duplicate name → 409 ROLE_EXISTS', async () => {
    const admin = as(gw, world.admin)
    expect((await admin.post('/roles', { name: 'twice', permissions: [] })).status).toBe(201)
    const again = await admin.post('/roles', { name: 'twice', permissions: ['chat:write'] })
    expect(again.status).toBe(409)
    expect(again.body.code).toBe('ROLE_EXISTS')
  })

  test.each(['user', 'admin', 'super_admin'])('the built-in %s cannot be created, changed or deleted (400)', async (name) => {
    const admin = as(gw, world.root)
    for (const reply of [await admin.post('/roles', { name, permissions: [] }), await admin.patch(`/roles/${name}`, { permissions: [] }), await admin.del(`/roles/${name}`)]) {
      expect(reply.status).toBe(400)
      expect(reply.body.code).toBe('BUILT_IN_ROLE')
    }
  })

  test('unknown role → 404 on update and delete', async () => {
    expect((await as(gw, world.admin).patch('/roles/ghost', { permissions: [] })).status).toBe(404)
    expect((await as(gw, world.admin).del('/roles/ghost')).status).toBe(404)
  })

  test.each([
    ['a malformed permission', { name: 'ok-name', permissions: ['audit:peek'] }, 'permissions'],
    ['a malformed name', { name: 'Bad Name', permissions: [] }, 'name'],
  ])('%s → 400 VALIDATION_FAILED', async (_n, body, field) => {
    const reply = await as(gw, world.admin).post('/roles', body)
    expect(reply.status).toBe(400)
    expect(reply.body.code).toBe('VALIDATION_FAILED')
    expect(JSON.stringify(reply.body.details)).toContain(field)
  })
})

describe('grants take effect on the next request', () => {
  test("changing a custom role changes what its holders may do, on their existing tokens", async () => {
    const mine = await adminWorld(gw)
    const admin = as(gw, mine.admin)
    expect((await admin.post('/roles', { name: 'reviewer', permissions: [] })).status).toBe(201)
    const holder = await makeUser(gw, { tenantId: mine.tenantId, roles: ['user', 'reviewer'] })
    const me = as(gw, holder)
    expect((await me.get('/audit-logs')).status).toBe(403)
    await admin.patch('/roles/reviewer', { permissions: ['audit:read'] })
    expect((await me.get('/audit-logs')).status).toBe(200)
    await admin.patch('/roles/reviewer', { permissions: [] })
    expect((await me.get('/audit-logs')).status).toBe(403)
  })

  test('deleting a role takes it off its holders, so a new role of that name grants them nothing', async () => {
    const mine = await adminWorld(gw)
    const admin = as(gw, mine.admin)
    await admin.post('/roles', { name: 'temp', permissions: ['audit:read'] })
    const holder = await makeUser(gw, { tenantId: mine.tenantId, roles: ['user', 'temp'] })
    expect((await as(gw, holder).get('/audit-logs')).status).toBe(200)
    expect((await admin.del('/roles/temp')).status).toBe(204)
    const [row] = await gw.deps.db.db.select().from(users).where(eq(users.id, holder.id))
    expect(row!.roles).toEqual(['user'])
    await admin.post('/roles', { name: 'temp', permissions: ['audit:read'] })
    expect((await as(gw, holder).get('/audit-logs')).status).toBe(403)
  })

  test('tenant-wide grants apply to every member, and only of that tenant', async () => {
    const mine = await adminWorld(gw)
    const other = await adminWorld(gw)
    const members = await Promise.all([makeUser(gw, { tenantId: mine.tenantId }), makeUser(gw, { tenantId: mine.tenantId, roles: [] })])
    for (const m of members) expect((await as(gw, m).get('/audit-logs')).status).toBe(403)

    const set = await as(gw, mine.admin).put('/tenant-permissions', { permissions: ['audit:read'] })
    expect(set.status).toBe(200)
    expect(set.body).toMatchObject({ tenant_id: mine.tenantId, permissions: ['audit:read'] })
    expect((await as(gw, mine.user).get('/tenant-permissions')).status).toBe(403) // role:read is not implied
    expect((await as(gw, mine.admin).get('/tenant-permissions')).body.permissions).toEqual(['audit:read'])
    for (const m of [...members, mine.user]) expect((await as(gw, m).get('/audit-logs')).status).toBe(200)
    expect((await as(gw, other.user).get('/audit-logs')).status).toBe(403)

    const [audit] = await auditRows(gw, 'admin.tenant_permissions.set', mine.tenantId)
    expect(audit).toMatchObject({ tenantId: mine.tenantId, actorId: mine.admin.id, outcome: 'success' })
    expect(JSON.parse(audit!.details!)).toEqual({ from: [], to: ['audit:read'] })

    await as(gw, mine.admin).put('/tenant-permissions', { permissions: [] })
    for (const m of members) expect((await as(gw, m).get('/audit-logs')).status).toBe(403)
  })
})
