/** /api/v2/admin/users — user:read to look, user:write to change; the acting tenant's users only. */
import { Elysia, t } from 'elysia'
import { type AuthPlugin, actorOf, pageFrom, tags } from '../http'
import { CreateUserBody, ErrorResponse, errors, PermissionsBody, UpdateUserBody, UserList, UserListQuery, UserView } from '../model'
import type { UserAdmin } from '../users'

const Params = t.Object({ id: t.String({ maxLength: 64 }) })

export function userRoutes({ auth, users }: { auth: AuthPlugin; users: UserAdmin }) {
  return new Elysia({ name: 'voicehelper.admin.users', prefix: '/api/v2/admin' })
    .use(auth)
    .post(
      '/users',
      async ({ principal, body, request, server, set }) => {
        const user = await users.create(actorOf(principal, request, server), body)
        set.status = 201
        return user
      },
      {
        auth: 'user:write',
        body: CreateUserBody,
        response: { 201: UserView, ...errors, 409: ErrorResponse },
        detail: { tags, summary: 'Create a user (another tenant: super_admin only)' },
      },
    )
    .get(
      '/users',
      ({ principal, query, request, server }) => users.list(actorOf(principal, request, server), { tenantId: query.tenant_id }, pageFrom(query)),
      {
        auth: 'user:read',
        query: UserListQuery,
        response: { 200: UserList, ...errors },
        detail: { tags, summary: "List the tenant's users, newest first (super_admin: every tenant, or ?tenant_id=)" },
      },
    )
    .get('/users/:id', ({ principal, params, request, server }) => users.get(actorOf(principal, request, server), params.id), {
      auth: 'user:read',
      params: Params,
      response: { 200: UserView, ...errors },
      detail: { tags, summary: 'Get a user' },
    })
    .patch(
      '/users/:id',
      ({ principal, params, body, request, server }) => users.update(actorOf(principal, request, server), params.id, body),
      {
        auth: 'user:write',
        params: Params,
        body: UpdateUserBody,
        response: { 200: UserView, ...errors },
        detail: { tags, summary: "Change a user's roles, status or username (disabling ends their sessions)" },
      },
    )
    .put(
      '/users/:id/permissions',
      ({ principal, params, body, request, server }) => users.setPermissions(actorOf(principal, request, server), params.id, body.permissions),
      {
        auth: 'user:write',
        params: Params,
        body: PermissionsBody,
        response: { 200: UserView, ...errors },
        detail: { tags, summary: "Replace a user's direct grants" },
      },
    )
    .delete(
      '/users/:id',
      async ({ principal, params, request, server, set }) => {
        await users.remove(actorOf(principal, request, server), params.id)
        set.status = 204
      },
      {
        auth: 'user:write',
        params: Params,
        response: { 204: t.Void(), ...errors, 409: ErrorResponse },
        detail: { tags, summary: 'Delete a user and the conversations they own' },
      },
    )
}
