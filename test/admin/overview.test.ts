/** /api/v2/admin/audit-logs and /stats. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { conversations, messages } from '../../src/db/schema'
import { newId } from '../../src/lib/ids'
import { createTestApp, type TestApp } from '../helpers/app'
import { makeUser } from '../helpers/identity'
import { adminWorld, as, collectPages } from './helpers'

let gw: TestApp
let world: Awaited<ReturnType<typeof adminWorld>>

beforeAll(async () => {
  gw = await createTestApp()
  world = await adminWorld(gw)
}, 60_000)
afterAll(() => gw.close())

describe('audit log', () => {
  test('an admin change is listed with who, what, target, outcome, user agent and request id', async () => {
    const admin = as(gw, world.admin)
    const headers = { 'user-agent': 'admin-console/1.0', 'x-request-id': 'req-audit-1' }
    const made = await admin.post('/users', { email: 'audited@example.com', password: 'password-1' }, headers)
    const log = await admin.get('/audit-logs?action=admin.user.create')
    expect(log.status).toBe(200)
    expect(log.body.items[0]).toMatchObject({
      tenant_id: world.tenantId,
      actor_id: world.admin.id,
      actor_type: 'user',
      action: 'admin.user.create',
      target_type: 'user',
      target_id: made.body.id,
      outcome: 'success',
      user_agent: 'admin-console/1.0',
      request_id: 'req-audit-1',
    })
    expect(log.body.items.every((e: { action: string }) => e.action === 'admin.user.create')).toBe(true)
  })

  test('a refused change is listed as denied', async () => {
    await as(gw, world.admin).put(`/users/${world.user.id}/permissions`, { permissions: ['system:*'] })
    const log = await as(gw, world.admin).get('/audit-logs?action=admin.user.permissions')
    expect(log.body.items[0]).toMatchObject({ outcome: 'denied', target_id: world.user.id, details: { code: 'PERMISSION_DENIED' } })
  })

  test('pages newest first with no duplicates; logins are there too', async () => {
    const mine = await adminWorld(gw)
    for (let i = 0; i < 5; i++) await as(gw, mine.admin).post('/roles', { name: `r${i}`, permissions: [] })
    const { items } = await collectPages((q) => as(gw, mine.admin).get(`/audit-logs${q}`), 2)
    const ids = items.map((e) => e.id as string)
    expect(new Set(ids).size).toBe(ids.length)
    expect(ids).toEqual([...ids].sort().reverse())
    expect(items.filter((e) => e.action === 'admin.role.create')).toHaveLength(5)
    expect(items.some((e) => e.action === 'auth.login')).toBe(true)
    expect(items.every((e) => e.tenant_id === mine.tenantId)).toBe(true)
  })

  test('a super_admin without X-Tenant-ID sees every tenant, or one with ?tenant_id=', async () => {
    const other = await adminWorld(gw)
    const root = as(gw, world.root)
    const all = await collectPages((q) => root.get(`/audit-logs${q}`), 100)
    const seen = new Set(all.items.map((e) => e.tenant_id))
    expect(seen.has(world.tenantId) && seen.has(other.tenantId)).toBe(true)
    const one = await root.get(`/audit-logs?tenant_id=${other.tenantId}&limit=100`)
    expect(one.body.items.length).toBeGreaterThan(0)
    expect(one.body.items.every((e: { tenant_id: string }) => e.tenant_id === other.tenantId)).toBe(true)
  })

  test('a plain user lacks audit:read → 403', async () => {
    expect((await as(gw, world.user).get('/audit-logs')).status).toBe(403)
  })
})

describe('stats', () => {
  test("counts the acting tenant's users by status, conversations, messages and usable API keys", async () => {
    const mine = await adminWorld(gw)
    const admin = as(gw, mine.admin)
    const extra = await makeUser(gw, { tenantId: mine.tenantId })
    await admin.patch(`/users/${extra.id}`, { status: 'disabled' })
    const db = gw.deps.db.db
    for (let c = 0; c < 2; c++) {
      const conversationId = newId('conv')
      await db.insert(conversations).values({ id: conversationId, tenantId: mine.tenantId, userId: mine.user.id })
      await db.insert(messages).values(
        ['user', 'assistant'].map((role) => ({ id: newId('msg'), tenantId: mine.tenantId, conversationId, userId: mine.user.id, role: role as 'user' | 'assistant' })),
      )
    }
    const keys = await Promise.all([0, 1].map(() => admin.post('/api/v2/api-keys', { name: 'k', permissions: [] })))
    await admin.del(`/api/v2/api-keys/${keys[0]!.body.id}`)

    const stats = await admin.get('/stats')
    expect(stats.status).toBe(200)
    expect(stats.body).toEqual({
      tenant_id: mine.tenantId,
      users: { total: 4, active: 3, disabled: 1 },
      conversations: 2,
      messages: 4,
      api_keys: { active: 1 },
    })
    // another tenant's numbers are its own
    expect((await as(gw, world.admin).get('/stats')).body.conversations).toBe(0)
  })
})
