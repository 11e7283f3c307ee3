import { jsonb, pgTable, text } from 'drizzle-orm/pg-core'
import { oneOf, timestamps } from './columns'

export const tenantStatuses = ['active', 'suspended'] as const
export type TenantStatus = (typeof tenantStatuses)[number]

/** Per-tenant limits (contract §7); absent keys fall back to the gateway defaults, 0 means unlimited. */
export interface TenantQuotas {
  requests_per_minute_per_user?: number
  requests_per_minute?: number
  concurrent_streams_per_user?: number
  concurrent_voice_sessions?: number
  concurrent_voice_sessions_per_user?: number
  daily_tokens?: number
}

export const QUOTA_MAX = 2_147_483_647

/** whether a quota value is one the limiters accept: an integer in [0, QUOTA_MAX] */
export function isQuotaValue(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= QUOTA_MAX
}

/**
 * The quotas of a stored row with any value the limiters cannot use dropped (so it falls back to the
 * default): rows written before values were checked held numeric strings, which failed every request.
 */
export function storedQuotas(raw: unknown): TenantQuotas {
  if (!raw || typeof raw !== 'object') return {}
  return Object.fromEntries(Object.entries(raw).filter(([, v]) => isQuotaValue(v))) as TenantQuotas
}

export interface TenantSettings {
  /** whether POST /auth/register may create users in this tenant */
  allow_signup?: boolean
  [key: string]: unknown
}

export const tenants = pgTable(
  'tenants',
  {
    /** a human-chosen slug such as `default`, not a generated id: it appears in URLs and tokens */
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    status: text('status', { enum: tenantStatuses }).notNull().default('active'),
    quotas: jsonb('quotas').$type<TenantQuotas>().notNull().default({}),
    settings: jsonb('settings').$type<TenantSettings>().notNull().default({}),
    ...timestamps(),
  },
  (t) => [oneOf('tenants_status_check', t.status, tenantStatuses)],
)

export type Tenant = typeof tenants.$inferSelect
export type NewTenant = typeof tenants.$inferInsert
