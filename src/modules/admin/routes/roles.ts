/** /api/v2/admin/roles and /tenant-permissions — the acting tenant's custom roles and tenant-wide grants. */
import { Elysia, t } from 'elysia'
import { type AuthPlugin, actorOf, pageFrom, tags } from '../http'
import { CreateRoleBody, ErrorResponse, errors, PermissionsBody, RoleList, RolePage, RoleView, TenantPermissionsView } from '../model'
import type { RoleAdmin } from '../roles'

const Params = t.Object({ name: t.String({ maxLength: 64 }) })

export function roleRoutes({ auth, roles }: { auth: AuthPlugin; roles: RoleAdmin }) {
  return new Elysia({ name: 'voicehelper.admin.roles', prefix: '/api/v2/admin' })
    .use(auth)
    .post(
      '/roles',
      async ({ principal, body, request, server, set }) => {
        const role = await roles.create(actorOf(principal, request, server), body)
        set.status = 201
        return role
      },
      {
        auth: 'role:write',
        body: CreateRoleBody,
        response: { 201: RoleView, ...errors, 409: ErrorResponse },
        detail: { tags, summary: 'Create a custom role (only with grants you hold)' },
      },
    )
    .get('/roles', ({ principal, query, request, server }) => roles.list(actorOf(principal, request, server), pageFrom(query)), {
      auth: 'role:read',
      query: RolePage,
      response: { 200: RoleList, ...errors },
      detail: { tags, summary: 'Built-in roles, then the custom roles by name' },
    })
    .patch(
      '/roles/:name',
      ({ principal, params, body, request, server }) => roles.update(actorOf(principal, request, server), params.name, body),
      {
        auth: 'role:write',
        params: Params,
        body: PermissionsBody,
        response: { 200: RoleView, ...errors },
        detail: { tags, summary: "Replace a custom role's grants (takes effect at once for its holders)" },
      },
    )
    .delete(
      '/roles/:name',
      async ({ principal, params, request, server, set }) => {
        await roles.remove(actorOf(principal, request, server), params.name)
        set.status = 204
      },
      {
        auth: 'role:delete',
        params: Params,
        response: { 204: t.Void(), ...errors },
        detail: { tags, summary: 'Delete a custom role and take it off every holder' },
      },
    )
    .get('/tenant-permissions', ({ principal, request, server }) => roles.getTenantPermissions(actorOf(principal, request, server)), {
      auth: 'role:read',
      response: { 200: TenantPermissionsView, ...errors },
      detail: { tags, summary: 'Grants every member of the tenant holds' },
    })
    .put(
      '/tenant-permissions',
      ({ principal, body, request, server }) => roles.setTenantPermissions(actorOf(principal, request, server), body),
      {
        auth: 'role:admin',
        body: PermissionsBody,
        response: { 200: TenantPermissionsView, ...errors },
        detail: { tags, summary: 'Replace the grants every member of the tenant holds' },
      },
    )
}
