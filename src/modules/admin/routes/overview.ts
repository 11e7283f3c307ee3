/** /api/v2/admin/audit-logs and /stats — read-only views of the acting tenant. */
import { Elysia } from 'elysia'
import type { Audit } from '../../audit/service'
import { listScope } from '../actor'
import { type AuthPlugin, actorOf, pageFrom, tags } from '../http'
import { AuditList, AuditQuery, errors, StatsView } from '../model'
import type { createStats } from '../stats'

export function overviewRoutes({ auth, audit, stats }: { auth: AuthPlugin; audit: Audit; stats: ReturnType<typeof createStats> }) {
  return new Elysia({ name: 'voicehelper.admin.overview', prefix: '/api/v2/admin' })
    .use(auth)
    .get(
      '/audit-logs',
      ({ principal, query, request, server }) => {
        const tenantId = listScope(actorOf(principal, request, server), query.tenant_id)
        return audit.list({ tenantId, action: query.action }, pageFrom(query))
      },
      {
        auth: 'audit:read',
        query: AuditQuery,
        response: { 200: AuditList, ...errors },
        detail: { tags, summary: 'Auth events and admin changes, newest first (super_admin: every tenant, or ?tenant_id=)' },
      },
    )
    .get('/stats', ({ principal }) => stats(principal.tenantId), {
      auth: 'user:read',
      response: { 200: StatsView, ...errors },
      detail: { tags, summary: "Counts for the acting tenant's dashboard" },
    })
}
