/**
 * Authentication in the seed's order: token present → token valid (signature, alg, iss, aud, exp, nbf,
 * user_id, jti) → not revoked (fail closed when the store cannot answer) → user exists and is active →
 * tenant active → X-Tenant-ID rules. Permission checks follow in the plugin.
 */
import { type AccessSubject, decide, roleGrants } from '../access'
import type { ApiKeys } from './api-keys'
import { API_KEY_PREFIX } from './api-keys'
import { authErrors } from './errors'
import type { IdentityCache, IdentityTenant, IdentityUser } from './identity-cache'
import type { Principal } from './principal'
import type { Revocation } from './revocation'
import type { AccessClaims, createTokenService } from './tokens'

type TokenService = ReturnType<typeof createTokenService>

export interface AuthenticatorDeps {
  tokens: TokenService
  revocation: Revocation
  identity: IdentityCache
  apiKeys: ApiKeys
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i
const WHITESPACE = /\s/

/** The credential a request carries: `Authorization: Bearer <jwt | vh_…>` or `X-API-Key: vh_…`. */
export function credentialOf(headers: Headers): string | null {
  const authorization = headers.get('authorization')
  if (authorization) {
    // the common spelling without the general pattern's match array
    if (authorization.startsWith('Bearer ')) {
      const token = authorization.slice(7)
      if (token.length > 0 && !WHITESPACE.test(token)) return token
    }
    const match = BEARER.exec(authorization)
    return match ? match[1]! : ''
  }
  return headers.get('x-api-key')
}

/** may answer synchronously (nothing to wait for) or with a promise; may throw either way */
export type OnIdentified = (who: { userId: string; tenantId: string }) => void | Promise<void>

/** runs `onIdentified` so that a synchronous throw becomes a rejection like an asynchronous one */
function identified(onIdentified: OnIdentified | undefined, who: { userId: string; tenantId: string }): Promise<void> | undefined {
  if (!onIdentified) return undefined
  try {
    return onIdentified(who) ?? undefined
  } catch (err) {
    return Promise.reject(err)
  }
}

/** a promise that never rejects, so work started early cannot become an unhandled rejection */
function settle(work: Promise<void> | undefined): Promise<{ error?: unknown }> {
  return work ? work.then(() => ({}), (error: unknown) => ({ error })) : Promise.resolve({})
}

function rethrow(outcome: { error?: unknown }): void {
  if ('error' in outcome) throw outcome.error
}

/** Verified tokens kept so that each token pays for signature verification (~45 µs with jose) once. */
const VERIFIED_CACHE_MAX = 20_000

/** what the access decision reads of a user in their tenant */
function accessSubject(user: IdentityUser, tenant: IdentityTenant): AccessSubject {
  return { userId: user.id, roles: user.roles, directGrants: user.permissions, roleGrants: roleGrants(user.roles, tenant.customRoles), tenantGrants: tenant.grants }
}

/**
 * Whether a user (through an API key: within its grants) still holds `permission` as their account stands now:
 * false once the user or their tenant is no longer active. For connections that outlive their request.
 */
export function createGrantCheck(identity: IdentityCache) {
  return async function holds(who: { userId: string; keyGrants?: readonly string[] }, permission: string): Promise<boolean> {
    const user = await identity.user(who.userId)
    if (!user || user.status !== 'active') return false
    const tenant = await identity.tenant(user.tenantId)
    if (!tenant || tenant.status !== 'active') return false
    const subject = accessSubject(user, tenant)
    return decide(who.keyGrants ? { ...subject, keyGrants: who.keyGrants } : subject, permission).allowed
  }
}

export function createAuthenticator({ tokens, revocation, identity, apiKeys }: AuthenticatorDeps) {
  const verified = new Map<string, AccessClaims>()

  /** jose's full verification once per token; later requests re-check only the expiry (revocation is checked every time) */
  async function verify(token: string): Promise<AccessClaims> {
    const hit = verified.get(token)
    if (hit && hit.exp > Date.now() / 1000) return hit
    if (hit) verified.delete(token)
    const claims = await tokens.verifyAccess(token)
    if (verified.size >= VERIFIED_CACHE_MAX) verified.delete(verified.keys().next().value as string)
    verified.set(token, claims)
    return claims
  }

  async function activeUserAndTenant(userId: string, tenantId: string): Promise<[IdentityUser, IdentityTenant]> {
    const user = await identity.user(userId)
    if (!user || user.tenantId !== tenantId) throw authErrors.userNotFound()
    if (user.status !== 'active') throw authErrors.userDisabled()
    const tenant = await identity.tenant(user.tenantId)
    if (!tenant) throw authErrors.userNotFound()
    if (tenant.status !== 'active') throw authErrors.tenantSuspended()
    return [user, tenant]
  }

  // Role grants are resolved once per pair of cache entries: an invalidation replaces the entry, and with it
  // the memo, so this work leaves the per-request path without ever serving stale grants.
  const subjects = new WeakMap<IdentityUser, { tenant: IdentityTenant; subject: AccessSubject }>()

  function subjectOf(user: IdentityUser, tenant: IdentityTenant, keyGrants?: readonly string[]): AccessSubject {
    let memo = subjects.get(user)
    if (memo?.tenant !== tenant) {
      memo = { tenant, subject: accessSubject(user, tenant) }
      subjects.set(user, memo)
    }
    return keyGrants ? { ...memo.subject, keyGrants } : memo.subject
  }

  /**
   * X-Tenant-ID: only a super_admin, signed in as themselves, may act in another tenant; anyone else — and
   * any API key, whoever created it — must name their own.
   */
  async function actingTenant(headers: Headers, user: IdentityUser, kind: Principal['kind']): Promise<string> {
    const requested = headers.get('x-tenant-id')
    if (!requested || requested === user.tenantId) return user.tenantId
    if (kind !== 'user' || !user.roles.includes('super_admin')) throw authErrors.tenantMismatch()
    const tenant = await identity.tenant(requested)
    if (!tenant) throw authErrors.tenantMismatch()
    return tenant.id
  }

  type CredentialFacts = Pick<Principal, 'kind' | 'isSuperAdmin' | 'sessionId' | 'jti' | 'expiresAt' | 'apiKeyId'>

  async function principalOf(
    user: IdentityUser,
    tenant: IdentityTenant,
    headers: Headers,
    facts: CredentialFacts,
    keyGrants?: readonly string[],
  ): Promise<Principal> {
    return {
      ...facts,
      userId: user.id,
      username: user.username,
      email: user.email,
      tenantId: await actingTenant(headers, user, facts.kind),
      homeTenantId: user.tenantId,
      roles: user.roles,
      subject: subjectOf(user, tenant, keyGrants),
    }
  }

  async function notRevoked(token: { jti: string; tenantId: string; sessionId?: string }): Promise<void> {
    let state: 'ok' | 'revoked'
    try {
      state = await revocation.check(token)
    } catch (err) {
      // the store (or, while refilling it, Postgres) cannot answer: fail closed
      throw authErrors.serviceUnavailable(err)
    }
    if (state === 'revoked') throw authErrors.tokenRevoked()
  }

  /**
   * A token's last resolution: while its identity-cache entries are the very same objects (an invalidation or
   * expiry replaces them), the mirror answers the revocation check at once and the caller acts in their own
   * tenant, the principal is the one computed then — every check of the seed's order still holds for it.
   */
  interface Resolved {
    claims: AccessClaims
    user: IdentityUser
    tenant: IdentityTenant
    principal: Principal
  }
  const resolved = new Map<string, Resolved>()

  /** the principal at once, a promise of it (or of the refusal), or undefined when the full path must run */
  function fromResolved(hit: Resolved, headers: Headers, onIdentified?: OnIdentified): Principal | Promise<Principal> | undefined {
    const { claims } = hit
    if (claims.exp <= Date.now() / 1000) return undefined
    const tenantHeader = headers.get('x-tenant-id')
    if (tenantHeader !== null && tenantHeader !== hit.user.tenantId) return undefined
    if (identity.peekUser(claims.user_id) !== hit.user || identity.peekTenant(hit.user.tenantId) !== hit.tenant) return undefined
    const state = revocation.checkLocal(claims.jti, claims.tenant_id, claims.session_id || undefined)
    if (state === undefined) return undefined
    if (state === 'revoked') return Promise.reject(authErrors.tokenRevoked())
    const pending = identified(onIdentified, { userId: claims.user_id, tenantId: claims.tenant_id })
    return pending ? pending.then(() => hit.principal) : hit.principal
  }

  function fromJwt(token: string, headers: Headers, onIdentified?: OnIdentified): Principal | Promise<Principal> {
    const hit = resolved.get(token)
    return (hit && fromResolved(hit, headers, onIdentified)) ?? resolveJwt(token, headers, onIdentified)
  }

  async function resolveJwt(token: string, headers: Headers, onIdentified?: OnIdentified): Promise<Principal> {
    const claims = await verify(token)
    const alongside = settle(identified(onIdentified, { userId: claims.user_id, tenantId: claims.tenant_id }))
    await notRevoked({ jti: claims.jti, tenantId: claims.tenant_id, sessionId: claims.session_id || undefined })
    const [user, tenant] = await activeUserAndTenant(claims.user_id, claims.tenant_id)
    await alongside.then(rethrow)
    const principal = await principalOf(user, tenant, headers, {
      kind: 'user',
      sessionId: claims.session_id || undefined,
      jti: claims.jti,
      expiresAt: claims.exp,
      isSuperAdmin: user.roles.includes('super_admin'),
    })
    if (principal.tenantId === user.tenantId) {
      if (resolved.size >= VERIFIED_CACHE_MAX) resolved.delete(resolved.keys().next().value as string)
      resolved.set(token, { claims, user, tenant, principal })
    }
    return principal
  }

  async function fromApiKey(secret: string, headers: Headers, onIdentified?: OnIdentified): Promise<Principal> {
    let key
    try {
      key = await apiKeys.lookup(secret)
    } catch (err) {
      throw authErrors.serviceUnavailable(err)
    }
    if (!key) throw authErrors.tokenInvalid('unknown_api_key')
    if (key.revokedAt) throw authErrors.tokenRevoked()
    if (key.expiresAt && key.expiresAt.getTime() <= Date.now()) throw authErrors.tokenInvalid('expired')
    const [user, tenant] = await activeUserAndTenant(key.userId, key.tenantId)
    await settle(identified(onIdentified, { userId: key.userId, tenantId: key.tenantId })).then(rethrow)
    apiKeys.touch(key.id)
    return principalOf(user, tenant, headers, { kind: 'api_key', apiKeyId: key.id, isSuperAdmin: false }, key.permissions)
  }

  /**
   * `onIdentified` runs as soon as the caller's identity is verified, alongside the revocation check (the
   * plugin counts rate limits there: both store round trips then share one). Its failure is reported only
   * after the checks that come before it in the seed's order.
   */
  return function authenticate(request: Request, onIdentified?: OnIdentified): Principal | Promise<Principal> {
    const credential = credentialOf(request.headers)
    if (credential === null) return Promise.reject(authErrors.tokenMissing())
    if (credential === '') return Promise.reject(authErrors.tokenInvalid('malformed_header'))
    return credential.startsWith(API_KEY_PREFIX)
      ? fromApiKey(credential, request.headers, onIdentified)
      : fromJwt(credential, request.headers, onIdentified)
  }
}

export type Authenticate = ReturnType<typeof createAuthenticator>
