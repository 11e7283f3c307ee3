/**
 * Concurrent voice sessions per user and per tenant, counted across instances in the shared store.
 *
 * Each live session has an "alive" key its holder refreshes, naming the holder instance, and is a member of a
 * per-user and a per-tenant set. A session counts while its alive key exists and its holder runs (presence), so
 * the sessions of a crashed instance stop counting within seconds (and are pruned from the sets by the next
 * admission). Admission adds first and counts afterwards: two sessions racing for the last slot may both be
 * refused, never both admitted.
 */
import { AppError } from '../../errors'
import type { Presence, Store } from '../../store'
import { keys } from '../../store/keys'

/** the alive key outlives three missed refreshes */
export const ALIVE_TTL_MS = 90_000
export const ALIVE_REFRESH_MS = 30_000
const SET_TTL_MS = 24 * 60 * 60 * 1000

export interface SessionSlot {
  tenantId: string
  userId: string
  sessionId: string
}

export interface Limits {
  perUser: number
  perTenant: number
}

export function sessionLimitExceeded(scope: 'user' | 'tenant', limit: number) {
  return new AppError(429, 'QUOTA_EXCEEDED', `Too many concurrent voice sessions for this ${scope}`, { scope, limit }, { headers: { 'retry-after': '5' } })
}

export function createSessionSlots(store: Store, presence?: Pick<Presence, 'id' | 'gone'>) {
  /** the alive key's value: the holder instance (earlier versions wrote the owner's user id) */
  const holder = (slot: SessionSlot) => presence?.id ?? slot.userId

  /** for each session: its alive key exists and names no instance known to have stopped */
  async function liveOf(sessions: ReadonlyArray<{ tenantId: string; id: string }>): Promise<boolean[]> {
    if (sessions.length === 0) return []
    const values = await store.mGet(sessions.map((s) => keys.voiceSessionAlive(s.tenantId, s.id)))
    const holders = values.filter((v): v is string => v?.startsWith('inst_') === true)
    const gone = presence && holders.length > 0 ? await presence.gone(holders) : new Set<string>()
    return values.map((v) => v !== null && !gone.has(v))
  }

  /** members of `set` that are live; prunes the others */
  async function live(set: string, tenantId: string): Promise<number> {
    const members = await store.sMembers(set)
    const alive = await liveOf(members.map((id) => ({ tenantId, id })))
    const dead = members.filter((_, i) => !alive[i])
    if (dead.length > 0) void store.sRem(set, dead).catch(() => {})
    return members.length - dead.length
  }

  async function release(slot: SessionSlot): Promise<void> {
    await Promise.all([
      store.del(keys.voiceSessionAlive(slot.tenantId, slot.sessionId)),
      store.sRem(keys.voiceUserSessions(slot.tenantId, slot.userId), [slot.sessionId]),
      store.sRem(keys.voiceSessions(slot.tenantId), [slot.sessionId]),
    ])
  }

  return {
    /** takes a slot or throws 429 QUOTA_EXCEEDED (limits of 0 are unlimited) */
    async acquire(slot: SessionSlot, limits: Limits): Promise<void> {
      const userSet = keys.voiceUserSessions(slot.tenantId, slot.userId)
      const tenantSet = keys.voiceSessions(slot.tenantId)
      await store.set(keys.voiceSessionAlive(slot.tenantId, slot.sessionId), holder(slot), { ttlMs: ALIVE_TTL_MS })
      await Promise.all([store.sAdd(userSet, [slot.sessionId], SET_TTL_MS), store.sAdd(tenantSet, [slot.sessionId], SET_TTL_MS)])
      try {
        const [users, tenant] = await Promise.all([
          limits.perUser > 0 ? live(userSet, slot.tenantId) : 0,
          limits.perTenant > 0 ? live(tenantSet, slot.tenantId) : 0,
        ])
        if (limits.perUser > 0 && users > limits.perUser) throw sessionLimitExceeded('user', limits.perUser)
        if (limits.perTenant > 0 && tenant > limits.perTenant) throw sessionLimitExceeded('tenant', limits.perTenant)
      } catch (err) {
        await release(slot).catch(() => {})
        throw err
      }
    },

    /** keeps the slot counted (call every ALIVE_REFRESH_MS) */
    refresh: (slot: SessionSlot) => store.set(keys.voiceSessionAlive(slot.tenantId, slot.sessionId), holder(slot), { ttlMs: ALIVE_TTL_MS }),

    release,

    /** whether the session is live on some instance */
    isLive: async (tenantId: string, sessionId: string) => (await liveOf([{ tenantId, id: sessionId }]))[0]!,

    /** the same for several sessions, in one read of their alive keys */
    liveOf,
  }
}

export type SessionSlots = ReturnType<typeof createSessionSlots>
