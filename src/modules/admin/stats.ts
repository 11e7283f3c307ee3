/** Counts for one tenant's dashboard: users by status, conversations, messages, usable API keys. */
import { and, count, eq, gt, isNull, or } from 'drizzle-orm'
import type { Database } from '../../db'
import { apiKeys, conversations, messages, users } from '../../db/schema'

export function createStats({ db }: { db: Database }) {
  return async function tenantStats(tenantId: string, now = new Date()) {
    const [byStatus, [convs], [msgs], [keys]] = await Promise.all([
      db.select({ status: users.status, n: count() }).from(users).where(eq(users.tenantId, tenantId)).groupBy(users.status),
      db.select({ n: count() }).from(conversations).where(eq(conversations.tenantId, tenantId)),
      db.select({ n: count() }).from(messages).where(eq(messages.tenantId, tenantId)),
      db
        .select({ n: count() })
        .from(apiKeys)
        .where(and(eq(apiKeys.tenantId, tenantId), isNull(apiKeys.revokedAt), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now)))),
    ])
    const active = byStatus.find((r) => r.status === 'active')?.n ?? 0
    const disabled = byStatus.find((r) => r.status === 'disabled')?.n ?? 0
    return {
      tenant_id: tenantId,
      users: { total: active + disabled, active, disabled },
      conversations: convs?.n ?? 0,
      messages: msgs?.n ?? 0,
      api_keys: { active: keys?.n ?? 0 },
    }
  }
}
