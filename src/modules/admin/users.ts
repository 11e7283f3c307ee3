/**
 * Users of a tenant. Every query is filtered by the acting tenant unless the actor is a super_admin
 * acting globally, so another tenant's user is simply not found (404) and nothing about it changes.
 * Every change is audited and published on the invalidation bus, so every instance drops its cached copy.
 */
import { and, desc, eq, inArray, lt, type SQL } from 'drizzle-orm'
import { type Database, pgErrorCode } from '../../db'
import { conversations, resourceShares, tenants, type User, users } from '../../db/schema'
import { AppError } from '../../errors'
import { insertAccount } from '../auth/accounts'
import type { InvalidationBus } from '../auth/invalidation'
import { type Actor, type Audited, adminErrors, listScope, type PageRequest, pageOf } from './actor'
import { assertCanGrant, assertCanManageUser, assertNoSelfDemotion, assignableRoles, type CustomRoles, validPermissions } from './guard'
import { loadCustomRoles } from './roles'

export function userView(row: User) {
  return {
    id: row.id,
    email: row.email,
    username: row.username,
    tenant_id: row.tenantId,
    roles: row.roles,
    permissions: row.permissions,
    status: row.status,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    last_login_at: row.lastLoginAt?.toISOString() ?? null,
  }
}

export interface CreateUserInput {
  email: string
  password: string
  username?: string
  roles?: string[]
  tenant_id?: string
}

export interface UserPatch {
  roles?: string[]
  status?: 'active' | 'disabled'
  username?: string
}

export function createUserAdmin({ db, bus, audited }: { db: Database; bus: InvalidationBus; audited: Audited }) {
  const visible = (actor: Actor): SQL | undefined => (actor.global ? undefined : eq(users.tenantId, actor.tenantId))

  /** the user if the actor may see it, locked for the rest of the transaction; 404 otherwise */
  async function target(tx: Database, actor: Actor, id: string): Promise<{ user: User; customRoles: CustomRoles }> {
    const [user] = await tx.select().from(users).where(and(eq(users.id, id), visible(actor))).for('update')
    if (!user) throw adminErrors.notFound('User')
    return { user, customRoles: await loadCustomRoles(tx, user.tenantId) }
  }

  /** the actor's own grant sources with some replaced, for the self-lockout check */
  function selfAfter(actor: Actor, customRoles: CustomRoles, change: { roles?: readonly string[]; directGrants?: readonly string[] }) {
    return {
      roles: change.roles ?? actor.subject.roles,
      directGrants: change.directGrants ?? actor.subject.directGrants,
      customRoles,
      tenantGrants: actor.subject.tenantGrants,
    }
  }

  return {
    async list(actor: Actor, filter: { tenantId?: string }, page: PageRequest) {
      const tenantId = listScope(actor, filter.tenantId)
      const rows = await db
        .select()
        .from(users)
        .where(and(tenantId !== null ? eq(users.tenantId, tenantId) : undefined, page.cursor ? lt(users.id, page.cursor) : undefined))
        .orderBy(desc(users.id))
        .limit(page.limit + 1)
      return pageOf(rows.map(userView), page.limit, (u) => u.id)
    },

    async get(actor: Actor, id: string) {
      const [row] = await db.select().from(users).where(and(eq(users.id, id), visible(actor)))
      if (!row) throw adminErrors.notFound('User')
      return userView(row)
    },

    create(actor: Actor, input: CreateUserInput) {
      return audited(actor, 'admin.user.create', undefined, async () => {
        const tenantId = input.tenant_id ?? actor.tenantId
        if (tenantId !== actor.tenantId && !actor.superAdmin) throw adminErrors.tenantMismatch()
        const [tenant] = await db.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, tenantId))
        if (!tenant) throw adminErrors.validation('tenant_id', 'Unknown tenant', [tenantId])
        const roles = assignableRoles(actor, input.roles ?? ['user'], await loadCustomRoles(db, tenantId))
        const row = await insertAccount(db, { tenantId, email: input.email, password: input.password, username: input.username, roles })
        // an id is never cached before it exists, but "every change publishes" keeps this obviously right
        await bus.publish({ t: 'user', tenant: tenantId, id: row.id })
        return { value: userView(row), tenantId, target: { type: 'user', id: row.id }, details: { roles } }
      })
    },

    update(actor: Actor, id: string, patch: UserPatch) {
      return audited(actor, 'admin.user.update', { type: 'user', id }, async () => {
        const { before, after } = await db.transaction(async (tx) => {
          const { user, customRoles } = await target(tx, actor, id)
          assertCanManageUser(actor, user, customRoles)
          const roles = patch.roles && assignableRoles(actor, patch.roles, customRoles)
          if (user.id === actor.id) {
            if (patch.status === 'disabled') throw adminErrors.selfLockout('You cannot disable yourself')
            if (roles) assertNoSelfDemotion(actor, selfAfter(actor, customRoles, { roles }))
          }
          const username = patch.username?.trim()
          if (username === '') throw adminErrors.validation('username', 'Username must not be blank')
          const [after] = await tx
            .update(users)
            .set({ ...patch, ...(roles && { roles }), ...(username !== undefined && { username }) })
            .where(eq(users.id, user.id))
            .returning()
          return { before: user, after: after! }
        })
        // `ended` ends a disabled user's live streams and voice sessions on every instance
        await bus.publish({ t: 'user', tenant: after.tenantId, id, ...(after.status === 'disabled' && { ended: true }) })
        const changes = Object.fromEntries(
          Object.keys(patch).map((k) => [k, { from: before[k as keyof UserPatch], to: after[k as keyof UserPatch] }]),
        )
        return { value: userView(after), tenantId: after.tenantId, target: { type: 'user', id }, details: { changes } }
      })
    },

    setPermissions(actor: Actor, id: string, permissions: string[]) {
      return audited(actor, 'admin.user.permissions', { type: 'user', id }, async () => {
        const wanted = validPermissions(permissions)
        const { before, after } = await db.transaction(async (tx) => {
          const { user, customRoles } = await target(tx, actor, id)
          assertCanManageUser(actor, user, customRoles)
          assertCanGrant(actor, wanted)
          if (user.id === actor.id) assertNoSelfDemotion(actor, selfAfter(actor, customRoles, { directGrants: wanted }))
          const [after] = await tx.update(users).set({ permissions: wanted }).where(eq(users.id, user.id)).returning()
          return { before: user, after: after! }
        })
        await bus.publish({ t: 'user', tenant: after.tenantId, id })
        const details = { from: before.permissions, to: after.permissions }
        return { value: userView(after), tenantId: after.tenantId, target: { type: 'user', id }, details }
      })
    },

    /**
     * Deletes the account and what only it owns: its conversations (their messages cascade), shares of
     * and to them, login sessions and API keys (cascade). Rows of features that keep a user's data
     * elsewhere block the delete (409): disable the user instead.
     */
    remove(actor: Actor, id: string) {
      return audited(actor, 'admin.user.delete', { type: 'user', id }, async () => {
        if (id === actor.id) throw adminErrors.selfLockout('You cannot delete yourself')
        let deleted: User
        try {
          deleted = await db.transaction(async (tx) => {
            const { user, customRoles } = await target(tx, actor, id)
            assertCanManageUser(actor, user, customRoles)
            const owned = and(eq(conversations.tenantId, user.tenantId), eq(conversations.userId, user.id))
            const convIds = (await tx.select({ id: conversations.id }).from(conversations).where(owned)).map((c) => c.id)
            await tx.delete(resourceShares).where(and(eq(resourceShares.tenantId, user.tenantId), eq(resourceShares.userId, user.id)))
            if (convIds.length) {
              await tx
                .delete(resourceShares)
                .where(and(eq(resourceShares.tenantId, user.tenantId), eq(resourceShares.resourceType, 'conversation'), inArray(resourceShares.resourceId, convIds)))
              await tx.delete(conversations).where(owned)
            }
            await tx.delete(users).where(eq(users.id, user.id))
            return user
          })
        } catch (err) {
          if (pgErrorCode(err) === '23503') throw new AppError(409, 'USER_IN_USE', 'The user still owns data; disable the account instead')
          throw err
        }
        await bus.publish({ t: 'user', tenant: deleted.tenantId, id, ended: true })
        return { value: undefined, tenantId: deleted.tenantId, target: { type: 'user', id }, details: { email: deleted.email } }
      })
    },
  }
}

export type UserAdmin = ReturnType<typeof createUserAdmin>
