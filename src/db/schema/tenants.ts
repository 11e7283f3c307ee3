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
