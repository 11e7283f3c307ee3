/**
 * Auth is declared, not parsed: `{ auth: 'chat:write' }` (a permission) or `{ auth: true }` (any
 * authenticated caller) on HTTP and WebSocket routes alike. The macro authenticates, checks the
 * permission, applies the per-user and per-tenant rate limits, and puts the `principal` in the context.
 */
import { Elysia } from 'elysia'
import { AppError } from '../../errors'
import type { Metrics } from '../../observability/metrics'
import { decide } from '../access'
import { type RateLimiter, type RateResult, type RateRule, rateLimitHeaders, writeRateLimitHeaders } from '../quotas'
import type { Authenticate } from './authenticate'
import { authErrors } from './errors'
import type { IdentityCache, IdentityTenant } from './identity-cache'
import type { Principal } from './principal'

/** Tokens with less than this left get X-Token-Refresh-Required (seed: 15 minutes). */
const REFRESH_HINT_S = 15 * 60

/** contract §7: the quotas a tenant has when its `quotas` object does not say */
export const QUOTA_DEFAULTS = { requests_per_minute_per_user: 120, requests_per_minute: 6000, concurrent_streams_per_user: 4 }

export interface AuthPluginDeps {
  authenticate: Authenticate
  identity: IdentityCache
  limiter: RateLimiter
  metrics: Metrics
}

export function authPlugin({ authenticate, identity, limiter, metrics }: AuthPluginDeps) {
  function rulesFor(who: { userId: string; tenantId: string }, tenant: IdentityTenant | null): RateRule[] {
    const quotas = tenant?.quotas
    return [
      { scope: 'user', id: `${who.tenantId}:${who.userId}`, limit: quotas?.requests_per_minute_per_user ?? QUOTA_DEFAULTS.requests_per_minute_per_user, windowMs: 60_000, lease: true },
      { scope: 'tenant', id: who.tenantId, limit: quotas?.requests_per_minute ?? QUOTA_DEFAULTS.requests_per_minute, windowMs: 60_000, lease: true },
    ]
  }

  // The rules follow from the tenant's cache entry and the user: kept per entry (an invalidation replaces it),
  // so the limiter sees the same rule objects request after request.
  const rulesByTenant = new WeakMap<IdentityTenant, Map<string, RateRule[]>>()
  function cachedRules(who: { userId: string; tenantId: string }, tenant: IdentityTenant): RateRule[] {
    let byUser = rulesByTenant.get(tenant)
    if (!byUser) rulesByTenant.set(tenant, (byUser = new Map()))
    let rules = byUser.get(who.userId)
    if (!rules) {
      if (byUser.size >= 10_000) byUser.clear()
      byUser.set(who.userId, (rules = rulesFor(who, tenant)))
    }
    return rules
  }

  /**
   * Per user and per tenant (the caller's own tenant, also when a super_admin acts in another). Answered
   * without a promise when the tenant is cached and this instance's leases can decide; a promise otherwise.
   */
  function rateLimit(who: { userId: string; tenantId: string }, set: { headers: Record<string, string | number> }): void | Promise<void> {
    const tenant = identity.peekTenant(who.tenantId)
    const now = tenant ? limiter.tryLeased(cachedRules(who, tenant)) : undefined
    if (now) return applyRateLimit(now, set)
    return (async () => applyRateLimit(await limiter.checkAll(rulesFor(who, await identity.tenant(who.tenantId))), set))()
  }

  function applyRateLimit(result: RateResult, set: { headers: Record<string, string | number> }): void {
    if (!result.allowed) {
      metrics.rateLimitRejections.inc({ scope: result.scope })
      throw new AppError(429, 'RATE_LIMITED', 'Too many requests', { scope: result.scope, retry_after_s: result.retryAfterS }, { headers: rateLimitHeaders(result) })
    }
    writeRateLimitHeaders(set.headers, result)
  }

  // A route permission's decision depends on the subject alone, which is one object per identity-cache entry.
  const decisions = new WeakMap<object, Map<string, boolean>>()
  function allowed(subject: Principal['subject'], permission: string): boolean {
    let known = decisions.get(subject)
    if (!known) decisions.set(subject, (known = new Map()))
    let answer = known.get(permission)
    if (answer === undefined) known.set(permission, (answer = decide(subject, permission).allowed))
    return answer
  }

  // Put on the request's `set` by the transform step, read by resolve: authentication runs in `transform` so that
  // it comes before body validation — an unauthenticated caller learns nothing about a route's schema. (Hooks
  // name what they read: Elysia prepares only the context parts its hooks destructure.)
  const PRINCIPAL = Symbol('principal')
  type Set = { headers: Record<string, string | number>; [PRINCIPAL]?: Principal }

  /** counts the refusal (rate limiting has its own counter) and passes it on */
  function refused(err: unknown): never {
    if (err instanceof AppError && err.code !== 'RATE_LIMITED') metrics.authFailures.inc({ code: err.code })
    throw err
  }

  function accept(principal: Principal, set: Set, required: string | true): void {
    if (required !== true && !allowed(principal.subject, required)) refused(authErrors.permissionDenied(required))
    if (principal.expiresAt !== undefined && principal.expiresAt - Date.now() / 1000 < REFRESH_HINT_S) {
      set.headers['x-token-refresh-required'] = 'true'
      set.headers['x-token-expires-at'] = String(principal.expiresAt)
    }
    set[PRINCIPAL] = principal
  }

  /** synchronous when the caller's token was resolved before and nothing about it changed; a promise otherwise */
  function admit(request: Request, set: Set, required: string | true): void | Promise<void> {
    let principal: Principal | Promise<Principal>
    try {
      principal = authenticate(request, (who) => rateLimit(who, set))
    } catch (err) {
      return refused(err)
    }
    if (principal instanceof Promise) return principal.then((p) => accept(p, set, required), refused)
    accept(principal, set, required)
  }

  return new Elysia({ name: 'voicehelper.auth' }).macro({
    /** `true`: any authenticated caller; a permission such as `'chat:write'`: callers holding it */
    auth(required: string | true) {
      return {
        // documented on the route, so /swagger/json says what each route requires
        detail: {
          security: [{ bearer: [] }, { apiKey: [] }],
          'x-permission': required === true ? 'authenticated' : required,
        },
        transform: ({ request, set }) => admit(request, set, required),
        resolve: ({ set }) => ({ principal: (set as Set)[PRINCIPAL]! }),
      }
    },
  })
}

export type AuthPlugin = ReturnType<typeof authPlugin>
