/**
 * Voice sessions on this instance and across instances (contract §5): admission (limits, conversation),
 * the live sessions with their ticker (server ping, idle close, liveness refresh), persistence of the
 * session row and of the transcript, revocation, observers (Bun topics here, the store's pub/sub between
 * instances), ending a session wherever it runs, and shutdown. Framework-free.
 */
import { and, desc, eq, inArray, lt, type SQL } from 'drizzle-orm'
import { type Database, storeThroughOutage, tryAgainWhileUnreachable } from '../../db'
import { type VoiceSession as VoiceSessionRow, voiceSessions } from '../../db/schema'
import { AppError } from '../../errors'
import type { PageRequest } from '../../http/models'
import { newId } from '../../lib/ids'
import { BackgroundRetries } from '../../lib/retry'
import type { Logger } from '../../observability/logger'
import type { Metrics } from '../../observability/metrics'
import { jsonMessages, type Presence, type Store } from '../../store'
import { channels } from '../../store/keys'
import { decide } from '../access'
import type { IdentityCache } from '../auth/identity-cache'
import type { LiveConnections } from '../auth/live-connections'
import type { Principal } from '../auth/principal'
import type { ConversationService } from '../conversations/service'
import type { MessageWriter } from '../conversations/writer'
import { ALIVE_REFRESH_MS, createSessionSlots, type SessionSlot } from './limits'
import { VOICE_CONFIG_DEFAULTS, type VoiceConfig } from './protocol'
import { type ClientSocket, type EndReason, type SessionContext, STATUS_OF, VoiceSession } from './session'

export interface VoiceServiceOptions {
  maxSessionsPerUser: number
  maxSessionsPerTenant: number
  maxBufferedBytes: number
  pingIntervalMs: number
  idleTimeoutMs: number
  upstreamConnectTimeoutMs: number
  /** the sweep for rows a stopped instance left active: its period, and the youngest row it touches. @default 60000 */
  lostSweepMs?: number
  /** a client's `config.simulate` (the simulator's directives) goes upstream; off in production. @default true */
  forwardSimulate?: boolean
}

export interface VoiceServiceDeps {
  db: Database
  store: Store
  /** this instance, named in its sessions' alive keys */
  presence?: Pick<Presence, 'id' | 'gone'>
  identity: IdentityCache
  live: LiveConnections
  conversations: ConversationService
  writer: MessageWriter
  upstreamUrls: () => readonly string[]
  logger: Logger
  metrics: Metrics
  options: VoiceServiceOptions
}

/** what the upgrade decided, carried into the socket's open */
export interface Admission {
  slot: SessionSlot
  principal: Principal
  conversationId: string
  config: VoiceConfig
  traceparent?: string
  requestId: string
}

type Control = { t: 'end' | 'watch'; tenant: string; id: string }

/** how long a remote observer's watch lasts; it is renewed at a third of that */
const WATCH_TTL_MS = 60_000
/** rows a stopped instance left active, marked per sweep at most */
const LOST_SWEEP_BATCH = 500

export const voiceErrors = {
  notFound: () => new AppError(404, 'VOICE_SESSION_NOT_FOUND', 'Voice session not found'),
  notLive: () => new AppError(409, 'VOICE_SESSION_NOT_LIVE', 'The voice session has ended'),
  closing: () => new AppError(503, 'SHUTTING_DOWN', 'The gateway is shutting down'),
}

export const topicOf = (tenantId: string, sessionId: string) => `voice:${tenantId}:${sessionId}`

export function voiceSessionView(row: VoiceSessionRow) {
  return {
    id: row.id,
    user_id: row.userId,
    conversation_id: row.conversationId,
    status: row.status,
    end_reason: row.endReason,
    config: row.config,
    packets: row.packets,
    bytes: row.bytes,
    avg_relay_latency_ms: row.avgRelayLatencyMs,
    asr_count: row.asrCount,
    tts_count: row.ttsCount,
    error_count: row.errorCount,
    dropped_frames: row.droppedFrames,
    started_at: row.startedAt.toISOString(),
    ended_at: row.endedAt?.toISOString() ?? null,
  }
}

export function createVoiceService(deps: VoiceServiceDeps) {
  const { db, store, identity, live, conversations, writer, logger, metrics, options } = deps
  const slots = createSessionSlots(store, deps.presence)
  const sessions = new Map<string, VoiceSession>()
  const sessionKey = (tenantId: string, id: string) => `${tenantId}\u0000${id}`
  /** observer sockets on this instance, by session key; `bridges`: store subscriptions for remote sessions */
  const observers = new Map<string, Set<ClientSocket>>()
  const bridges = new Map<string, { unsubscribe: Promise<(() => Promise<void>) | undefined>; renew: ReturnType<typeof setInterval> }>()
  const pending = new Set<Promise<unknown>>()
  let closing = false
  let upstreamTurn = 0

  const gauge = metrics.websocketConnections.labels('voice')
  const latencyChild = { upstream: metrics.voiceRelayLatency.labels('upstream'), downstream: metrics.voiceRelayLatency.labels('downstream') }

  /** session rows tried again while the database is unreachable; shutdown cuts them short */
  const retries = new BackgroundRetries()

  function track<T>(p: Promise<T>): Promise<T> {
    pending.add(p)
    void p.finally(() => pending.delete(p)).catch(() => {})
    return p
  }

  // ---- control from other instances: end and watch, acted on by the session's holder
  const control = store
    .subscribe(
      channels.voiceControl(),
      jsonMessages<Control>((m) => {
        const session = sessions.get(sessionKey(m.tenant, m.id))
        if (!session || session.ended) return
        if (m.t === 'end') session.end('deleted')
        else if (m.t === 'watch') session.remoteWatchUntil = Date.now() + WATCH_TTL_MS
      }),
    )
    .catch((err: unknown) => {
      logger.warn({ err }, 'voice control channel unavailable: sessions of this instance cannot be ended or observed from others')
      return undefined
    })

  // ---- one ticker for every session: pings, idle close, liveness refresh, watch expiry
  const tickMs = Math.max(5, Math.floor(Math.min(options.pingIntervalMs, options.idleTimeoutMs) / 4))
  let ticker: ReturnType<typeof setInterval> | undefined
  let lastRefresh = Date.now()
  /**
   * Rows an instance left `active` when it died (no ending was seen): once the session is live nowhere — its
   * alive key gone or its holder's presence lapsed — the row says `failed`, end_reason `instance_lost`.
   * Rows younger than one sweep period are left alone.
   */
  const lostSweepMs = options.lostSweepMs ?? 60_000
  async function sweepLost(): Promise<void> {
    const rows = await db
      .select({ id: voiceSessions.id, tenantId: voiceSessions.tenantId })
      .from(voiceSessions)
      .where(and(eq(voiceSessions.status, 'active'), lt(voiceSessions.startedAt, new Date(Date.now() - lostSweepMs))))
      .limit(LOST_SWEEP_BATCH)
    const candidates = rows.filter((r) => !sessions.has(sessionKey(r.tenantId, r.id)))
    const live = await slots.liveOf(candidates)
    const lost = candidates.filter((_, i) => !live[i])
    if (lost.length === 0) return
    const marked = await db
      .update(voiceSessions)
      .set({ status: 'failed', endReason: 'instance_lost', endedAt: new Date() })
      .where(and(eq(voiceSessions.status, 'active'), inArray(voiceSessions.id, lost.map((r) => r.id))))
      .returning({ id: voiceSessions.id })
    if (marked.length > 0) logger.warn({ sessions: marked.length }, 'voice sessions of a stopped instance marked failed (instance_lost)')
  }
  const sweeper = setInterval(() => {
    if (!closing) void sweepLost().catch((err: unknown) => logger.warn({ err }, 'could not sweep lost voice sessions'))
  }, lostSweepMs)
  sweeper.unref()

  function startTicker(): void {
    ticker ??= setInterval(() => {
      const now = performance.now()
      const wall = Date.now()
      const refresh = wall - lastRefresh >= ALIVE_REFRESH_MS
      if (refresh) lastRefresh = wall
      for (const s of sessions.values()) {
        s.tick(now)
        if (s.remoteWatchUntil > 0 && s.remoteWatchUntil < wall) s.remoteWatchUntil = 0
        if (refresh && !s.ended) slots.refresh({ tenantId: s.tenantId, userId: s.userId, sessionId: s.id }).catch(() => {})
      }
      if (sessions.size === 0) {
        clearInterval(ticker)
        ticker = undefined
      }
    }, tickMs)
  }

  function publish(session: VoiceSession, text: string): void {
    // ws.publish skips the sender: the session's own client is never subscribed, so observers get it all
    if (session.localObservers > 0) session.publishLocal(topicOf(session.tenantId, session.id), text)
    if (session.remoteWatchUntil > 0) store.publish(channels.voiceEvents(session.tenantId, session.id), text).catch(() => {})
  }

  /** an event to this instance's observers of a session (one held elsewhere, or the end of one held here); `session_ended` closes them */
  function toObservers(tenantId: string, id: string, text: string): void {
    const set = observers.get(sessionKey(tenantId, id))
    if (!set) return
    const ended = text.startsWith('{"type":"session_ended"')
    for (const ws of set) {
      ws.send(text)
      if (ended) ws.close(1000, 'session ended')
    }
  }


  /** a transcript line; one whose write meets an unreachable database is tried again in the background */
  function storeMessage(session: VoiceSession, role: 'user' | 'assistant', content: string, status: 'completed' | 'cancelled'): void {
    const conversation = { id: session.conversationId, tenantId: session.tenantId }
    const message = { id: newId('msg'), role, content, modality: 'voice' as const, status, userId: session.userId }
    const about = { session_id: session.id }
    const stored = storeThroughOutage({
      first: writer.append(conversation, message),
      again: () => writer.appendLater(conversation, message),
      failed: (err) => logger.warn({ err, ...about }, 'voice transcript not stored'),
      logger,
      what: 'voice transcript line',
      context: about,
    })
    track(stored.done)
  }

  const context: SessionContext = {
    maxBufferedBytes: options.maxBufferedBytes,
    pingIntervalMs: options.pingIntervalMs,
    idleTimeoutMs: options.idleTimeoutMs,
    connectTimeoutMs: options.upstreamConnectTimeoutMs,
    forwardSimulate: options.forwardSimulate ?? true,
    relayed(direction, ms) {
      // voice_frames_relayed_total follows these counts (metrics.ts)
      latencyChild[direction].observe(ms / 1000)
    },
    dropped(direction, frames) {
      metrics.voiceFramesDropped.inc({ direction }, frames)
    },
    storeUserText: (s, text) => storeMessage(s, 'user', text, 'completed'),
    storeReplyText: (s, text, status) => storeMessage(s, 'assistant', text, status),
    publish,
    onUpstreamTrouble(s, kind) {
      logger.warn({ session_id: s.id, tenant_id: s.tenantId, kind }, 'voice upstream trouble')
    },
    onEnd: ended,
  }

  function ended(session: VoiceSession, reason: EndReason): void {
    const key = sessionKey(session.tenantId, session.id)
    sessions.delete(key)
    unregisters.get(key)?.()
    unregisters.delete(key)
    gauge.dec()
    metrics.voiceSessionEndings.inc({ reason })
    const status = STATUS_OF[reason]
    const endedText = JSON.stringify({ type: 'session_ended', session_id: session.id, status, reason })
    // directly, not through the topic: the client's socket may be closed already
    if (session.localObservers > 0) toObservers(session.tenantId, session.id, endedText)
    if (session.remoteWatchUntil > 0) store.publish(channels.voiceEvents(session.tenantId, session.id), endedText).catch(() => {})
    track(slots.release({ tenantId: session.tenantId, userId: session.userId, sessionId: session.id }).catch(() => {}))
    const c = session.counters
    const ended = {
      status,
      endReason: reason,
      config: { ...session.config },
      packets: c.packets,
      bytes: c.bytes,
      avgRelayLatencyMs: c.latencyCount > 0 ? c.latencyTotalMs / c.latencyCount : null,
      asrCount: c.asr,
      ttsCount: c.tts,
      errorCount: c.errors,
      droppedFrames: c.dropped,
      endedAt: new Date(),
    }
    const update = () => db.update(voiceSessions).set(ended).where(and(eq(voiceSessions.tenantId, session.tenantId), eq(voiceSessions.id, session.id)))
    const about = { session_id: session.id }
    const stored = storeThroughOutage({
      first: update(),
      again: () => retries.start((signal) => tryAgainWhileUnreachable(update, signal)),
      failed: (err) => logger.error({ err, ...about }, 'voice session row not updated'),
      logger,
      what: 'voice session row',
      context: about,
    })
    track(stored.done)
    logger.info({ session_id: session.id, tenant_id: session.tenantId, user_id: session.userId, reason, packets: c.packets, dropped: c.dropped }, 'voice session ended')
  }
  const unregisters = new Map<string, () => void>()

  function upstreamUrl(sessionId: string, conversationId: string): string {
    const urls = deps.upstreamUrls()
    const base = urls[upstreamTurn++ % urls.length]!
    return `${base.replace(/^http/, 'ws')}/voice/stream?session_id=${encodeURIComponent(sessionId)}&conversation_id=${encodeURIComponent(conversationId)}`
  }

  /** a session row of the caller's tenant the caller may see (own, or any with voice:monitor), else 404 */
  async function visibleRow(caller: Principal, id: string): Promise<VoiceSessionRow> {
    const [row] = await db
      .select()
      .from(voiceSessions)
      .where(and(eq(voiceSessions.tenantId, caller.tenantId), eq(voiceSessions.id, id)))
    if (!row) throw voiceErrors.notFound()
    if (row.userId !== caller.userId && !decide(caller.subject, 'voice:monitor').allowed) throw voiceErrors.notFound()
    return row
  }

  return {
    /**
     * Before the upgrade: the concurrent-session limits (429) and the conversation (404 for one the caller
     * may not write to; 403 when they may not create one).
     */
    async admit(principal: Principal, input: { conversationId?: string; language?: string; traceparent?: string; requestId: string }): Promise<Admission> {
      if (closing) throw voiceErrors.closing()
      if (input.conversationId) await conversations.getWritable(principal, input.conversationId)
      else conversations.assertCanCreate(principal)
      const tenant = await identity.tenant(principal.tenantId)
      const slot = { tenantId: principal.tenantId, userId: principal.userId, sessionId: newId('vs') }
      await slots.acquire(slot, {
        perUser: tenant?.quotas.concurrent_voice_sessions_per_user ?? options.maxSessionsPerUser,
        perTenant: tenant?.quotas.concurrent_voice_sessions ?? options.maxSessionsPerTenant,
      })
      let conversationId = input.conversationId
      if (!conversationId) {
        try {
          conversationId = (await conversations.create(principal, 'Voice session')).id
        } catch (err) {
          await slots.release(slot).catch(() => {})
          throw err
        }
      }
      const config = { ...VOICE_CONFIG_DEFAULTS, ...(input.language && { language: input.language }) }
      return { slot, principal, conversationId, config, traceparent: input.traceparent, requestId: input.requestId }
    },

    /** the socket is open: start the session (its upstream and its row) */
    open(client: ClientSocket, admission: Admission): VoiceSession {
      const { slot, principal } = admission
      const session = new VoiceSession(
        client,
        {
          id: slot.sessionId,
          tenantId: slot.tenantId,
          userId: slot.userId,
          conversationId: admission.conversationId,
          config: admission.config,
          upstreamUrl: upstreamUrl(slot.sessionId, admission.conversationId),
          traceparent: admission.traceparent,
          requestId: admission.requestId,
        },
        context,
      )
      const key = sessionKey(slot.tenantId, slot.sessionId)
      sessions.set(key, session)
      gauge.inc()
      unregisters.set(
        key,
        live.register({
          id: `voice:${slot.tenantId}:${slot.sessionId}`,
          kind: 'voice',
          tenantId: principal.tenantId,
          userId: principal.userId,
          sessionId: principal.sessionId,
          jti: principal.jti,
          apiKeyId: principal.apiKeyId,
          conversationId: admission.conversationId,
          permission: 'voice:write',
          keyGrants: principal.subject.keyGrants,
          startedAt: Date.now(),
          end: (reason) => session.end(reason === 'admin_ended' ? 'deleted' : 'token_revoked'),
        }),
      )
      startTicker()
      track(
        db
          .insert(voiceSessions)
          .values({ id: slot.sessionId, tenantId: slot.tenantId, userId: slot.userId, conversationId: admission.conversationId, config: { ...admission.config }, startedAt: session.startedAt })
          .then(
            () => session.persistedOk(),
            (err: unknown) => {
              logger.error({ err, session_id: slot.sessionId }, 'voice session row not stored')
              session.end('internal_error')
            },
          ),
      )
      if (closing) session.end('shutdown')
      return session
    },

    /** ends a session of the caller's tenant wherever it runs (owner, or voice:monitor) */
    async end(caller: Principal, id: string) {
      const row = await visibleRow(caller, id)
      const local = sessions.get(sessionKey(row.tenantId, row.id))
      const ended = { id: row.id, userId: row.userId, status: STATUS_OF.deleted as VoiceSessionRow['status'] }
      if (local) {
        local.end('deleted')
        return ended
      }
      if (row.status !== 'active' || !(await slots.isLive(row.tenantId, row.id))) return { ...ended, status: row.status }
      await store.publish(channels.voiceControl(), JSON.stringify({ t: 'end', tenant: row.tenantId, id: row.id } satisfies Control))
      return ended
    },

    get: async (caller: Principal, id: string) => voiceSessionView(await visibleRow(caller, id)),

    /** newest first: the caller's own, or the tenant's with voice:monitor (optionally one member's) */
    async list(caller: Principal, filter: { userId?: string; status?: VoiceSessionRow['status'] }, page: PageRequest) {
      const monitor = decide(caller.subject, 'voice:monitor').allowed
      const userId = monitor ? filter.userId : caller.userId
      const where: Array<SQL | undefined> = [
        eq(voiceSessions.tenantId, caller.tenantId),
        userId !== undefined ? eq(voiceSessions.userId, userId) : undefined,
        filter.status ? eq(voiceSessions.status, filter.status) : undefined,
        page.cursor ? lt(voiceSessions.id, page.cursor) : undefined,
      ]
      const rows = await db
        .select()
        .from(voiceSessions)
        .where(and(...where))
        .orderBy(desc(voiceSessions.id))
        .limit(page.limit + 1)
      const items = rows.slice(0, page.limit)
      return { items: items.map(voiceSessionView), next_cursor: rows.length > page.limit ? items.at(-1)!.id : null }
    },

    /** before an observer's upgrade: the session must be visible and live somewhere */
    async admitObserver(caller: Principal, id: string): Promise<{ tenantId: string; id: string }> {
      const row = await visibleRow(caller, id)
      const isLocal = sessions.has(sessionKey(row.tenantId, row.id))
      if (!isLocal && (row.status !== 'active' || !(await slots.isLive(row.tenantId, row.id)))) throw voiceErrors.notLive()
      return { tenantId: row.tenantId, id: row.id }
    },

    /** an observer's socket is open: follow the session here, or bridge its events from the instance holding it */
    async observe(ws: ClientSocket, target: { tenantId: string; id: string }): Promise<void> {
      const key = sessionKey(target.tenantId, target.id)
      let set = observers.get(key)
      if (!set) observers.set(key, (set = new Set()))
      set.add(ws)
      const local = sessions.get(key)
      if (local) {
        ws.subscribe(topicOf(target.tenantId, target.id))
        local.localObservers++
      } else if (!bridges.has(key)) {
        const watch = () =>
          store.publish(channels.voiceControl(), JSON.stringify({ t: 'watch', tenant: target.tenantId, id: target.id } satisfies Control)).catch(() => {})
        const unsubscribe = store
          .subscribe(channels.voiceEvents(target.tenantId, target.id), (text) => {
            toObservers(target.tenantId, target.id, text)
          })
          .then(
            async (u) => {
              await watch()
              return u
            },
            () => undefined,
          )
        bridges.set(key, { unsubscribe, renew: setInterval(() => void watch(), WATCH_TTL_MS / 3) })
      }
      await bridges.get(key)?.unsubscribe
      ws.send(JSON.stringify({ type: 'observing', session_id: target.id }))
    },

    unobserve(ws: ClientSocket, target: { tenantId: string; id: string }): void {
      const key = sessionKey(target.tenantId, target.id)
      const set = observers.get(key)
      if (!set?.delete(ws)) return
      const local = sessions.get(key)
      if (local) local.localObservers = Math.max(0, local.localObservers - 1)
      if (set.size > 0) return
      observers.delete(key)
      const bridge = bridges.get(key)
      if (!bridge) return
      bridges.delete(key)
      clearInterval(bridge.renew)
      void bridge.unsubscribe.then((u) => u?.())
    },

    activeCount: () => sessions.size,

    /** shutdown: every session gets session_ending{reason:"shutdown"} and close 1001; resolves when stored */
    async shutdown(): Promise<void> {
      closing = true
      clearInterval(sweeper)
      // transcript lines and session rows waiting for the database try once more as they come, not for a minute
      const retried = Promise.all([retries.stop(), writer.stopRetrying()])
      for (const s of [...sessions.values()]) s.end('shutdown')
      for (const key of [...bridges.keys()]) {
        const bridge = bridges.get(key)!
        clearInterval(bridge.renew)
        await (await bridge.unsubscribe)?.()
      }
      bridges.clear()
      if (ticker) clearInterval(ticker)
      ticker = undefined
      await Promise.all([...pending, retried])
      await (await control)?.()
    },
  }
}

export type VoiceService = ReturnType<typeof createVoiceService>
