/**
 * Tenant breakout, generated from a table of routes: every admin route that names a resource answers
 * 404 for another tenant's resource — to its admin, to a holder of every admin grant, and to a
 * super_admin acting in their own tenant through X-Tenant-ID — and changes nothing; every list shows
 * only the acting tenant. The table must cover every mounted admin route, so a new one cannot slip by.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { auditLogs, roles, tenantPermissions, tenants, users } from '../../src/db/schema'
import { createTestApp, type TestApp } from '../helpers/app'
import { makeUser, type TestUser } from '../helpers/identity'
import { ADMIN, adminWorld, as, type Reply } from './helpers'

type Client = ReturnType<typeof as>

let gw: TestApp
let a: Awaited<ReturnType<typeof adminWorld>>
let b: Awaited<ReturnType<typeof adminWorld>>
const B_ROLE = 'b-only-role'
/** a live chat stream of tenant B, as the chat service registers one; its end() must never be called */
const bSessionEnded: string[] = []
let bSessionId: string

/** everything of tenant B an attack could touch, audit log included (a refusal must not write there) */
async function snapshotB() {
  const db = gw.deps.db.db
  return JSON.stringify(
    await Promise.all([
      db.select().from(tenants).where(eq(tenants.id, b.tenantId)),
      db.select().from(users).where(eq(users.tenantId, b.tenantId)).orderBy(users.id),
      db.select().from(roles).where(eq(roles.tenantId, b.tenantId)),
      db.select().from(tenantPermissions).where(eq(tenantPermissions.tenantId, b.tenantId)),
      db.select().from(auditLogs).where(eq(auditLogs.tenantId, b.tenantId)).orderBy(auditLogs.id),
    ]),
  )
}

interface Attacker {
  name: string
  client: () => Client
  /** may call tenant routes at all (an admin lacks tenant:* and is refused before any look-up) */
  tenantAdmin: boolean
}
let attackers: Attacker[]

beforeAll(async () => {
  gw = await createTestApp()
  ;[a, b] = await Promise.all([adminWorld(gw), adminWorld(gw)])
  expect((await as(gw, b.admin).post('/roles', { name: B_ROLE, permissions: ['audit:read'] })).status).toBe(201)
  expect((await as(gw, b.admin).put('/tenant-permissions', { permissions: ['chat:read'] })).status).toBe(200)
  const holder: TestUser = await makeUser(gw, {
    tenantId: a.tenantId,
    roles: [],
    permissions: ['tenant:admin', 'user:*', 'role:*', 'audit:read', 'chat:monitor', 'voice:monitor'],
  })
  bSessionId = `chat:${b.tenantId}:req-of-b`
  gw.deps.identity.live.register({ id: bSessionId, kind: 'chat', tenantId: b.tenantId, userId: b.user.id, startedAt: Date.now(), end: (r) => bSessionEnded.push(r) })
  attackers = [
    { name: "A's admin", client: () => as(gw, a.admin), tenantAdmin: false },
    { name: 'an A member holding every admin grant', client: () => as(gw, holder), tenantAdmin: true },
    { name: 'a super_admin acting in A (X-Tenant-ID)', client: () => as(gw, { ...a.root.auth, 'x-tenant-id': a.tenantId }), tenantAdmin: true },
  ]
}, 60_000)
afterAll(() => gw.close())

/** routes that name one resource; each call aims at tenant B's */
const resourceRoutes: Array<{ route: string; tenantRoute?: true; call: (c: Client) => Promise<Reply> }> = [
  { route: 'GET /users/:id', call: (c) => c.get(`/users/${b.user.id}`) },
  { route: 'PATCH /users/:id', call: (c) => c.patch(`/users/${b.user.id}`, { status: 'disabled', roles: ['admin'], username: 'pwned' }) },
  { route: 'PUT /users/:id/permissions', call: (c) => c.put(`/users/${b.user.id}/permissions`, { permissions: ['user:read'] }) },
  { route: 'DELETE /users/:id', call: (c) => c.del(`/users/${b.user.id}`) },
  { route: 'PATCH /roles/:name', call: (c) => c.patch(`/roles/${B_ROLE}`, { permissions: [] }) },
  { route: 'DELETE /roles/:name', call: (c) => c.del(`/roles/${B_ROLE}`) },
  { route: 'GET /tenants/:id', tenantRoute: true, call: (c) => c.get(`/tenants/${b.tenantId}`) },
  { route: 'PATCH /tenants/:id', tenantRoute: true, call: (c) => c.patch(`/tenants/${b.tenantId}`, { status: 'suspended', name: 'pwned' }) },
  { route: 'DELETE /sessions/:id', call: (c) => c.del(`/sessions/${encodeURIComponent(bSessionId)}`) },
]

/** list routes, and what in the answer would be tenant B's */
const listRoutes: Array<{ route: string; tenantRoute?: true; call: (c: Client) => Promise<Reply>; leaks: (body: any) => boolean }> = [
  { route: 'GET /users', call: (c) => c.get('/users?limit=100'), leaks: (body) => body.items.some((u: any) => u.tenant_id !== a.tenantId) },
  { route: 'GET /roles', call: (c) => c.get('/roles?limit=100'), leaks: (body) => body.items.some((r: any) => r.name === B_ROLE) },
  { route: 'GET /tenant-permissions', call: (c) => c.get('/tenant-permissions'), leaks: (body) => body.tenant_id !== a.tenantId || body.permissions.length > 0 },
  { route: 'GET /audit-logs', call: (c) => c.get('/audit-logs?limit=100'), leaks: (body) => body.items.some((l: any) => l.tenant_id !== a.tenantId) },
  { route: 'GET /stats', call: (c) => c.get('/stats'), leaks: (body) => body.tenant_id !== a.tenantId || body.users.total !== 4 },
  { route: 'GET /sessions', call: (c) => c.get('/sessions?limit=100'), leaks: (body) => body.items.some((s: any) => s.tenant_id !== a.tenantId) },
  { route: 'GET /tenants', tenantRoute: true, call: (c) => c.get('/tenants?limit=100'), leaks: (body) => body.items.some((t: any) => t.id !== a.tenantId) },
]

/** routes that take no tenant or resource of another tenant as input: they only ever write the acting tenant */
const EXEMPT = new Map([
  ['POST /tenants', 'creates a new tenant (super_admin only)'],
  ['POST /users', 'tenant_id in the body: see the TENANT_MISMATCH test below'],
  ['POST /roles', 'creates in the acting tenant'],
  ['PUT /tenant-permissions', "replaces the acting tenant's grants"],
])

describe('the tables cover every admin route', () => {
  test('each mounted admin route is in a table or exempt with a reason', () => {
    const covered = new Set([...resourceRoutes, ...listRoutes].map((r) => r.route))
    const mounted = gw.app.routes.filter((r) => r.path.startsWith(`${ADMIN}/`)).map((r) => `${r.method} ${r.path.slice(ADMIN.length)}`)
    expect(mounted.length).toBeGreaterThan(10)
    expect(mounted.filter((r) => !covered.has(r) && !EXEMPT.has(r))).toEqual([])
  })
})

describe("another tenant's resource is 404 and stays as it was", () => {
  for (const { route, tenantRoute, call } of resourceRoutes) {
    test(route, async () => {
      for (const attacker of attackers) {
        if (tenantRoute && !attacker.tenantAdmin) continue
        const before = await snapshotB()
        const reply = await call(attacker.client())
        expect({ attacker: attacker.name, status: reply.status, code: reply.body?.code }).toEqual({ attacker: attacker.name, status: 404, code: 'NOT_FOUND' })
        expect(JSON.stringify(reply.body)).not.toContain(b.user.email)
        expect(await snapshotB()).toBe(before)
      }
      // and B's user noticed nothing
      expect((await as(gw, b.user).get('/api/v2/auth/me')).status).toBe(200)
      expect(bSessionEnded).toEqual([])
    })
  }
})

describe("lists never show another tenant's rows", () => {
  for (const { route, tenantRoute, call, leaks } of listRoutes) {
    test(route, async () => {
      for (const attacker of attackers) {
        if (tenantRoute && !attacker.tenantAdmin) continue
        const reply = await call(attacker.client())
        expect({ attacker: attacker.name, status: reply.status }).toEqual({ attacker: attacker.name, status: 200 })
        expect({ attacker: attacker.name, leaks: leaks(reply.body) }).toEqual({ attacker: attacker.name, leaks: false })
      }
    })
  }

  test('asking a list for tenant B by name → 403 TENANT_MISMATCH, no rows', async () => {
    for (const path of [`/users?tenant_id=${b.tenantId}`, `/audit-logs?tenant_id=${b.tenantId}`, `/sessions?tenant_id=${b.tenantId}`]) {
      for (const attacker of attackers) {
        const reply = await attacker.client().get(path)
        expect({ attacker: attacker.name, path, status: reply.status, code: reply.body.code }).toEqual({ attacker: attacker.name, path, status: 403, code: 'TENANT_MISMATCH' })
        expect(reply.body.items).toBeUndefined()
      }
    }
  })

  test("creating a user in tenant B is refused (403 TENANT_MISMATCH) and adds no row", async () => {
    for (const attacker of attackers.filter((x) => !x.name.includes('super_admin'))) {
      const before = await snapshotB()
      const reply = await attacker.client().post('/users', { email: 'mole@example.com', password: 'password-1', tenant_id: b.tenantId })
      expect(reply.status).toBe(403)
      expect(reply.body.code).toBe('TENANT_MISMATCH')
      expect(await snapshotB()).toBe(before)
    }
  })
})
