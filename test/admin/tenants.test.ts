/** /api/v2/admin/tenants: super_admin CRUD, validation, suspension reaching live tokens and connections. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { tenants } from '../../src/db/schema'
import { createTestApp, type TestApp } from '../helpers/app'
import { makeTenant, makeUser } from '../helpers/identity'
import { adminWorld, as, auditRows, collectPages } from './helpers'

let gw: TestApp
let world: Awaited<ReturnType<typeof adminWorld>>
const slug = () => `acme-${crypto.randomUUID().slice(0, 8)}`

beforeAll(async () => {
  gw = await createTestApp()
  world = await adminWorld(gw)
}, 60_000)
afterAll(() => gw.close())

describe('tenants CRUD (super_admin)', () => {
  test('create → 201, read back, rename and set quotas, each audited', async () => {
    const root = as(gw, world.root)
    const id = slug()
    const created = await root.post('/tenants', { id, name: 'Acme', quotas: { daily_tokens: 1000 } })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ id, name: 'Acme', status: 'active', quotas: { daily_tokens: 1000 } })
    expect(Date.parse(created.body.created_at)).not.toBeNaN()

    expect((await root.get(`/tenants/${id}`)).body).toEqual(created.body)

    const patched = await root.patch(`/tenants/${id}`, { name: 'Acme Corp', quotas: { requests_per_minute: 10 } })
    expect(patched.status).toBe(200)
    // quotas are replaced as a whole, not merged
    expect(patched.body).toMatchObject({ id, name: 'Acme Corp', quotas: { requests_per_minute: 10 } })
    expect(patched.body.quotas.daily_tokens).toBeUndefined()

    const [create] = await auditRows(gw, 'admin.tenant.create', id)
    expect(create).toMatchObject({ tenantId: id, actorId: world.root.id, actorType: 'user', targetType: 'tenant', outcome: 'success' })
    const [update] = await auditRows(gw, 'admin.tenant.update', id)
    expect(update).toMatchObject({ actorId: world.root.id, outcome: 'success' })
    expect(JSON.parse(update!.details!).changes.name).toEqual({ from: 'Acme', to: 'Acme Corp' })
    expect(update!.requestId).toBeString()
  })

  test('a duplicate id → 409 TENANT_EXISTS', async () => {
    const root = as(gw, world.root)
    const id = slug()
    expect((await root.post('/tenants', { id, name: 'One' })).status).toBe(201)
    const again = await root.post('/tenants', { id, name: 'Two' })
    expect(again.status).toBe(409)
    expect(again.body.code).toBe('TENANT_EXISTS')
    const [row] = await gw.deps.db.db.select().from(tenants).where(eq(tenants.id, id))
    expect(row!.name).toBe('One')
  })

  test.each([
    ['an id with capitals', { id: 'Acme', name: 'x' }, 'id'],
    ['an id starting with a dash', { id: '-acme', name: 'x' }, 'id'],
    ['an empty name', { id: 'fine-id', name: '' }, 'name'],
    ['a negative quota', { id: 'fine-id', name: 'x', quotas: { daily_tokens: -1 } }, 'quotas'],
    ['a fractional quota', { id: 'fine-id', name: 'x', quotas: { daily_tokens: 1.5 } }, 'quotas'],
    ['an unknown quota key', { id: 'fine-id', name: 'x', quotas: { request_per_minute: 5 } }, 'quotas'],
    ['a quota as a numeric string', { id: 'fine-id', name: 'x', quotas: { requests_per_minute_per_user: '3' } }, 'quotas'],
    ['a negative quota as a string', { id: 'fine-id', name: 'x', quotas: { daily_tokens: '-5' } }, 'quotas'],
    ['a hexadecimal quota string', { id: 'fine-id', name: 'x', quotas: { daily_tokens: '0x10' } }, 'quotas'],
  ])('%s → 400 VALIDATION_FAILED naming the field', async (_name, body, field) => {
    const reply = await as(gw, world.root).post('/tenants', body)
    expect(reply.status).toBe(400)
    expect(reply.body.code).toBe('VALIDATION_FAILED')
    expect(JSON.stringify(reply.body.details)).toContain(field)
  })

  test('an unknown quota key is named in the refusal, on PATCH too', async () => {
    const reply = await as(gw, world.root).patch(`/tenants/${world.tenantId}`, { quotas: { daily_tokens: 5, concurrent_streams: 2 } })
    expect(reply.status).toBe(400)
    expect(reply.body.details[0]).toMatchObject({ field: 'quotas', values: ['concurrent_streams'] })
  })

  test('a quota value that is not a number is refused on PATCH and the stored quotas stay', async () => {
    const reply = await as(gw, world.root).patch(`/tenants/${world.tenantId}`, { quotas: { concurrent_streams_per_user: '2' } })
    expect(reply.status).toBe(400)
    expect(reply.body.details[0]).toMatchObject({ field: 'quotas', values: ['concurrent_streams_per_user'] })
    const [row] = await gw.deps.db.db.select().from(tenants).where(eq(tenants.id, world.tenantId))
    expect(row!.quotas).toEqual({ requests_per_minute_per_user: 0, requests_per_minute: 0 })
  })

  test('a stored quota the limiter cannot use falls back to the default instead of failing every request', async () => {
    const id = await makeTenant(gw)
    const user = await makeUser(gw, { tenantId: id })
    // as rows written before quota values were checked
    await gw.deps.db.db.update(tenants).set({ quotas: { requests_per_minute_per_user: '3', daily_tokens: 7 } as never }).where(eq(tenants.id, id))
    await gw.deps.identity.bus.publish({ t: 'tenant', id })
    const me = as(gw, user)
    const statuses = await Promise.all(Array.from({ length: 5 }, () => me.get('/api/v2/auth/me').then((r) => r.status)))
    expect(statuses).toEqual([200, 200, 200, 200, 200])
    const view = await as(gw, world.root).get(`/tenants/${id}`)
    expect(view.status).toBe(200)
    expect(view.body.quotas).toEqual({ daily_tokens: 7 })
  })

  test('list pages by id: every tenant exactly once, in order', async () => {
    const root = as(gw, world.root)
    for (let i = 0; i < 5; i++) expect((await root.post('/tenants', { id: slug(), name: `Paged ${i}` })).status).toBe(201)
    const { items, pages } = await collectPages((q) => root.get(`/tenants${q}`), 2)
    const ids = items.map((t) => t.id as string)
    const all = (await gw.deps.db.db.select({ id: tenants.id }).from(tenants)).map((t) => t.id)
    expect(ids).toEqual([...all].sort())
    expect(pages.every((n) => n <= 2)).toBe(true)
  })

  test('GET an unknown tenant → 404', async () => {
    expect((await as(gw, world.root).get('/tenants/no-such-tenant')).status).toBe(404)
  })
})

describe('who may manage tenants', () => {
  test('an admin lacks tenant:* → 403 on every tenant route', async () => {
    const admin = as(gw, world.admin)
    for (const reply of [
      await admin.post('/tenants', { id: slug(), name: 'x' }),
      await admin.get('/tenants'),
      await admin.get(`/tenants/${world.tenantId}`),
      await admin.patch(`/tenants/${world.tenantId}`, { name: 'mine now' }),
    ]) {
      expect(reply.status).toBe(403)
      expect(reply.body.code).toBe('PERMISSION_DENIED')
    }
  })

  test('a super_admin acting through X-Tenant-ID sees only that tenant; others are 404', async () => {
    const other = await adminWorld(gw)
    const root = as(gw, world.root)
    const scoped = { 'x-tenant-id': other.tenantId }
    const list = await root.get('/tenants', scoped)
    expect(list.body.items.map((t: { id: string }) => t.id)).toEqual([other.tenantId])
    expect((await root.get(`/tenants/${world.tenantId}`, scoped)).status).toBe(404)
    expect((await root.get(`/tenants/${other.tenantId}`, scoped)).status).toBe(200)
  })

  test('a super_admin cannot suspend their own tenant (400 SELF_LOCKOUT)', async () => {
    const reply = await as(gw, world.root).patch(`/tenants/${world.tenantId}`, { status: 'suspended' })
    expect(reply.status).toBe(400)
    expect(reply.body.code).toBe('SELF_LOCKOUT')
    const [row] = await gw.deps.db.db.select().from(tenants).where(eq(tenants.id, world.tenantId))
    expect(row!.status).toBe('active')
  })
})

describe('suspension and quotas take effect at once', () => {
  test("suspending → the tenant's existing tokens get 403 TENANT_SUSPENDED and live connections end; reactivating restores", async () => {
    const victim = await adminWorld(gw)
    const me = as(gw, victim.user)
    expect((await me.get('/api/v2/auth/me')).status).toBe(200) // warms the tenant cache
    const ended: string[] = []
    gw.deps.identity.live.register({ id: 'conn-1', kind: 'chat', tenantId: victim.tenantId, userId: victim.user.id, startedAt: Date.now(), end: (r) => ended.push(r) })

    const root = as(gw, world.root)
    expect((await root.patch(`/tenants/${victim.tenantId}`, { status: 'suspended' })).body.status).toBe('suspended')
    const refused = await me.get('/api/v2/auth/me')
    expect(refused.status).toBe(403)
    expect(refused.body.code).toBe('TENANT_SUSPENDED')
    expect(ended).toEqual(['token_revoked'])

    expect((await root.patch(`/tenants/${victim.tenantId}`, { status: 'active' })).status).toBe(200)
    expect((await me.get('/api/v2/auth/me')).status).toBe(200)
  })

  test('a new per-user rate quota applies to the next request', async () => {
    const victim = await adminWorld(gw)
    const user = await makeUser(gw, { tenantId: victim.tenantId })
    const me = as(gw, user)
    expect((await me.get('/api/v2/auth/me')).status).toBe(200)
    await as(gw, world.root).patch(`/tenants/${victim.tenantId}`, { quotas: { requests_per_minute_per_user: 1 } })
    const statuses = [(await me.get('/api/v2/auth/me')).status, (await me.get('/api/v2/auth/me')).status]
    expect(statuses).toContain(429)
  })
})
