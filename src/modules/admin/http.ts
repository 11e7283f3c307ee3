/** The bridge from a request to the admin services: the principal and request become a plain Actor. */
import type { Server } from 'bun'
import { clientInfo } from '../../http/client-info'
import { effectiveGrants } from '../access'
import type { authPlugin } from '../auth/plugin'
import type { Principal } from '../auth/principal'
import type { Actor, PageRequest } from './actor'

export type AuthPlugin = ReturnType<typeof authPlugin>

export const tags = ['Admin']

export function actorOf(principal: Principal, request: Request, server: Server<unknown> | null): Actor {
  return {
    id: principal.userId,
    kind: principal.kind,
    tenantId: principal.tenantId,
    homeTenantId: principal.homeTenantId,
    superAdmin: principal.isSuperAdmin,
    // the auth layer has already accepted X-Tenant-ID only from a super_admin; without it they act everywhere
    global: principal.isSuperAdmin && !request.headers.get('x-tenant-id'),
    grants: effectiveGrants(principal.subject),
    subject: principal.subject,
    ctx: clientInfo(request, server),
  }
}

export const pageFrom = (query: { limit?: number; cursor?: string }): PageRequest => ({ limit: query.limit ?? 20, cursor: query.cursor })
