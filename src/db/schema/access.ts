import { sql } from 'drizzle-orm'
import { index, pgTable, primaryKey, text, unique } from 'drizzle-orm/pg-core'
import { oneOf, timestamps, timestamptz } from './columns'
import { tenants } from './tenants'

/** A tenant's custom role; built-in roles (user, admin, super_admin) are data in code, not rows. */
export const roles = pgTable(
  'roles',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    permissions: text('permissions')
      .array()
      .notNull()
      .default(sql`'{}'::text[]`),
    ...timestamps(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.name] })],
)

export type Role = typeof roles.$inferSelect

/** Grants every member of a tenant holds (PUT /admin/tenant-permissions). */
export const tenantPermissions = pgTable('tenant_permissions', {
  tenantId: text('tenant_id')
    .primaryKey()
    .references(() => tenants.id, { onDelete: 'cascade' }),
  permissions: text('permissions')
    .array()
    .notNull()
    .default(sql`'{}'::text[]`),
  updatedAt: timestamptz('updated_at').notNull().defaultNow(),
})

export const sharePermissions = ['read', 'write'] as const

/** An owner's resource (conversation, document) shared with another user of the same tenant. */
export const resourceShares = pgTable(
  'resource_shares',
  {
    tenantId: text('tenant_id').notNull(),
    resourceType: text('resource_type').notNull(),
    resourceId: text('resource_id').notNull(),
    userId: text('user_id').notNull(),
    permission: text('permission', { enum: sharePermissions }).notNull(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (t) => [
    unique('resource_shares_unique').on(t.tenantId, t.resourceType, t.resourceId, t.userId),
    index('resource_shares_user_idx').on(t.tenantId, t.userId),
    oneOf('resource_shares_permission_check', t.permission, sharePermissions),
  ],
)

export const auditOutcomes = ['success', 'failure', 'denied'] as const

/** Every auth event and admin change: who, what, when, from where, outcome. Append-only. */
export const auditLogs = pgTable(
  'audit_logs',
  {
    id: text('id').primaryKey(),
    /** null only for events that name no tenant (a login for an unknown tenant) */
    tenantId: text('tenant_id'),
    actorId: text('actor_id'),
    actorType: text('actor_type').notNull(),
    action: text('action').notNull(),
    targetType: text('target_type'),
    targetId: text('target_id'),
    outcome: text('outcome', { enum: auditOutcomes }).notNull(),
    ip: text('ip'),
    userAgent: text('user_agent'),
    requestId: text('request_id'),
    details: text('details'),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (t) => [
    index('audit_logs_tenant_id_idx').on(t.tenantId, t.id),
    oneOf('audit_logs_outcome_check', t.outcome, auditOutcomes),
  ],
)

export type AuditLog = typeof auditLogs.$inferSelect
