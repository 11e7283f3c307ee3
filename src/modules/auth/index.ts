/** Routes: /api/v2/auth/* and /api/v2/api-keys. Thin: destructure, call the service, return. */
import { Elysia, t } from 'elysia'
import { clientInfo } from '../../http/client-info'
import { idPage } from '../../http/models'
import { AppError } from '../../errors'
import type { Audit, AuditContext } from '../audit/service'
import type { ApiKeys } from './api-keys'
import { delegableGrants } from '../access'
import { ApiKeyView, CreateApiKeyBody, LoginBody, LoginResponse, MeResponse, RefreshBody, RegisterBody, TokenPair } from './model'
import type { authPlugin } from './plugin'
import type { AuthService } from './service'
import type { Principal } from './principal'

export function authModule({ auth, service, apiKeys, audit }: { auth: ReturnType<typeof authPlugin>; service: AuthService; apiKeys: ApiKeys; audit: Audit }) {
  const tags = ['Auth']
  /** an API key created or revoked: one audit row, its outcome included (a refusal as `denied` or `failure`) */
  async function audited<T>(principal: Principal, ctx: AuditContext, action: string, id: string | undefined, run: () => Promise<T>): Promise<T> {
    const entry = { tenantId: principal.homeTenantId, actor: { id: principal.userId, type: principal.kind }, action }
    try {
      const value = await run()
      const keyId = id ?? (value as { id?: string } | undefined)?.id
      await audit.record({ ...entry, target: keyId ? { type: 'api_key', id: keyId } : undefined, outcome: 'success' }, ctx)
      return value
    } catch (err) {
      if (err instanceof AppError && err.status < 500) {
        await audit.record({ ...entry, target: id ? { type: 'api_key', id } : undefined, outcome: err.status === 403 ? 'denied' : 'failure', details: { code: err.code } }, ctx)
      }
      throw err
    }
  }
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
        const key = await audited(principal, clientInfo(request, server), 'apikey.create', undefined, () =>
          apiKeys.create({ tenantId: principal.homeTenantId, userId: principal.userId, grants: delegableGrants(principal.subject) }, body),
        )
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
        await audited(principal, clientInfo(request, server), 'apikey.revoke', params.id, () => apiKeys.revoke({ tenantId: principal.homeTenantId, userId: principal.userId }, params.id))
        set.status = 204
      },
      { auth: 'apikey:write', detail: { tags: ['API keys'], summary: 'Revoke an API key' } },
    )
}
