import { sql } from 'drizzle-orm'
import { foreignKey, index, pgTable, text } from 'drizzle-orm/pg-core'
import { timestamptz } from './columns'
import { users } from './users'

/**
 * A login: one per successful password login, shared by every access and refresh token issued from it.
 * Revoking it (logout, refresh-token reuse) ends all of them.
 */
export const loginSessions = pgTable(
  'login_sessions',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    userId: text('user_id').notNull(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    expiresAt: timestamptz('expires_at').notNull(),
    revokedAt: timestamptz('revoked_at'),
    revokedReason: text('revoked_reason'),
    ip: text('ip'),
    userAgent: text('user_agent'),
  },
  (t) => [
    foreignKey({ columns: [t.tenantId, t.userId], foreignColumns: [users.tenantId, users.id] }).onDelete('cascade'),
    index('login_sessions_tenant_user_idx').on(t.tenantId, t.userId),
  ],
)

/**
 * Refresh tokens rotate: each use marks the row used and issues its successor. Presenting a used one is
 * reuse — the session is revoked. Only the SHA-256 of the token is stored.
 */
export const refreshTokens = pgTable(
  'refresh_tokens',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    sessionId: text('session_id')
      .notNull()
      .references(() => loginSessions.id, { onDelete: 'cascade' }),
    tokenHash: text('token_hash').notNull().unique(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    expiresAt: timestamptz('expires_at').notNull(),
    usedAt: timestamptz('used_at'),
  },
  (t) => [index('refresh_tokens_tenant_session_idx').on(t.tenantId, t.sessionId)],
)

/**
 * The durable copy of the jti denylist: the store holds the hot copy; this one survives a Redis restart
 * and is loaded back into the store when the store comes back empty.
 */
export const revokedTokens = pgTable(
  'revoked_tokens',
  {
    jti: text('jti').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    userId: text('user_id').notNull(),
    /** the token's own exp: the row is useless after it */
    expiresAt: timestamptz('expires_at').notNull(),
    revokedAt: timestamptz('revoked_at').notNull().defaultNow(),
    reason: text('reason').notNull(),
  },
  // start-up and store-recovery load every unexpired row, across tenants
  (t) => [index('revoked_tokens_expires_idx').on(t.expiresAt)],
)

export type LoginSession = typeof loginSessions.$inferSelect
export type RefreshToken = typeof refreshTokens.$inferSelect

export const apiKeys = pgTable(
  'api_keys',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    /** the creator: the key acts as this user, with at most the creator's permissions */
    userId: text('user_id').notNull(),
    name: text('name').notNull(),
    /** the first characters of the secret, shown in lists so a key can be recognised */
    prefix: text('prefix').notNull(),
    keyHash: text('key_hash').notNull().unique(),
    permissions: text('permissions')
      .array()
      .notNull()
      .default(sql`'{}'::text[]`),
    expiresAt: timestamptz('expires_at'),
    revokedAt: timestamptz('revoked_at'),
    lastUsedAt: timestamptz('last_used_at'),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (t) => [
    foreignKey({ columns: [t.tenantId, t.userId], foreignColumns: [users.tenantId, users.id] }).onDelete('cascade'),
    index('api_keys_tenant_user_idx').on(t.tenantId, t.userId),
  ],
)

export type ApiKey = typeof apiKeys.$inferSelect
