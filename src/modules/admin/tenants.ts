/**
 * Tenants. Creating one is a super_admin's act; reading and updating one is scoped like everything
 * else: a super_admin acting globally sees every tenant, anyone else (a tenant:admin grant, or a
 * super_admin acting through X-Tenant-ID) only the tenant they act in — any other id is 404.
 */
import { and, asc, eq, gt, type SQL } from 'drizzle-orm'
import { type Database, pgErrorCode } from '../../db'
import { isQuotaValue, QUOTA_MAX, storedQuotas, type Tenant, type TenantQuotas, tenants } from '../../db/schema'
import { AppError } from '../../errors'
import type { InvalidationBus } from '../auth/invalidation'
import { type Actor, type Audited, adminErrors, type PageRequest, pageOf } from './actor'

export function tenantView(row: Tenant) {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    quotas: storedQuotas(row.quotas),
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  }
}

export interface TenantPatch {
  name?: string
  status?: 'active' | 'suspended'
  quotas?: Record<string, number>
}

export const QUOTA_KEYS: ReadonlySet<string> = new Set<keyof TenantQuotas>([
  'requests_per_minute_per_user',
  'requests_per_minute',
  'concurrent_streams_per_user',
  'concurrent_voice_sessions',
  'concurrent_voice_sessions_per_user',
  'daily_tokens',
])

/** 400 naming unknown keys: a misspelt quota silently ignored would leave the tenant unlimited */
function validQuotas(quotas: Record<string, number>): TenantQuotas {
  const unknown = Object.keys(quotas).filter((k) => !QUOTA_KEYS.has(k))
  if (unknown.length) throw adminErrors.validation('quotas', 'Unknown quota keys', unknown)
  // Elysia checks a record's numeric values as numeric strings without converting them ("3", "-5", "0x10")
  const invalid = Object.keys(quotas).filter((k) => !isQuotaValue(quotas[k]))
  if (invalid.length) throw adminErrors.validation('quotas', `Quota values must be integers from 0 to ${QUOTA_MAX}`, invalid)
  return quotas as TenantQuotas
}

export function createTenantAdmin({ db, bus, audited }: { db: Database; bus: InvalidationBus; audited: Audited }) {
  const visible = (actor: Actor): SQL | undefined => (actor.global ? undefined : eq(tenants.id, actor.tenantId))

  return {
    async list(actor: Actor, page: PageRequest) {
      const rows = await db
        .select()
        .from(tenants)
        .where(and(visible(actor), page.cursor ? gt(tenants.id, page.cursor) : undefined))
        .orderBy(asc(tenants.id))
        .limit(page.limit + 1)
      return pageOf(rows.map(tenantView), page.limit, (t) => t.id)
    },

    async get(actor: Actor, id: string) {
      const [row] = await db.select().from(tenants).where(and(eq(tenants.id, id), visible(actor)))
      if (!row) throw adminErrors.notFound('Tenant')
      return tenantView(row)
    },

    create(actor: Actor, input: { id: string; name: string; quotas?: Record<string, number> }) {
      return audited(actor, 'admin.tenant.create', { type: 'tenant', id: input.id }, async () => {
        if (!actor.superAdmin) throw adminErrors.denied('Only a super_admin may create tenants', { permission: 'tenant:admin' })
        const quotas = validQuotas(input.quotas ?? {})
        try {
          const [row] = await db.insert(tenants).values({ id: input.id, name: input.name, quotas }).returning()
          // an id looked up before it existed may be cached as "no such tenant"
          await bus.publish({ t: 'tenant', id: row!.id })
          return { value: tenantView(row!), tenantId: row!.id, target: { type: 'tenant', id: row!.id }, details: { name: row!.name } }
        } catch (err) {
          if (pgErrorCode(err) === '23505') throw new AppError(409, 'TENANT_EXISTS', `Tenant ${input.id} already exists`)
          throw err
        }
      })
    },

    update(actor: Actor, id: string, patch: TenantPatch) {
      return audited(actor, 'admin.tenant.update', { type: 'tenant', id }, async () => {
        // Suspending your own tenant would lock you out with no way back in through the API.
        if (patch.quotas) validQuotas(patch.quotas)
        if (patch.status === 'suspended' && id === actor.homeTenantId) {
          throw adminErrors.selfLockout('You cannot suspend your own tenant')
        }
        const [before] = await db.select().from(tenants).where(and(eq(tenants.id, id), visible(actor)))
        if (!before) throw adminErrors.notFound('Tenant')
        const [row] = await db.update(tenants).set(patch).where(eq(tenants.id, id)).returning()
        // `ended` ends the tenant's live streams and voice sessions on every instance
        await bus.publish(patch.status === 'suspended' ? { t: 'tenant', id, ended: true } : { t: 'tenant', id })
        const changes = Object.fromEntries(
          Object.keys(patch).map((k) => [k, { from: before[k as keyof TenantPatch], to: row![k as keyof TenantPatch] }]),
        )
        return { value: tenantView(row!), tenantId: id, target: { type: 'tenant', id }, details: { changes } }
      })
    },
  }
}

export type TenantAdmin = ReturnType<typeof createTenantAdmin>
