/** The bridge from a request to the admin services: the principal and request become a plain Actor. */
import type { Server } from 'bun'
import { clientInfo } from '../../http/client-info'
import { effectiveGrants } from '../access'
import type { Principal } from '../auth/principal'
import type { Actor } from './actor'

export type { AuthPlugin } from '../auth/plugin'

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

export { pageFrom } from '../../http/models'
