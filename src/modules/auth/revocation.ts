/**
 * Revocation that holds: the jti and session denylists live in Postgres (durable) and in the store (shared,
 * with TTL = remaining lifetime), and every revocation is announced on the invalidation bus.
 *
 * Each instance keeps a mirror of the denylists, loaded from Postgres and fed by the bus, and answers from it
 * without a store round trip — but only while the mirror is known complete: loaded, the bus subscription up,
 * and the store answering a ping at least every MIRROR_FRESH_MS. Otherwise (a lost subscription, a hung or
 * stopped Redis, a reload in progress) it reads the store's denylists per request, which fails closed when the
 * store cannot answer. When the store comes back empty — a Redis restart — the marker key is gone, and the
 * store's denylists are reloaded from Postgres before any token is trusted on that path.
 */
import { and, eq, gt, isNotNull } from 'drizzle-orm'
import type { Database } from '../../db'
import { loginSessions, revokedTokens } from '../../db/schema'
import type { Logger } from '../../observability/logger'
import { keys, type Store } from '../../store'
import type { InvalidationBus } from './invalidation'

export interface Revocation {
  /** 'revoked' when the token or its login session was revoked; throws StoreUnavailableError */
  check(token: { jti: string; tenantId: string; sessionId?: string }): Promise<'ok' | 'revoked'>
  /** the mirror's answer without waiting, or undefined when the mirror is not trusted now (use check) */
  checkLocal(jti: string, tenantId: string, sessionId?: string): 'ok' | 'revoked' | undefined
  /** durable, shared, and announced to every instance */
  revokeToken(t: { jti: string; tenantId: string; userId: string; expiresAt: number; reason: string }): Promise<void>
  /** revokes a login session and with it every token issued from it */
  revokeSession(s: { sessionId: string; tenantId: string; userId: string; reason: string }): Promise<void>
  /** whether checks are answered from the local mirror right now */
  readonly mirrorTrusted: boolean
  stop(): void
}

export interface RevocationOptions {
  db: Database
  store: Store
  logger: Logger
  bus: InvalidationBus
  /** the longest an access token lives: a revoked session's entry is kept that long. @default 3600 */
  accessTtlS?: number
}

const RELOAD_BATCH = 500
/** how often the store is pinged while the mirror is in use */
const PING_INTERVAL_MS = 250
/** the mirror is trusted only if the store answered a ping this recently (a hung Redis delivers no notices) */
const MIRROR_FRESH_MS = 750
/** a failed mirror load is retried after this long */
const RELOAD_RETRY_MS = 1_000

export function createRevocation({ db, store, logger, bus, accessTtlS = 3600 }: RevocationOptions): Revocation {
  let storeReloading: Promise<void> | undefined

  // ---- the local mirror: jti → expiry (epoch ms), `tenant:session` → expiry (epoch ms)
  const jtis = new Map<string, number>()
  const sessions = new Map<string, number>()
  const sessionKey = (tenantId: string, sessionId: string) => `${tenantId}:${sessionId}`
  /** the mirror holds every revocation: loaded after the subscription (re)started, none missed since */
  let complete = false
  let linkUp = true
  let lastPingOk = performance.now()
  const pingless = store.kind === 'memory' // in-process: the bus cannot lose a notice, the store cannot hang
  let generation = 0
  let stopped = false

  const sessionUntil = (revokedAtMs: number, expiresAtMs: number) => Math.min(expiresAtMs, revokedAtMs + accessTtlS * 1000)

  bus.onMessage((m) => {
    if (m.t === 'jti') jtis.set(m.jti, m.exp ? m.exp * 1000 : Date.now() + accessTtlS * 1000)
    else if (m.t === 'session') sessions.set(sessionKey(m.tenant, m.id), m.until ? m.until * 1000 : Date.now() + accessTtlS * 1000)
    else if (m.t === 'lost') {
      linkUp = false
      complete = false
    } else if (m.t === 'all') {
      linkUp = true
      void loadMirror()
    }
  })

  /** every revocation that still matters, from Postgres: tokens not yet expired, revoked sessions not yet expired */
  async function liveRevocations() {
    const now = new Date()
    const [tokens, revokedSessions] = await Promise.all([
      db.select({ jti: revokedTokens.jti, expiresAt: revokedTokens.expiresAt }).from(revokedTokens).where(gt(revokedTokens.expiresAt, now)),
      db
        .select({ id: loginSessions.id, tenantId: loginSessions.tenantId, revokedAt: loginSessions.revokedAt, expiresAt: loginSessions.expiresAt })
        .from(loginSessions)
        .where(and(isNotNull(loginSessions.revokedAt), gt(loginSessions.expiresAt, now))),
    ])
    return { tokens, sessions: revokedSessions }
  }

  /** adds every live revocation from Postgres (notices arriving meanwhile are kept: entries are only added) */
  async function loadMirror(): Promise<void> {
    const mine = ++generation
    complete = false
    try {
      const { tokens, sessions: revokedSessions } = await liveRevocations()
      const now = Date.now()
      for (const t of tokens) jtis.set(t.jti, t.expiresAt.getTime())
      for (const s of revokedSessions) {
        const until = sessionUntil(s.revokedAt!.getTime(), s.expiresAt.getTime())
        if (until > now) sessions.set(sessionKey(s.tenantId, s.id), until)
      }
      if (mine === generation && linkUp) complete = true
    } catch (err) {
      logger.warn({ err }, 'could not load revocations into the local mirror; checking the store per request')
      if (mine === generation && !stopped) setTimeout(() => mine === generation && void loadMirror(), RELOAD_RETRY_MS).unref()
    }
  }

  function prune(): void {
    const now = Date.now()
    for (const [k, until] of jtis) if (until <= now) jtis.delete(k)
    for (const [k, until] of sessions) if (until <= now) sessions.delete(k)
  }

  let pinging = false
  const timer = setInterval(() => {
    prune()
    if (pingless || pinging) return
    pinging = true
    store
      .ping()
      .then(() => (lastPingOk = performance.now()), () => {})
      .finally(() => (pinging = false))
  }, PING_INTERVAL_MS)
  timer.unref()
  void loadMirror()

  function trusted(): boolean {
    return complete && linkUp && (pingless || performance.now() - lastPingOk < MIRROR_FRESH_MS)
  }

  function fromMirror(jti: string, tenantId: string, sessionId: string | undefined): 'ok' | 'revoked' {
    const now = Date.now()
    const j = jtis.get(jti)
    if (j !== undefined && j > now) return 'revoked'
    if (sessionId) {
      const s = sessions.get(sessionKey(tenantId, sessionId))
      if (s !== undefined && s > now) return 'revoked'
    }
    return 'ok'
  }

  // ---- the store's denylists: the path when the mirror is not trusted

  async function reloadStore(): Promise<void> {
    const { tokens, sessions: revokedSessions } = await liveRevocations()
    const writes = [
      ...tokens.map((t) => () => setUntil(keys.revokedJti(t.jti), t.expiresAt)),
      ...revokedSessions.map((s) => () => setUntil(keys.revokedSession(s.tenantId, s.id), s.expiresAt)),
    ]
    for (let i = 0; i < writes.length; i += RELOAD_BATCH) {
      await Promise.all(writes.slice(i, i + RELOAD_BATCH).map((w) => w()))
    }
    await store.set(keys.revocationsLoaded(), new Date().toISOString())
    logger.info({ tokens: tokens.length, sessions: revokedSessions.length }, 'revocations loaded into the store')
  }

  async function setUntil(key: string, until: Date): Promise<void> {
    const ttlMs = until.getTime() - Date.now()
    if (ttlMs > 0) await store.set(key, '1', { ttlMs })
  }

  async function ensureStoreLoaded(): Promise<void> {
    storeReloading ??= reloadStore().finally(() => {
      storeReloading = undefined
    })
    await storeReloading
  }

  async function fromStore(jti: string, tenantId: string, sessionId: string | undefined): Promise<'ok' | 'revoked'> {
    // one round trip: the two denylists and the marker that says the store still holds them
    // (a token without a session reads a session key no session can have)
    const read = () => store.mGet([keys.revokedJti(jti), keys.revokedSession(tenantId, sessionId ?? '-'), keys.revocationsLoaded()])
    let [jtiRevoked, sessionRevoked, loaded] = await read()
    if (!loaded) {
      await ensureStoreLoaded()
      ;[jtiRevoked, sessionRevoked] = await read()
    }
    return jtiRevoked !== null || sessionRevoked !== null ? 'revoked' : 'ok'
  }

  return {
    async check({ jti, tenantId, sessionId }) {
      return trusted() ? fromMirror(jti, tenantId, sessionId) : fromStore(jti, tenantId, sessionId)
    },

    checkLocal(jti, tenantId, sessionId) {
      return trusted() ? fromMirror(jti, tenantId, sessionId) : undefined
    },

    async revokeToken({ jti, tenantId, userId, expiresAt, reason }) {
      const until = new Date(expiresAt * 1000)
      await db.insert(revokedTokens).values({ jti, tenantId, userId, expiresAt: until, reason }).onConflictDoNothing()
      // announced before the store write, so every mirror holds what Postgres holds even if the store fails
      await bus.publish({ t: 'jti', tenant: tenantId, user: userId, jti, exp: expiresAt })
      await setUntil(keys.revokedJti(jti), until)
    },

    async revokeSession({ sessionId, tenantId, userId, reason }) {
      const revokedAt = new Date()
      const [row] = await db
        .update(loginSessions)
        .set({ revokedAt, revokedReason: reason })
        .where(and(eq(loginSessions.id, sessionId), eq(loginSessions.tenantId, tenantId)))
        .returning({ expiresAt: loginSessions.expiresAt })
      if (!row) return
      const until = Math.ceil(sessionUntil(revokedAt.getTime(), row.expiresAt.getTime()) / 1000)
      await bus.publish({ t: 'session', tenant: tenantId, user: userId, id: sessionId, until })
      await setUntil(keys.revokedSession(tenantId, sessionId), row.expiresAt)
    },

    get mirrorTrusted() {
      return trusted()
    },

    stop() {
      stopped = true
      generation++
      clearInterval(timer)
    },
  }
}
