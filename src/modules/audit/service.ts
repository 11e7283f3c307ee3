/**
 * The audit log: every login (success and failure), logout, revocation and admin change — who, what,
 * when, from where, outcome. A write that fails is logged loudly but never fails the request it records.
 */
import { and, desc, eq, lt } from 'drizzle-orm'
import type { Database } from '../../db'
import { auditLogs } from '../../db/schema'
import { newId } from '../../lib/ids'
import { storableReplacer, storableText } from '../../lib/storable'
import type { Logger } from '../../observability/logger'

export interface AuditContext {
  ip?: string | null
  userAgent?: string | null
  requestId?: string
}

export interface AuditEntry {
  tenantId: string | null
  actor: { id: string | null; type: 'user' | 'api_key' | 'anonymous' | 'system' }
  action: string
  target?: { type: string; id: string }
  outcome: 'success' | 'failure' | 'denied'
  details?: Record<string, unknown>
}

export interface AuditView {
  id: string
  tenant_id: string | null
  actor_id: string | null
  actor_type: string
  action: string
  target_type: string | null
  target_id: string | null
  outcome: string
  ip: string | null
  user_agent: string | null
  request_id: string | null
  details: unknown
  created_at: string
}

export function createAudit({ db, logger }: { db: Database; logger: Logger }) {
  return {
    async record(entry: AuditEntry, ctx: AuditContext = {}): Promise<void> {
      try {
        await db.insert(auditLogs).values({
          id: newId('aud'),
          tenantId: entry.tenantId,
          actorId: entry.actor.id,
          actorType: entry.actor.type,
          // what was attempted is recorded even when it names text Postgres refuses (a NUL in a path id)
          action: entry.action,
          targetType: entry.target?.type ?? null,
          targetId: entry.target ? storableText(entry.target.id) : null,
          outcome: entry.outcome,
          ip: ctx.ip ?? null,
          userAgent: ctx.userAgent?.slice(0, 512) ?? null,
          requestId: ctx.requestId ?? null,
          details: entry.details ? JSON.stringify(entry.details, storableReplacer) : null,
        })
      } catch (err) {
        logger.error({ err, action: entry.action, request_id: ctx.requestId }, 'audit write failed')
      }
    },

    /** newest first; tenant-filtered unless `tenantId` is null (a super_admin's global view) */
    async list(filter: { tenantId: string | null; action?: string }, page: { limit: number; cursor?: string }) {
      const rows = await db
        .select()
        .from(auditLogs)
        .where(
          and(
            filter.tenantId !== null ? eq(auditLogs.tenantId, filter.tenantId) : undefined,
            filter.action ? eq(auditLogs.action, filter.action) : undefined,
            page.cursor ? lt(auditLogs.id, page.cursor) : undefined,
          ),
        )
        .orderBy(desc(auditLogs.id))
        .limit(page.limit + 1)
      const items: AuditView[] = rows.slice(0, page.limit).map((r) => ({
        id: r.id,
        tenant_id: r.tenantId,
        actor_id: r.actorId,
        actor_type: r.actorType,
        action: r.action,
        target_type: r.targetType,
        target_id: r.targetId,
        outcome: r.outcome,
        ip: r.ip,
        user_agent: r.userAgent,
        request_id: r.requestId,
        details: r.details ? JSON.parse(r.details) : null,
        created_at: r.createdAt.toISOString(),
      }))
      return { items, next_cursor: rows.length > page.limit ? items.at(-1)!.id : null }
    },
  }
}

export type Audit = ReturnType<typeof createAudit>
