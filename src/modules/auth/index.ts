/** Routes: /api/v2/auth/* and /api/v2/api-keys. Thin: destructure, call the service, return. */
import { Elysia, t } from 'elysia'
import { clientInfo } from '../../http/client-info'
import { idPage } from '../../http/models'
import { createAudited } from '../admin/actor'
import { actorOf } from '../admin/http'
import type { Audit } from '../audit/service'
import type { ApiKeys } from './api-keys'
import { delegableGrants } from '../access'
import { ApiKeyView, CreateApiKeyBody, LoginBody, LoginResponse, MeResponse, RefreshBody, RegisterBody, TokenPair } from './model'
import type { authPlugin } from './plugin'
import type { AuthService } from './service'

export function authModule({ auth, service, apiKeys, audit }: { auth: ReturnType<typeof authPlugin>; service: AuthService; apiKeys: ApiKeys; audit: Audit }) {
  const tags = ['Auth']
  // an API key created or revoked is audited as the admin changes are (a refusal as `denied` or `failure`)
  const audited = createAudited(audit)
  return new Elysia({ name: 'voicehelper.auth-routes', prefix: '/api/v2' })
    .use(auth)
    .post(
      '/auth/register',
      async ({ body, request, server, set }) => {
        set.status = 201
        return { user: await service.register(body, clientInfo(request, server)) }
      },
      { body: RegisterBody, detail: { tags, summary: 'Self sign-up (when the tenant allows it)' } },
    )
    .post('/auth/login', ({ body, request, server }) => service.login(body, clientInfo(request, server)), {
      body: LoginBody,
      response: { 200: LoginResponse },
      detail: { tags, summary: 'Password login → access and refresh tokens' },
    })
    .post('/auth/refresh', ({ body, request, server }) => service.refresh(body, clientInfo(request, server)), {
      body: RefreshBody,
      response: { 200: TokenPair },
      detail: { tags, summary: 'Rotate the refresh token; a reused one revokes the login session' },
    })
    .post(
      '/auth/logout',
      async ({ principal, request, server }) => {
        await service.logout(principal, clientInfo(request, server))
        return { status: 'logged_out' as const }
      },
      { auth: true, detail: { tags, summary: 'Revoke this access token and its login session' } },
    )
    .get('/auth/me', ({ principal }) => service.me(principal), {
      auth: true,
      response: { 200: MeResponse },
      detail: { tags, summary: 'The caller, their tenant and effective permissions' },
    })
    .post(
      '/api-keys',
      async ({ principal, body, set, request, server }) => {
        const key = await audited(actorOf(principal, request, server), 'apikey.create', undefined, async () => {
          const created = await apiKeys.create({ tenantId: principal.homeTenantId, userId: principal.userId, grants: delegableGrants(principal.subject) }, body)
          return { value: created, tenantId: principal.homeTenantId, target: { type: 'api_key', id: created.id } }
        })
        set.status = 201
        return key
      },
      {
        auth: 'apikey:write',
        body: CreateApiKeyBody,
        response: { 201: t.Composite([ApiKeyView, t.Object({ key: t.String() })]) },
        detail: { tags: ['API keys'], summary: 'Create an API key (the secret is shown only here)' },
      },
    )
    .get(
      '/api-keys',
      ({ principal, query }) =>
        apiKeys.list({ tenantId: principal.homeTenantId, userId: principal.userId }, { limit: query.limit ?? 20, cursor: query.cursor }),
      {
        auth: 'apikey:read',
        query: idPage('key'),
        response: { 200: t.Object({ items: t.Array(ApiKeyView), next_cursor: t.Nullable(t.String()) }) },
        detail: { tags: ['API keys'], summary: "The caller's API keys" },
      },
    )
    .delete(
      '/api-keys/:id',
      async ({ principal, params, set, request, server }) => {
        const target = { type: 'api_key', id: params.id } as const
        await audited(actorOf(principal, request, server), 'apikey.revoke', target, async () => {
          await apiKeys.revoke({ tenantId: principal.homeTenantId, userId: principal.userId }, params.id)
          return { value: undefined, tenantId: principal.homeTenantId, target }
        })
        set.status = 204
      },
      { auth: 'apikey:write', detail: { tags: ['API keys'], summary: 'Revoke an API key' } },
    )
}
