/**
 * /api/v2/admin/sessions — the live chat streams (chat:monitor) and voice sessions (voice:monitor) of every
 * instance: the acting tenant's, or every tenant's for a super_admin without X-Tenant-ID.
 */
import { Elysia } from 'elysia'
import { grantsCover } from '../../access'
import { authErrors } from '../../auth/errors'
import { type Actor, type Audited, listScope } from '../actor'
import { type AuthPlugin, actorOf, pageFrom, tags } from '../http'
import { EndedLiveSession, errors, LiveSessionList, SessionListQuery, SessionParams } from '../model'
import type { LiveSessions, SessionKind } from '../sessions'

const KINDS: readonly SessionKind[] = ['chat', 'voice']

/** the kinds the actor may monitor (of `only`, when given); 403 when none */
function monitored(actor: Actor, only?: SessionKind): Set<SessionKind> {
  const kinds = new Set(KINDS.filter((k) => (only === undefined || k === only) && grantsCover(actor.grants, `${k}:monitor`)))
  if (kinds.size === 0) throw authErrors.permissionDenied(only ? `${only}:monitor` : 'chat:monitor or voice:monitor')
  return kinds
}

export function sessionRoutes({ auth, sessions, audited }: { auth: AuthPlugin; sessions: LiveSessions; audited: Audited }) {
  return new Elysia({ name: 'voicehelper.admin.sessions', prefix: '/api/v2/admin' })
    .use(auth)
    .get(
      '/sessions',
      ({ principal, query, request, server }) => {
        const actor = actorOf(principal, request, server)
        return sessions.list({ tenantId: listScope(actor, query.tenant_id), kinds: monitored(actor, query.kind) }, pageFrom(query))
      },
      {
        auth: true,
        query: SessionListQuery,
        response: { 200: LiveSessionList, ...errors },
        detail: {
          tags,
          summary: 'Live chat streams (chat:monitor) and voice sessions (voice:monitor) on every instance, newest first',
          description: 'super_admin without X-Tenant-ID: every tenant, or ?tenant_id=. Instances answer within 1 s; `partial` says one did not.',
        },
      },
    )
    .delete(
      '/sessions/:id',
      ({ principal, params, request, server }) => {
        const actor = actorOf(principal, request, server)
        const target = { type: 'session' as const, id: params.id }
        return audited(actor, 'session.end', target, async () => {
          const value = await sessions.end({ tenantId: actor.global ? null : actor.tenantId, kinds: monitored(actor) }, params.id)
          return { value, tenantId: params.id.split(':')[1]!, target, details: { kind: value.kind } }
        })
      },
      {
        auth: true,
        params: SessionParams,
        response: { 200: EndedLiveSession, ...errors },
        detail: {
          tags,
          summary: 'End a live chat stream (stream_cancelled, reason admin_ended) or voice session (closed, reason deleted) wherever it runs',
        },
      },
    )
}
