/**
 * A tenant's custom roles and its tenant-wide grants. Both are cached with the tenant by the auth layer,
 * so every change publishes `{t:'tenant'}`; that is what makes a new grant work on the very next request.
 * Always the acting tenant: a role of another tenant is simply not found.
 */
import { and, asc, eq, gt, sql } from 'drizzle-orm'
import { type Database, pgErrorCode } from '../../db'
import { type Role, roles, tenantPermissions, users } from '../../db/schema'
import { AppError } from '../../errors'
import { BUILT_IN_ROLE_NAMES, type BuiltInRoleName, builtInRoleGrants, isBuiltInRole } from '../access'
import type { InvalidationBus } from '../auth/invalidation'
import { type Actor, type Audited, adminErrors, type PageRequest, pageOf } from './actor'
import { assertCanGrant, assertNoSelfDemotion, type CustomRoles, validPermissions } from './guard'

export async function loadCustomRoles(db: Database, tenantId: string): Promise<Map<string, readonly string[]>> {
  const rows = await db.select({ name: roles.name, permissions: roles.permissions }).from(roles).where(eq(roles.tenantId, tenantId))
  return new Map(rows.map((r) => [r.name, r.permissions]))
}

const builtInView = (name: string) => ({ name, permissions: [...builtInRoleGrants(name)], built_in: true, created_at: null, updated_at: null })

const roleView = (row: Role) => ({
  name: row.name,
  permissions: row.permissions,
  built_in: false,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
})

function refuseBuiltIn(name: string): void {
  if (isBuiltInRole(name)) throw new AppError(400, 'BUILT_IN_ROLE', `${name} is a built-in role and cannot be changed`)
}

export function createRoleAdmin({ db, bus, audited }: { db: Database; bus: InvalidationBus; audited: Audited }) {
  /**
   * A change to a role the actor holds, or to their own tenant's grants, must not take anything away
   * from the actor (a super_admin acting in another tenant holds none of that tenant's roles or grants).
   */
  async function assertSelfKeeps(tx: Database, actor: Actor, tenantId: string, after: { customRoles?: CustomRoles; tenantGrants?: readonly string[] }) {
    if (tenantId !== actor.homeTenantId) return
    assertNoSelfDemotion(actor, {
      roles: actor.subject.roles,
      directGrants: actor.subject.directGrants,
      customRoles: after.customRoles ?? (await loadCustomRoles(tx, tenantId)),
      tenantGrants: after.tenantGrants ?? actor.subject.tenantGrants,
    })
  }

  /** the role with `name` replaced (or removed when `permissions` is null), as the tenant would have it */
  async function customRolesWith(tx: Database, tenantId: string, name: string, permissions: readonly string[] | null) {
    const map = await loadCustomRoles(tx, tenantId)
    if (permissions === null) map.delete(name)
    else map.set(name, permissions)
    return map
  }

  async function existing(tx: Database, tenantId: string, name: string): Promise<Role> {
    const [row] = await tx.select().from(roles).where(and(eq(roles.tenantId, tenantId), eq(roles.name, name))).for('update')
    if (!row) throw adminErrors.notFound('Role')
    return row
  }

  return {
    /** built-in roles first (with their grants), then custom ones by name; the cursor is the last name */
    async list(actor: Actor, page: PageRequest) {
      // Custom names can never be built-in names, so the cursor alone says where the last page stopped.
      const cursor = page.cursor
      const inBuiltIns = cursor === undefined || isBuiltInRole(cursor)
      const builtIns = inBuiltIns ? BUILT_IN_ROLE_NAMES.slice(cursor === undefined ? 0 : BUILT_IN_ROLE_NAMES.indexOf(cursor as BuiltInRoleName) + 1) : []
      const rows = await db
        .select()
        .from(roles)
        .where(and(eq(roles.tenantId, actor.tenantId), inBuiltIns ? undefined : gt(roles.name, cursor!)))
        .orderBy(asc(roles.name))
        .limit(page.limit + 1)
      return pageOf([...builtIns.map(builtInView), ...rows.map(roleView)], page.limit, (r) => r.name)
    },

    create(actor: Actor, input: { name: string; permissions: string[] }) {
      const tenantId = actor.tenantId
      return audited(actor, 'admin.role.create', { type: 'role', id: input.name }, async () => {
        refuseBuiltIn(input.name)
        const permissions = validPermissions(input.permissions)
        assertCanGrant(actor, permissions)
        try {
          const [row] = await db.insert(roles).values({ tenantId, name: input.name, permissions }).returning()
          await bus.publish({ t: 'tenant', id: tenantId })
          return { value: roleView(row!), tenantId, target: { type: 'role', id: row!.name }, details: { permissions } }
        } catch (err) {
          if (pgErrorCode(err) === '23505') throw new AppError(409, 'ROLE_EXISTS', `Role ${input.name} already exists`)
          throw err
        }
      })
    },

    update(actor: Actor, name: string, input: { permissions: string[] }) {
      const tenantId = actor.tenantId
      return audited(actor, 'admin.role.update', { type: 'role', id: name }, async () => {
        refuseBuiltIn(name)
        const permissions = validPermissions(input.permissions)
        const { before, after } = await db.transaction(async (tx) => {
          const before = await existing(tx, tenantId, name)
          // neither hand out nor take away what the actor does not hold
          assertCanGrant(actor, [...permissions, ...before.permissions])
          if (actor.subject.roles.includes(name)) await assertSelfKeeps(tx, actor, tenantId, { customRoles: await customRolesWith(tx, tenantId, name, permissions) })
          const [after] = await tx
            .update(roles)
            .set({ permissions })
            .where(and(eq(roles.tenantId, tenantId), eq(roles.name, name)))
            .returning()
          return { before, after: after! }
        })
        await bus.publish({ t: 'tenant', id: tenantId })
        return { value: roleView(after), tenantId, target: { type: 'role', id: name }, details: { from: before.permissions, to: after.permissions } }
      })
    },

    /**
     * Deletes the role and takes its name off every member, so a role created later under the same
     * name does not silently grant its permissions to the old holders.
     */
    remove(actor: Actor, name: string) {
      const tenantId = actor.tenantId
      return audited(actor, 'admin.role.delete', { type: 'role', id: name }, async () => {
        refuseBuiltIn(name)
        const { before, holders } = await db.transaction(async (tx) => {
          const before = await existing(tx, tenantId, name)
          assertCanGrant(actor, before.permissions)
          if (actor.subject.roles.includes(name)) await assertSelfKeeps(tx, actor, tenantId, { customRoles: await customRolesWith(tx, tenantId, name, null) })
          await tx.delete(roles).where(and(eq(roles.tenantId, tenantId), eq(roles.name, name)))
          const holders = await tx
            .update(users)
            .set({ roles: sql`array_remove(${users.roles}, ${name})` })
            .where(and(eq(users.tenantId, tenantId), sql`${name} = any(${users.roles})`))
            .returning({ id: users.id })
          return { before, holders }
        })
        await bus.publish({ t: 'tenant', id: tenantId })
        for (const h of holders) await bus.publish({ t: 'user', tenant: tenantId, id: h.id })
        const details = { permissions: before.permissions, removed_from_users: holders.length }
        return { value: undefined, tenantId, target: { type: 'role', id: name }, details }
      })
    },

    async getTenantPermissions(actor: Actor) {
      const [row] = await db.select().from(tenantPermissions).where(eq(tenantPermissions.tenantId, actor.tenantId))
      return { tenant_id: actor.tenantId, permissions: row?.permissions ?? [], updated_at: row?.updatedAt.toISOString() ?? null }
    },

    setTenantPermissions(actor: Actor, input: { permissions: string[] }) {
      const tenantId = actor.tenantId
      return audited(actor, 'admin.tenant_permissions.set', { type: 'tenant_permissions', id: tenantId }, async () => {
        const permissions = validPermissions(input.permissions)
        const { before, after } = await db.transaction(async (tx) => {
          const [current] = await tx.select().from(tenantPermissions).where(eq(tenantPermissions.tenantId, tenantId)).for('update')
          const before = current?.permissions ?? []
          assertCanGrant(actor, [...permissions, ...before])
          await assertSelfKeeps(tx, actor, tenantId, { tenantGrants: permissions })
          const [after] = await tx
            .insert(tenantPermissions)
            .values({ tenantId, permissions })
            .onConflictDoUpdate({ target: tenantPermissions.tenantId, set: { permissions, updatedAt: new Date() } })
            .returning()
          return { before, after: after! }
        })
        await bus.publish({ t: 'tenant', id: tenantId })
        const value = { tenant_id: tenantId, permissions: after.permissions, updated_at: after.updatedAt.toISOString() }
        return { value, tenantId, target: { type: 'tenant_permissions', id: tenantId }, details: { from: before, to: after.permissions } }
      })
    },
  }
}

export type RoleAdmin = ReturnType<typeof createRoleAdmin>
