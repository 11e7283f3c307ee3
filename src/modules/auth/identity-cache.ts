/**
 * Users and tenants as the auth path needs them, cached in-process. Entries live at most `ttlMs` (a
 * backstop); every change is pushed over the invalidation bus, so it takes effect on every instance at once.
 */
import { eq } from 'drizzle-orm'
import type { Database } from '../../db'
import { roles, storedQuotas, type TenantQuotas, tenantPermissions, tenants, users } from '../../db/schema'
import type { InvalidationBus } from './invalidation'

export interface IdentityUser {
  readonly id: string
  readonly tenantId: string
  readonly email: string
  readonly username: string
  readonly status: 'active' | 'disabled'
  readonly roles: readonly string[]
  readonly permissions: readonly string[]
}

export interface IdentityTenant {
  readonly id: string
  readonly name: string
  readonly status: 'active' | 'suspended'
  readonly quotas: TenantQuotas
  /** grants every member holds */
  readonly grants: readonly string[]
  /** custom roles by name */
  readonly customRoles: ReadonlyMap<string, readonly string[]>
}

interface Entry<T> {
  value: T | null
  at: number
}

export interface IdentityCache {
  user(id: string): Promise<IdentityUser | null>
  tenant(id: string): Promise<IdentityTenant | null>
  /** the cached entry if it is fresh, without loading (undefined: not cached or stale) */
  peekUser(id: string): IdentityUser | null | undefined
  peekTenant(id: string): IdentityTenant | null | undefined
}

export function createIdentityCache({
  db,
  bus,
  ttlMs = 60_000,
}: {
  db: Database
  bus: InvalidationBus
  ttlMs?: number
}): IdentityCache {
  const userEntries = new Map<string, Entry<IdentityUser>>()
  const tenantEntries = new Map<string, Entry<IdentityTenant>>()
  const loading = new Map<string, Promise<unknown>>()

  bus.onMessage((m) => {
    if (m.t === 'user') userEntries.delete(m.id)
    else if (m.t === 'tenant') tenantEntries.delete(m.id)
    else if (m.t === 'all') {
      userEntries.clear()
      tenantEntries.clear()
    }
  })

  /** one load per key at a time, and an invalidation during a load is not overwritten by stale data */
  async function cached<T>(
    entries: Map<string, Entry<T>>,
    kind: string,
    id: string,
    load: () => Promise<T | null>,
  ): Promise<T | null> {
    const entry = entries.get(id)
    if (entry && performance.now() - entry.at < ttlMs) return entry.value
    const flightKey = `${kind}:${id}`
    const inflight = loading.get(flightKey) as Promise<T | null> | undefined
    if (inflight) return inflight
    const started = performance.now()
    const promise = load()
      .then((value) => {
        const current = entries.get(id)
        if (!current || current.at < started) entries.set(id, { value, at: performance.now() })
        if (entries.size > 50_000) entries.delete(entries.keys().next().value as string)
        return value
      })
      .finally(() => loading.delete(flightKey))
    loading.set(flightKey, promise)
    return promise
  }

  function peek<T>(entries: Map<string, Entry<T>>, id: string): T | null | undefined {
    const entry = entries.get(id)
    return entry && performance.now() - entry.at < ttlMs ? entry.value : undefined
  }

  return {
    peekUser: (id) => peek(userEntries, id),
    peekTenant: (id) => peek(tenantEntries, id),
    user: (id) =>
      cached(userEntries, 'user', id, async () => {
        const [row] = await db
          .select({
            id: users.id,
            tenantId: users.tenantId,
            email: users.email,
            username: users.username,
            status: users.status,
            roles: users.roles,
            permissions: users.permissions,
          })
          .from(users)
          .where(eq(users.id, id))
        return row ?? null
      }),
    tenant: (id) =>
      cached(tenantEntries, 'tenant', id, async () => {
        const [row] = await db.select().from(tenants).where(eq(tenants.id, id))
        if (!row) return null
        const [grants, custom] = await Promise.all([
          db.select().from(tenantPermissions).where(eq(tenantPermissions.tenantId, id)),
          db.select().from(roles).where(eq(roles.tenantId, id)),
        ])
        return {
          id: row.id,
          name: row.name,
          status: row.status,
          quotas: storedQuotas(row.quotas),
          grants: grants[0]?.permissions ?? [],
          customRoles: new Map(custom.map((r) => [r.name, r.permissions])),
        }
      }),
  }
}
