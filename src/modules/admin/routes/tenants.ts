/** /api/v2/admin/tenants — tenant:admin (super_admin: every tenant; anyone else: only their own). */
import { Elysia, t } from 'elysia'
import { type AuthPlugin, actorOf, pageFrom, tags } from '../http'
import { CreateTenantBody, ErrorResponse, errors, TenantList, TenantPage, TenantView, UpdateTenantBody } from '../model'
import type { TenantAdmin } from '../tenants'

export function tenantRoutes({ auth, tenants }: { auth: AuthPlugin; tenants: TenantAdmin }) {
  return new Elysia({ name: 'voicehelper.admin.tenants', prefix: '/api/v2/admin' })
    .use(auth)
    .post(
      '/tenants',
      async ({ principal, body, request, server, set }) => {
        const tenant = await tenants.create(actorOf(principal, request, server), body)
        set.status = 201
        return tenant
      },
      {
        auth: 'tenant:admin',
        body: CreateTenantBody,
        response: { 201: TenantView, ...errors, 409: ErrorResponse },
        detail: { tags, summary: 'Create a tenant (super_admin)' },
      },
    )
    .get('/tenants', ({ principal, query, request, server }) => tenants.list(actorOf(principal, request, server), pageFrom(query)), {
      auth: 'tenant:admin',
      query: TenantPage,
      response: { 200: TenantList, ...errors },
      detail: { tags, summary: 'List tenants' },
    })
    .get('/tenants/:id', ({ principal, params, request, server }) => tenants.get(actorOf(principal, request, server), params.id), {
      auth: 'tenant:admin',
      params: t.Object({ id: t.String({ maxLength: 63 }) }),
      response: { 200: TenantView, ...errors },
      detail: { tags, summary: 'Get a tenant' },
    })
    .patch(
      '/tenants/:id',
      ({ principal, params, body, request, server }) => tenants.update(actorOf(principal, request, server), params.id, body),
      {
        auth: 'tenant:admin',
        params: t.Object({ id: t.String({ maxLength: 63 }) }),
        body: UpdateTenantBody,
        response: { 200: TenantView, ...errors },
        detail: { tags, summary: 'Rename, suspend or reactivate a tenant, or replace its quotas' },
      },
    )
}
