/**
 * API keys for services: `vh_` + 32 random bytes, shown once, stored as SHA-256. A key acts as its
 * creator with at most the creator's permissions (checked at creation and on every request).
 */
import { and, desc, eq, lt } from 'drizzle-orm'
import type { Database } from '../../db'
import { apiKeys } from '../../db/schema'
import { AppError } from '../../errors'
import { newId } from '../../lib/ids'
import { grantsCover, isValidPermission } from '../access'
import type { InvalidationBus } from './invalidation'

export const API_KEY_PREFIX = 'vh_'

export function hashSecret(secret: string): string {
  return new Bun.CryptoHasher('sha256').update(secret).digest('hex')
}

export interface ApiKeyRecord {
  readonly id: string
  readonly tenantId: string
  readonly userId: string
  readonly permissions: readonly string[]
  readonly expiresAt: Date | null
  readonly revokedAt: Date | null
}

export interface ApiKeyView {
  id: string
  name: string
  prefix: string
  permissions: string[]
  expires_at: string | null
  revoked_at: string | null
  last_used_at: string | null
  created_at: string
}

function view(row: typeof apiKeys.$inferSelect): ApiKeyView {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    permissions: row.permissions,
    expires_at: row.expiresAt?.toISOString() ?? null,
    revoked_at: row.revokedAt?.toISOString() ?? null,
    last_used_at: row.lastUsedAt?.toISOString() ?? null,
    created_at: row.createdAt.toISOString(),
  }
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-](\d{2}):(\d{2}))$/

/**
 * An RFC 3339 date-time, or null. `new Date()` alone accepts a bare date, rolls 2030-02-30 over into March
 * and takes six-digit years that Postgres refuses.
 */
export function rfc3339(text: string): Date | null {
  const m = RFC3339.exec(text)
  if (!m) return null
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const calendar = new Date(Date.UTC(year, month - 1, day))
  if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day) return null
  if (hour > 23 || minute > 59 || second > 59) return null
  if (m[9] !== undefined && (Number(m[9]) > 23 || Number(m[10]) > 59)) return null
  const at = new Date(text)
  return Number.isNaN(at.getTime()) ? null : at
}

export function createApiKeys({ db, bus, cacheTtlMs = 30_000 }: { db: Database; bus: InvalidationBus; cacheTtlMs?: number }) {
  const byHash = new Map<string, { record: ApiKeyRecord | null; at: number }>()
  const lastTouched = new Map<string, number>()
  bus.onMessage((m) => {
    if (m.t === 'apikey') byHash.delete(m.hash)
    else if (m.t === 'all') byHash.clear()
  })

  return {
    async create(
      owner: { tenantId: string; userId: string; grants: readonly string[] },
      input: { name: string; permissions: string[]; expires_at?: string },
    ): Promise<ApiKeyView & { key: string }> {
      const malformed = input.permissions.filter((p) => !isValidPermission(p))
      if (malformed.length) throw new AppError(400, 'VALIDATION_FAILED', 'Unknown permissions', { permissions: malformed })
      const wider = input.permissions.filter((p) => !grantsCover(owner.grants, p))
      if (wider.length) {
        throw new AppError(403, 'PERMISSION_DENIED', 'An API key cannot hold permissions its creator lacks', { permissions: wider })
      }
      const expiresAt = input.expires_at ? rfc3339(input.expires_at) : null
      if (input.expires_at && (!expiresAt || expiresAt.getTime() <= Date.now())) {
        throw new AppError(400, 'VALIDATION_FAILED', 'expires_at must be a future RFC 3339 time', [{ field: 'expires_at' }])
      }
      const secret = API_KEY_PREFIX + Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url')
      const [row] = await db
        .insert(apiKeys)
        .values({
          id: newId('key'),
          tenantId: owner.tenantId,
          userId: owner.userId,
          name: input.name,
          prefix: secret.slice(0, 10),
          keyHash: hashSecret(secret),
          permissions: [...new Set(input.permissions)],
          expiresAt,
        })
        .returning()
      return { ...view(row!), key: secret }
    },

    async list(owner: { tenantId: string; userId: string }, page: { limit: number; cursor?: string }) {
      const rows = await db
        .select()
        .from(apiKeys)
        .where(
          and(
            eq(apiKeys.tenantId, owner.tenantId),
            eq(apiKeys.userId, owner.userId),
            page.cursor ? lt(apiKeys.id, page.cursor) : undefined,
          ),
        )
        .orderBy(desc(apiKeys.id))
        .limit(page.limit + 1)
      const items = rows.slice(0, page.limit).map(view)
      return { items, next_cursor: rows.length > page.limit ? items.at(-1)!.id : null }
    },

    /** the owner's key, revoked; 404 for anyone else's (never reveal that it exists) */
    async revoke(owner: { tenantId: string; userId: string }, id: string): Promise<void> {
      const [row] = await db
        .update(apiKeys)
        .set({ revokedAt: new Date() })
        .where(and(eq(apiKeys.id, id), eq(apiKeys.tenantId, owner.tenantId), eq(apiKeys.userId, owner.userId)))
        .returning()
      if (!row) throw new AppError(404, 'NOT_FOUND', 'API key not found')
      await bus.publish({ t: 'apikey', tenant: row.tenantId, user: row.userId, id: row.id, hash: row.keyHash })
    },

    /** the key's record when it exists (revoked and expired included: the caller decides) */
    async lookup(secret: string): Promise<ApiKeyRecord | null> {
      const hash = hashSecret(secret)
      const cached = byHash.get(hash)
      if (cached && performance.now() - cached.at < cacheTtlMs) return cached.record
      const [row] = await db.select().from(apiKeys).where(eq(apiKeys.keyHash, hash))
      const record = row
        ? { id: row.id, tenantId: row.tenantId, userId: row.userId, permissions: row.permissions, expiresAt: row.expiresAt, revokedAt: row.revokedAt }
        : null
      byHash.set(hash, { record, at: performance.now() })
      return record
    },

    /** last_used_at, written at most once a minute per key */
    touch(id: string): void {
      const now = Date.now()
      if ((lastTouched.get(id) ?? 0) > now - 60_000) return
      lastTouched.set(id, now)
      void db.update(apiKeys).set({ lastUsedAt: new Date(now) }).where(eq(apiKeys.id, id)).catch(() => {})
    },
  }
}

export type ApiKeys = ReturnType<typeof createApiKeys>
