/**
 * Sign-up, login, rotating refresh tokens with reuse detection, logout and "who am I".
 * Framework-free: routes hand in plain data and the request's audit context.
 */
import { and, eq, sql } from 'drizzle-orm'
import type { Database } from '../../db'
import { loginSessions, refreshTokens, tenants, users } from '../../db/schema'
import { AppError } from '../../errors'
import { newId } from '../../lib/ids'
import { effectiveGrants } from '../access'
import type { Audit, AuditContext } from '../audit/service'
import type { RateLimiter, RateRule } from '../quotas'
import { rateLimitHeaders } from '../quotas'
import { insertAccount } from './accounts'
import { hashSecret } from './api-keys'
import { authErrors } from './errors'
import type { IdentityCache } from './identity-cache'
import type { Principal } from './principal'
import type { Revocation } from './revocation'
import type { createTokenService } from './tokens'

export const REFRESH_TTL_S = 7 * 24 * 3600
/** failed logins allowed per account and per client address in a window, before 429 */
export const LOGIN_LIMITS = { perAccount: 10, perIp: 50, windowMs: 15 * 60_000 }

// Verified against when the account does not exist, so both failures take the same time.
const DUMMY_HASH = await Bun.password.hash('voicehelper-no-such-user', { algorithm: 'argon2id' })

export interface AuthServiceDeps {
  db: Database
  tokens: ReturnType<typeof createTokenService>
  revocation: Revocation
  identity: IdentityCache
  limiter: RateLimiter
  audit: Audit
}

export interface TokenPair {
  access_token: string
  refresh_token: string
  token_type: 'Bearer'
  expires_in: number
}

function userView(u: { id: string; email: string; username: string; tenantId: string; roles: readonly string[] }) {
  return { id: u.id, email: u.email, username: u.username, tenant_id: u.tenantId, roles: [...u.roles] }
}

export function createAuthService({ db, tokens, revocation, identity, limiter, audit }: AuthServiceDeps) {
  type MeView = { user: ReturnType<typeof userView> & { status: string }; tenant: { id: string; name: string; status: string }; permissions: string[] }
  const views = new WeakMap<object, { user: object; tenant: object; view: MeView }>()
  async function issuePair(
    user: { id: string; username: string; tenantId: string; roles: readonly string[] },
    sessionId: string,
  ): Promise<TokenPair> {
    const refresh = `rt_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url')}`
    await db.insert(refreshTokens).values({
      id: newId('rt'),
      tenantId: user.tenantId,
      sessionId,
      tokenHash: hashSecret(refresh),
      expiresAt: new Date(Date.now() + REFRESH_TTL_S * 1000),
    })
    const access = await tokens.signAccess({
      user_id: user.id,
      username: user.username,
      tenant_id: user.tenantId,
      session_id: sessionId,
      roles: [...user.roles],
    })
    return { access_token: access.token, refresh_token: refresh, token_type: 'Bearer', expires_in: access.expiresIn }
  }

  function loginRules(tenantId: string, email: string, ip: string | null | undefined): RateRule[] {
    const rules: RateRule[] = [
      { scope: 'login_account', id: `${tenantId}:${email}`, limit: LOGIN_LIMITS.perAccount, windowMs: LOGIN_LIMITS.windowMs },
    ]
    if (ip) rules.push({ scope: 'login_ip', id: ip, limit: LOGIN_LIMITS.perIp, windowMs: LOGIN_LIMITS.windowMs })
    return rules
  }

  return {
    async register(input: { email: string; password: string; username?: string; tenant_id?: string }, ctx: AuditContext) {
      const tenantId = input.tenant_id ?? 'default'
      const email = input.email.trim().toLowerCase()
      const [tenant] = await db.select().from(tenants).where(eq(tenants.id, tenantId))
      // An unknown tenant and one closed to sign-up look the same from outside.
      if (!tenant || tenant.status !== 'active' || tenant.settings.allow_signup !== true) {
        throw new AppError(403, 'SIGNUP_DISABLED', 'Self sign-up is not open for this tenant')
      }
      const user = await insertAccount(db, { tenantId, email, password: input.password, username: input.username, roles: ['user'] })
      await audit.record({ tenantId, actor: { id: user.id, type: 'user' }, action: 'auth.register', target: { type: 'user', id: user.id }, outcome: 'success' }, ctx)
      return { ...userView(user), status: user.status }
    },

    async login(input: { email: string; password: string; tenant_id?: string }, ctx: AuditContext) {
      const tenantId = input.tenant_id ?? 'default'
      const email = input.email.trim().toLowerCase()
      const rules = loginRules(tenantId, email, ctx.ip)
      // counted before the password is checked, and given back if it is right: guesses sent at once are counted
      // while in flight, so no more of them are tried than the limit
      const state = await limiter.checkAll(rules)
      if (!state.allowed) {
        await audit.record({ tenantId, actor: { id: null, type: 'anonymous' }, action: 'auth.login', outcome: 'denied', details: { email, reason: 'rate_limited' } }, ctx)
        throw new AppError(429, 'RATE_LIMITED', 'Too many failed logins; try again later', { retry_after_s: state.retryAfterS }, {
          headers: rateLimitHeaders(state),
        })
      }
      const [user] = await db
        .select()
        .from(users)
        .where(and(eq(users.tenantId, tenantId), sql`lower(${users.email}) = ${email}`))
      const ok = await Bun.password.verify(input.password, user?.passwordHash ?? DUMMY_HASH)
      if (!user || !ok) {
        await audit.record({ tenantId, actor: { id: user?.id ?? null, type: 'anonymous' }, action: 'auth.login', outcome: 'failure', details: { email } }, ctx)
        throw authErrors.invalidCredentials()
      }
      // the right password: the account's failures are cleared, and this attempt is given back to the address
      const [account, ...others] = rules
      await Promise.all([limiter.reset(account!), ...others.map((r) => limiter.refund(r))])
      if (user.status !== 'active') {
        await audit.record({ tenantId, actor: { id: user.id, type: 'user' }, action: 'auth.login', outcome: 'denied', details: { reason: 'user_disabled' } }, ctx)
        throw authErrors.userDisabled()
      }
      const tenant = await identity.tenant(tenantId)
      if (!tenant || tenant.status !== 'active') {
        await audit.record({ tenantId, actor: { id: user.id, type: 'user' }, action: 'auth.login', outcome: 'denied', details: { reason: 'tenant_suspended' } }, ctx)
        throw authErrors.tenantSuspended()
      }
      const sessionId = newId('ses')
      await db.insert(loginSessions).values({
        id: sessionId,
        tenantId,
        userId: user.id,
        expiresAt: new Date(Date.now() + REFRESH_TTL_S * 1000),
        ip: ctx.ip ?? null,
        userAgent: ctx.userAgent?.slice(0, 512) ?? null,
      })
      await db.update(users).set({ lastLoginAt: new Date() }).where(eq(users.id, user.id))
      const pair = await issuePair(user, sessionId)
      await audit.record({ tenantId, actor: { id: user.id, type: 'user' }, action: 'auth.login', target: { type: 'session', id: sessionId }, outcome: 'success' }, ctx)
      return { ...pair, user: userView(user) }
    },

    async refresh(input: { refresh_token: string }, ctx: AuditContext): Promise<TokenPair> {
      const hash = hashSecret(input.refresh_token)
      const [row] = await db
        .select({ token: refreshTokens, session: loginSessions })
        .from(refreshTokens)
        .innerJoin(loginSessions, eq(loginSessions.id, refreshTokens.sessionId))
        .where(eq(refreshTokens.tokenHash, hash))
      if (!row) throw authErrors.tokenInvalid('unknown_refresh_token')
      const { token, session } = row
      const actor = { id: session.userId, type: 'user' as const }
      if (session.revokedAt) throw authErrors.tokenRevoked()
      if (token.expiresAt.getTime() <= Date.now() || session.expiresAt.getTime() <= Date.now()) {
        throw authErrors.tokenInvalid('expired')
      }
      // Rotation: exactly one presentation of a refresh token wins; any other is reuse.
      const claimed = await db
        .update(refreshTokens)
        .set({ usedAt: new Date() })
        .where(and(eq(refreshTokens.id, token.id), sql`${refreshTokens.usedAt} is null`))
        .returning({ id: refreshTokens.id })
      if (claimed.length === 0) {
        await revocation.revokeSession({ sessionId: session.id, tenantId: session.tenantId, userId: session.userId, reason: 'refresh_token_reuse' })
        await audit.record({ tenantId: session.tenantId, actor, action: 'auth.refresh_reuse', target: { type: 'session', id: session.id }, outcome: 'denied' }, ctx)
        throw authErrors.tokenRevoked()
      }
      const user = await identity.user(session.userId)
      if (!user) throw authErrors.userNotFound()
      if (user.status !== 'active') throw authErrors.userDisabled()
      const tenant = await identity.tenant(user.tenantId)
      if (!tenant || tenant.status !== 'active') throw authErrors.tenantSuspended()
      const pair = await issuePair(user, session.id)
      await audit.record({ tenantId: session.tenantId, actor, action: 'auth.refresh', target: { type: 'session', id: session.id }, outcome: 'success' }, ctx)
      return pair
    },

    async logout(principal: Principal, ctx: AuditContext): Promise<void> {
      if (principal.kind === 'api_key') throw authErrors.keyHasNoSession()
      if (principal.jti && principal.expiresAt) {
        await revocation.revokeToken({
          jti: principal.jti,
          tenantId: principal.homeTenantId,
          userId: principal.userId,
          expiresAt: principal.expiresAt,
          reason: 'logout',
        })
      }
      if (principal.sessionId) {
        await revocation.revokeSession({ sessionId: principal.sessionId, tenantId: principal.homeTenantId, userId: principal.userId, reason: 'logout' })
      }
      await audit.record({ tenantId: principal.homeTenantId, actor: { id: principal.userId, type: principal.kind }, action: 'auth.logout', target: principal.sessionId ? { type: 'session', id: principal.sessionId } : undefined, outcome: 'success' }, ctx)
    },

    /** the caller, their tenant and effective permissions; computed once per identity-cache entry */
    me(principal: Principal) {
      const user = identity.peekUser(principal.userId)
      const tenant = identity.peekTenant(principal.tenantId)
      const known = user && tenant ? views.get(principal.subject) : undefined
      if (known && known.user === user && known.tenant === tenant) return known.view
      return (async () => {
        const [u, t] = await Promise.all([identity.user(principal.userId), identity.tenant(principal.tenantId)])
        if (!u || !t) throw authErrors.userNotFound()
        const view = {
          user: { ...userView(u), status: u.status },
          tenant: { id: t.id, name: t.name, status: t.status },
          permissions: effectiveGrants(principal.subject),
        }
        views.set(principal.subject, { user: u, tenant: t, view })
        return view
      })()
    },
  }
}

export type AuthService = ReturnType<typeof createAuthService>
