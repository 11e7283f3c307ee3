import { sql } from 'drizzle-orm'
import { pgTable, text, unique, uniqueIndex } from 'drizzle-orm/pg-core'
import { oneOf, timestamps, timestamptz } from './columns'
import { tenants } from './tenants'

export const userStatuses = ['active', 'disabled'] as const
export type UserStatus = (typeof userStatuses)[number]

export const users = pgTable(
  'users',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id),
    email: text('email').notNull(),
    username: text('username').notNull(),
    passwordHash: text('password_hash').notNull(),
    roles: text('roles')
      .array()
      .notNull()
      .default(sql`'{user}'::text[]`),
    /** direct grants (`resource:action`), on top of the roles' grants */
    permissions: text('permissions')
      .array()
      .notNull()
      .default(sql`'{}'::text[]`),
    status: text('status', { enum: userStatuses }).notNull().default('active'),
    ...timestamps(),
    lastLoginAt: timestamptz('last_login_at'),
  },
  (t) => [
    // One account per address per tenant, whatever the case the user typed; the same address may exist in
    // another tenant. Look-ups must use lower(email) to hit this index.
    uniqueIndex('users_tenant_email_unique').on(t.tenantId, sql`lower(${t.email})`),
    // Target of composite foreign keys (a row can only point at a user of its own tenant) and the index for
    // tenant-scoped cursor pagination.
    unique('users_tenant_id_id_unique').on(t.tenantId, t.id),
    oneOf('users_status_check', t.status, userStatuses),
  ],
)

export type User = typeof users.$inferSelect
export type NewUser = typeof users.$inferInsert
