/**
 * Revocation that holds: the jti and session denylists live in the store (hot, with TTL = remaining
 * lifetime) and in Postgres (durable). When the store comes back empty — a Redis restart — the marker key
 * is gone, and the denylists are reloaded from Postgres before any token is trusted again.
 */
import { and, eq, gt, isNotNull } from 'drizzle-orm'
import type { Database } from '../../db'
import { loginSessions, revokedTokens } from '../../db/schema'
import type { Logger } from '../../observability/logger'
import { keys, type Store } from '../../store'

export interface Revocation {
  /** 'revoked' when the token or its login session was revoked; throws StoreUnavailableError */
  check(token: { jti: string; tenantId: string; sessionId?: string }): Promise<'ok' | 'revoked'>
  revokeToken(t: { jti: string; tenantId: string; userId: string; expiresAt: number; reason: string }): Promise<void>
  /** revokes a login session and with it every token issued from it */
  revokeSession(s: { sessionId: string; tenantId: string; reason: string }): Promise<void>
}

const RELOAD_BATCH = 500

export function createRevocation({ db, store, logger }: { db: Database; store: Store; logger: Logger }): Revocation {
  let reloading: Promise<void> | undefined

  async function reload(): Promise<void> {
    const now = new Date()
    const [tokens, sessions] = await Promise.all([
      db
        .select({ jti: revokedTokens.jti, expiresAt: revokedTokens.expiresAt })
        .from(revokedTokens)
        .where(gt(revokedTokens.expiresAt, now)),
      db
        .select({ id: loginSessions.id, tenantId: loginSessions.tenantId, expiresAt: loginSessions.expiresAt })
        .from(loginSessions)
        .where(and(isNotNull(loginSessions.revokedAt), gt(loginSessions.expiresAt, now))),
    ])
    const writes = [
      ...tokens.map((t) => () => setUntil(keys.revokedJti(t.jti), t.expiresAt)),
      ...sessions.map((s) => () => setUntil(keys.revokedSession(s.tenantId, s.id), s.expiresAt)),
    ]
    for (let i = 0; i < writes.length; i += RELOAD_BATCH) {
      await Promise.all(writes.slice(i, i + RELOAD_BATCH).map((w) => w()))
    }
    await store.set(keys.revocationsLoaded(), new Date().toISOString())
    logger.info({ tokens: tokens.length, sessions: sessions.length }, 'revocations loaded into the store')
  }

  async function setUntil(key: string, until: Date): Promise<void> {
    const ttlMs = until.getTime() - Date.now()
    if (ttlMs > 0) await store.set(key, '1', { ttlMs })
  }

  async function ensureLoaded(): Promise<void> {
    reloading ??= reload().finally(() => {
      reloading = undefined
    })
    await reloading
  }

  return {
    async check({ jti, tenantId, sessionId }) {
      // one round trip: the two denylists and the marker that says the store still holds them
      // (a token without a session reads a session key no session can have)
      const read = () =>
        store.mGet([keys.revokedJti(jti), keys.revokedSession(tenantId, sessionId ?? '-'), keys.revocationsLoaded()])
      let [jtiRevoked, sessionRevoked, loaded] = await read()
      if (!loaded) {
        await ensureLoaded()
        ;[jtiRevoked, sessionRevoked] = await read()
      }
      return jtiRevoked !== null || sessionRevoked !== null ? 'revoked' : 'ok'
    },

    async revokeToken({ jti, tenantId, userId, expiresAt, reason }) {
      const until = new Date(expiresAt * 1000)
      await db
        .insert(revokedTokens)
        .values({ jti, tenantId, userId, expiresAt: until, reason })
        .onConflictDoNothing()
      await setUntil(keys.revokedJti(jti), until)
    },

    async revokeSession({ sessionId, tenantId, reason }) {
      const [row] = await db
        .update(loginSessions)
        .set({ revokedAt: new Date(), revokedReason: reason })
        .where(and(eq(loginSessions.id, sessionId), eq(loginSessions.tenantId, tenantId)))
        .returning({ expiresAt: loginSessions.expiresAt })
      if (row) await setUntil(keys.revokedSession(tenantId, sessionId), row.expiresAt)
    },
  }
}
