/**
 * The chat stream (contract §4), framework-free.
 *
 * A stream runs on the instance that accepted it (a run), independent of any client connection: it stores the
 * question while it calls the algorithm service (the request is answered once the question is stored, or
 * refused if it cannot be), turns each NDJSON line into an SSE event appended to the run's feed, and stores the
 * answer at whatever ending. Client connections only read feeds (`watchFeed`): the original
 * POST, an idempotent re-POST and a resume are the same reader from different positions. A run nobody watches
 * keeps going for the disconnect grace, waiting for a resume, then is cancelled.
 *
 * Across instances (Redis as the store): the request id is claimed in the store (tenant-scoped); while another
 * instance follows the stream, the holder appends the feed to a store log in batches and publishes them, and at
 * the end it writes the whole feed there for the replay TTL (a stream nobody else follows costs no store writes
 * between its start and its end); cancel, watch and unwatch travel on one control channel, and a follower renews
 * its watch, so that one whose unwatch was lost stops counting when its watch lapses. With the in-process
 * store (one instance) none of that is written: the run itself is the replay log, kept for CHAT_REPLAY_TTL_S.
 *
 * Everything that stops a run early (cancel, grace expiry, revoked token, shutdown) aborts its AbortController
 * with a StreamStop; the same signal is the upstream call's, so the upstream socket closes too.
 */
import { storeThroughOutage } from '../../db'
import { AppError } from '../../errors'
import { newId } from '../../lib/ids'
import { BackgroundRetries, tryAgainWhile } from '../../lib/retry'
import type { Metrics } from '../../observability/metrics'
import { channels, jsonMessages, keys, type Presence, type Store } from '../../store'
import { UpstreamError, type UpstreamPool, type UpstreamStream } from '../../upstream'
import type { LiveConnections } from '../auth/live-connections'
import type { Principal } from '../auth/principal'
import type { AppendMessage, ConversationRef, ConversationService } from '../conversations/service'
import type { MessageWriter } from '../conversations/writer'
import { EventFeed, watchFeed } from './feed'
import type { ChatStreamBody } from './model'
import { Answer, AnswerTooLarge } from './answer'
import { formatEvent, PING, splitEvents, unixSeconds } from './sse'


/** CHAT_HISTORY_TURNS: prior messages sent upstream with a new question */
export const HISTORY_TURNS = 10
/** the claim of a live stream's request id expires unless its holder refreshes it (a crashed holder's ages out) */
const LIVE_CLAIM_TTL_MS = 60_000
const CLAIM_REFRESH_MS = 20_000
/** a live stream's event log outlives a silent stretch; set to the replay TTL at the end */
const LIVE_LOG_TTL_MS = 3_600_000
/** how long the holder batches events before writing them to the store */
const FLUSH_MS = 25
/** a running stream's entry in its user's live set expires unless refreshed (a crashed holder's ages out) */
const LIVE_ENTRY_TTL_MS = 60_000
/** a follower checks the holder is still there (its claim, its instance's presence) when it has heard nothing for this long */
const FOLLOWER_CHECK_MS = 3_000
/** a follower renews its watch this often; the holder drops a watch not renewed for WATCH_TTL_MS */
const WATCH_RENEW_MS = 5_000
const WATCH_TTL_MS = 15_000

/** `admin_ended`: DELETE /api/v2/admin/sessions/:id */
export type StopReason = 'client_cancelled' | 'client_disconnected' | 'token_revoked' | 'shutdown' | 'admin_ended'

/** the abort reason of a stream stopped on purpose: it ends with `stream_cancelled`, not `error` */
export class StreamStop extends Error {
  constructor(readonly reason: StopReason) {
    super(`stream stopped: ${reason}`)
    this.name = 'StreamStop'
  }
}

/** the abort reason of a run that already ended (one shared instance: nothing reads it) */
const RUN_OVER = new StreamStop('client_disconnected')

export const chatErrors = {
  streamNotFound: () => new AppError(404, 'STREAM_NOT_FOUND', 'No such stream'),
  pastTheEnd: (after: number, count: number) =>
    new AppError(400, 'VALIDATION_FAILED', `Last-Event-ID ${after} is past this stream's last event (${count - 1})`, [
      { field: 'last_event_id', in: 'header', message: `at most ${count - 1}` },
    ]),
  requestIdInUse: () => new AppError(409, 'IDEMPOTENCY_CONFLICT', 'request_id is already used by another request'),
  tooManyStreams: (limit: number) =>
    new AppError(429, 'QUOTA_EXCEEDED', `At most ${limit} chat streams at a time`, { quota: 'concurrent_streams_per_user', limit, retry_after_s: 1 }, { headers: { 'Retry-After': '1' } }),
  /** Redis or Postgres away: retryable */
  unavailable: (cause: unknown) => new AppError(503, 'SERVICE_UNAVAILABLE', 'Chat streams are unavailable right now', undefined, { cause, headers: { 'Retry-After': '1' } }),
}

interface ChatLogger {
  info(o: object, msg?: string): void
  warn(o: object, msg?: string): void
  error(o: object, msg?: string): void
}

type ChatMetrics = Pick<Metrics, 'chatStreamsActive' | 'chatFirstEvent' | 'chatUpstreamRequests' | 'chatStreamEndings' | 'chatInvalidLines'>

export interface ChatServiceDeps {
  conversations: ConversationService
  /** the question and the answer, group-committed with other streams' */
  writer: MessageWriter
  upstream: Pick<UpstreamPool, 'query'>
  live: Pick<LiveConnections, 'register'>
  store: Store
  /** this instance, named in the claims it holds, so that a follower elsewhere can tell when it is gone */
  presence?: Pick<Presence, 'id' | 'gone'>
  logger: ChatLogger
  metrics?: ChatMetrics
  /** `: ping` period while the stream is silent. @default 15000 */
  pingIntervalMs?: number
  /** how long a run nobody watches keeps going. @default 15000 */
  graceMs?: number
  /** how long a finished stream can be replayed. @default 300000 */
  replayTtlMs?: number
  /** a follower whose checks on the holder fail this long (the store not answering) closes its client's connection. @default 60000 */
  followerPatienceMs?: number
  /** the upstream events of one stream, in bytes, past which the answer is cut. @default 16 MiB */
  maxStreamBytes?: number
  /**
   * finished streams' events kept in memory, in UTF-16 code units: for replay (in-process store), or until the
   * store takes their ending (shared store, while it is away). The oldest go first. @default 256 Mi
   */
  replayMaxBytes?: number
  /** the caller's concurrent_streams_per_user quota (0 = unlimited). @default 4 */
  streamLimit?: (caller: Principal) => Promise<number>
  /** @default Date.now */
  now?: () => number
}

export interface ChatStreamInput {
  caller: Principal
  body: ChatStreamBody
  /** the client's request signal: its abort is a disconnect */
  signal: AbortSignal
  traceparent?: string
}

/** what the store holds for a claimed request id */
export interface Claim {
  user: string
  hash: string
  state: 'live' | 'ended'
  /** the holder instance (absent from claims of earlier versions) */
  inst?: string
}

/** `fid` names a follower: its watch is renewed every WATCH_RENEW_MS and lapses after WATCH_TTL_MS */
type ControlMessage = { tenant: string; rid: string } & ({ t: 'cancel' } | { t: 'watch' | 'unwatch'; fid: string })
type FeedMessage = { from: number; events: string[] } | { count: number; end?: boolean } | { refused: true }

/** one stream running on this instance */
class Run extends EventFeed {
  readonly ctrl = new AbortController()
  /** followers on other instances, by id: until when their watch holds */
  readonly remoteWatchers = new Map<string, number>()
  graceTimer: ReturnType<typeof setTimeout> | undefined
  /** events written to the store so far, and the write in progress */
  flushed = 0
  flushTimer: ReturnType<typeof setTimeout> | undefined
  flushing: Promise<void> = Promise.resolve()
  /** settles when the run has ended and its ending is stored */
  done!: Promise<void>
  /** resolves once the question is stored and the stream starts; rejects with why it was refused instead */
  readonly ready: Promise<void>
  readonly accept: () => void
  readonly refuse: (err: unknown) => void
  /** its member in the user's live set (concurrent_streams_per_user) */
  liveMember = ''
  constructor(
    readonly tenantId: string,
    readonly userId: string,
    readonly requestId: string,
    readonly hash: string,
  ) {
    super()
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    promise.catch(() => {})
    this.ready = promise
    this.accept = resolve
    this.refuse = reject
  }

  stop(reason: StopReason): void {
    if (!this.ctrl.signal.aborted) this.ctrl.abort(new StreamStop(reason))
  }
}

/** a stored claim; undefined when absent or unreadable */
export function parseClaim(raw: string | null): Claim | undefined {
  if (!raw) return undefined
  try {
    return JSON.parse(raw) as Claim
  } catch {
    return undefined
  }
}

/** the same request asked again: every field that shapes the answer */
function bodyHash(body: ChatStreamBody): string {
  const canonical = JSON.stringify([body.message, body.conversation_id ?? null, body.stream_id ?? null, body.model, body.temperature, body.max_tokens])
  return Bun.hash(canonical).toString(36)
}

/**
 * How often one request claims its request id again: each time another request with the same id held it and let it
 * go (it was refused, or its claim expired), so copies of one POST sent at once each need a turn at most.
 */
const MAX_ATTEMPTS = 8

/** a run given up because another instance holds its request id: a request attached to it asks again */
const CLAIMED_ELSEWHERE = new Error('the request id is claimed elsewhere')

/** followed, a request id has neither a claim nor events: its stream was refused before it started, or is long gone */
const NO_STREAM = new Error('no stream under this request id')

/** the question could not be stored: the stream does not start, the request fails (404, 503) */
class QuestionRefused extends Error {
  constructor(override readonly cause: unknown) {
    super('the question could not be stored')
    this.name = 'QuestionRefused'
  }
}

function upstreamFailure(err: unknown): { code: string; error: string } | undefined {
  if (err instanceof UpstreamError) return { code: err.code, error: err.message }
  if (err instanceof AnswerTooLarge) return { code: 'STREAM_ERROR', error: `The answer is larger than the gateway relays (${err.limit} bytes)` }
  return undefined
}

/**
 * Finished runs held in memory, oldest first, with their events' size (UTF-16 code units): past `cap` the oldest
 * are let go. The in-process store's replay logs and, behind Redis, the endings waiting for it to come back.
 */
class HeldRuns<E extends { run: Run; bytes: number }> {
  private readonly entries: E[] = []
  private bytes = 0
  constructor(
    private readonly cap: number,
    private readonly letGo: (entry: E, heldBytes: number) => void,
  ) {}

  add(entry: E): void {
    this.entries.push(entry)
    this.bytes += entry.bytes
    while (this.bytes > this.cap) this.evict(this.entries[0]!)
  }

  get oldest(): E | undefined {
    return this.entries[0]
  }

  /** lets go of the oldest while `over` says so */
  expire(over: (entry: E) => boolean): void {
    while (this.entries.length > 0 && over(this.entries[0]!)) this.evict(this.entries[0]!)
  }

  /** no longer held (nothing to let go) */
  remove(entry: E): void {
    const i = this.entries.indexOf(entry)
    if (i === -1) return
    this.entries.splice(i, 1)
    this.bytes -= entry.bytes
  }

  private evict(entry: E): void {
    const held = this.bytes
    this.remove(entry)
    this.letGo(entry, held)
  }
}

export function createChatService(deps: ChatServiceDeps) {
  const { conversations, writer, upstream, live, store, presence, logger, metrics } = deps
  const pingIntervalMs = deps.pingIntervalMs ?? 15_000
  /** silence is checked four times per ping interval: a ping comes at most 1.25 intervals after the last event */
  const tickMs = Math.max(5, Math.floor(pingIntervalMs / 4))
  const graceMs = deps.graceMs ?? 15_000
  const replayTtlMs = deps.replayTtlMs ?? 300_000
  const followerPatienceMs = deps.followerPatienceMs ?? LIVE_CLAIM_TTL_MS
  const maxStreamBytes = deps.maxStreamBytes ?? 16 * 1024 * 1024
  const replayMaxBytes = deps.replayMaxBytes ?? 256 * 1024 * 1024
  const now = deps.now ?? Date.now
  const streamLimit = deps.streamLimit ?? (async () => 4)
  /** other instances exist only behind a shared store */
  const shared = store.kind !== 'memory'
  /** runs on this instance by tenant and request id: live ones, and (in-process store) ended ones for replay */
  const runs = new Map<string, Run>()
  const runKey = (tenantId: string, requestId: string) => `${tenantId}\u0000${requestId}`
  let closing = false
  /** endings tried again while the store is away (shared store) */
  const endings = new BackgroundRetries()
  /** the runs of those endings, until stored (shared store) */
  const waiting = new HeldRuns<{ run: Run; bytes: number; dropped: boolean }>(replayMaxBytes, dropWaiting)
  /** ended runs kept for replay (in-process store only) */
  const retained = new HeldRuns<{ run: Run; bytes: number; until: number }>(replayMaxBytes, forget)

  // ---- control messages from other instances (cancel, watch, unwatch): acted on by the stream's holder
  const control = shared
    ? store
        .subscribe(
          channels.chatControl(),
          jsonMessages<ControlMessage>((m) => {
            const run = runs.get(runKey(m.tenant, m.rid))
            if (!run || run.ended) return
            if (m.t === 'cancel') run.stop('client_cancelled')
            else if (m.t === 'watch') {
              const fresh = !run.remoteWatchers.has(m.fid)
              run.remoteWatchers.set(m.fid, now() + WATCH_TTL_MS)
              cancelGrace(run)
              // a new follower read the log already or will: tell it how far the log goes
              if (fresh) void flush(run).then(() => publishFeed(run, { count: run.flushed }))
            } else if (m.t === 'unwatch') {
              run.remoteWatchers.delete(m.fid)
              maybeGrace(run)
            }
          }),
        )
        .catch((err: unknown) => {
          logger.warn({ err }, 'chat control channel unavailable: cancel and resume from other instances will not reach this one')
          return undefined
        })
    : Promise.resolve(undefined)

  function maybeGrace(run: Run): void {
    if (run.ended || run.watchers + run.remoteWatchers.size > 0 || run.graceTimer) return
    if (graceMs === 0) return run.stop('client_disconnected')
    run.graceTimer = setTimeout(() => {
      run.graceTimer = undefined
      if (run.watchers + run.remoteWatchers.size === 0) run.stop('client_disconnected')
    }, graceMs)
  }

  function cancelGrace(run: Run): void {
    clearTimeout(run.graceTimer)
    run.graceTimer = undefined
  }

  const watchHooks = (run: Run) => ({ attached: () => cancelGrace(run), detached: () => maybeGrace(run) })

  // ---- the store side of a run (shared store only)

  function publishFeed(run: Run, message: FeedMessage): Promise<void> {
    return store.publish(channels.chat(run.tenantId, run.requestId), JSON.stringify(message)).then(
      () => {},
      (err: unknown) => {
        logger.warn({ err, request_id: run.requestId }, 'could not publish chat events')
      },
    )
  }

  /** writes the events not yet in the store (in order: one write at a time per run) */
  function flush(run: Run, ttlMs = LIVE_LOG_TTL_MS): Promise<void> {
    run.flushing = run.flushing.then(() => writeLog(run, ttlMs).then(() => {}))
    return run.flushing
  }

  /** the store command goes out before this returns: commands issued after it reach Redis after it. True once stored */
  function writeLog(run: Run, ttlMs: number): Promise<boolean> {
    const from = run.flushed
    const to = run.count
    if (to === from) return Promise.resolve(true)
    run.flushed = to
    const logKey = keys.chatEvents(run.tenantId, run.requestId)
    const text = run.textFrom(from)
    // the first write (usually the whole log, at the end) is a SET: much cheaper for Redis than APPEND's script
    const written = from === 0 ? store.set(logKey, text, { ttlMs }) : store.append(logKey, text, ttlMs)
    return landed(run, written, 'could not store chat events: a resume on another instance may miss them').then(async (ok) => {
      if (ok && run.remoteWatchers.size > 0) await publishFeed(run, { from, events: run.between(from, to) })
      return ok
    })
  }

  /** true once the store command succeeded; a failure is logged */
  function landed(run: Run, command: Promise<unknown>, failure: string): Promise<boolean> {
    return command.then(
      () => true,
      (err: unknown) => {
        logger.warn({ err, request_id: run.requestId }, failure)
        return false
      },
    )
  }

  /** while another instance follows the run, its events reach the store within FLUSH_MS; otherwise at the end */
  function scheduleFlush(run: Run): void {
    if (run.remoteWatchers.size === 0 || run.flushTimer) return
    run.flushTimer = setTimeout(() => {
      run.flushTimer = undefined
      if (!run.ended) void flush(run)
    }, FLUSH_MS)
  }

  /** true once stored */
  function writeClaim(run: Run, state: Claim['state'], ttlMs: number): Promise<boolean> {
    const claim: Claim = { user: run.userId, hash: run.hash, state, inst: presence?.id }
    return landed(run, store.set(keys.chatStream(run.tenantId, run.requestId), JSON.stringify(claim), { ttlMs }), 'could not update a chat stream claim')
  }

  async function readClaim(tenantId: string, requestId: string): Promise<Claim | undefined> {
    return parseClaim(await store.get(keys.chatStream(tenantId, requestId)))
  }

  // ---- concurrent_streams_per_user, across instances: a set per user of `<request_id>|<expiry>|<holder>`

  const liveMember = (run: Run) => `${run.requestId}|${now() + LIVE_ENTRY_TTL_MS}${presence ? `|${presence.id}` : ''}`

  /** the members of crashed holders: past their expiry, or held by an instance that no longer runs */
  async function staleMembers(members: string[]): Promise<string[]> {
    const at = now()
    const parsed = members.map((m) => {
      const [, until, inst] = m.split('|')
      return { m, expired: !(Number(until) > at), inst }
    })
    const holders = parsed.flatMap((p) => (!p.expired && p.inst ? [p.inst] : []))
    const gone = presence ? await presence.gone(holders) : new Set<string>()
    return parsed.filter((p) => p.expired || (p.inst !== undefined && gone.has(p.inst))).map((p) => p.m)
  }

  /** adds the run to its user's live set; refuses (429) past the caller's quota */
  async function admitConcurrent(run: Run, caller: Principal): Promise<void> {
    const limit = await streamLimit(caller)
    if (limit === 0) return
    const key = keys.chatLive(run.tenantId, run.userId)
    run.liveMember = liveMember(run)
    let count = await store.sAddCard(key, [run.liveMember], LIVE_ENTRY_TTL_MS * 2)
    if (count > limit) {
      // over: first drop the entries of crashed holders
      const stale = await staleMembers(await store.sMembers(key))
      if (stale.length > 0) await store.sRem(key, stale)
      count -= stale.length
    }
    if (count > limit) {
      await releaseConcurrent(run)
      throw chatErrors.tooManyStreams(limit)
    }
  }

  function refreshConcurrent(run: Run): void {
    if (!run.liveMember) return
    const key = keys.chatLive(run.tenantId, run.userId)
    const old = run.liveMember
    run.liveMember = liveMember(run)
    void store
      .sAdd(key, [run.liveMember], LIVE_ENTRY_TTL_MS * 2)
      .then(() => store.sRem(key, [old]))
      .catch((err: unknown) => logger.warn({ err, request_id: run.requestId }, 'could not refresh a live chat stream entry'))
  }

  /** true once the entry is gone; a failed removal keeps it on the run, to be tried again */
  async function releaseConcurrent(run: Run): Promise<boolean> {
    if (!run.liveMember) return true
    const member = run.liveMember
    run.liveMember = ''
    const removed = await landed(run, store.sRem(keys.chatLive(run.tenantId, run.userId), [member]), 'could not remove a live chat stream entry')
    if (!removed) run.liveMember ||= member
    return removed
  }

  // ---- running a stream

  interface Prepared {
    conversation: ConversationRef
    /** a new conversation is created together with the question */
    isNew: boolean
    history: Array<{ role: string; content: string }>
  }

  /** everything that can refuse the request (404, 403) before any byte of the stream */
  async function prepare(caller: Principal, body: ChatStreamBody): Promise<Prepared> {
    if (body.conversation_id) {
      const conversation = await conversations.getWritable(caller, body.conversation_id)
      return { conversation, isNew: false, history: await conversations.history(conversation, HISTORY_TURNS) }
    }
    conversations.assertCanCreate(caller)
    return { conversation: { id: newId('conv'), tenantId: caller.tenantId, userId: caller.userId }, isNew: true, history: [] }
  }

  async function produce(run: Run, input: ChatStreamInput, prepared: Prepared): Promise<void> {
    const { caller, body } = input
    const { conversation } = prepared
    const started = now()
    const signal = run.ctrl.signal
    metrics?.chatStreamsActive.inc()
    const unregister = live.register({
      id: `chat:${run.tenantId}:${run.requestId}`,
      kind: 'chat',
      tenantId: caller.tenantId,
      userId: caller.userId,
      sessionId: caller.sessionId,
      jti: caller.jti,
      apiKeyId: caller.apiKeyId,
      conversationId: conversation.id,
      permission: 'chat:write',
      keyGrants: caller.subject.keyGrants,
      startedAt: started,
      end: (reason) => run.stop(reason),
    })
    /** the last event or ping: a ping is due after pingIntervalMs of silence */
    let lastSentAt = now()
    let claimRefreshedAt = now()
    const ticker = setInterval(() => {
      if (now() - lastSentAt >= pingIntervalMs) {
        lastSentAt = now()
        run.ping()
      }
      if (now() - claimRefreshedAt >= CLAIM_REFRESH_MS) {
        claimRefreshedAt = now()
        if (shared) void writeClaim(run, 'live', LIVE_CLAIM_TTL_MS)
        refreshConcurrent(run)
      }
      // a follower whose unwatch was lost (Redis away as it left) stops counting once its watch lapses
      if (run.remoteWatchers.size > 0) {
        const before = run.remoteWatchers.size
        for (const [fid, until] of run.remoteWatchers) if (until <= now()) run.remoteWatchers.delete(fid)
        if (run.remoteWatchers.size < before) maybeGrace(run)
      }
    }, tickMs)

    /** appends events to the feed: its watchers get them now, the store (while followed) within FLUSH_MS */
    const relay = (texts: readonly string[], joined?: string) => {
      run.pushAll(texts, joined)
      lastSentAt = now()
      scheduleFlush(run)
    }
    const emit = (name: string, data: Record<string, unknown>) => relay([formatEvent(run.count, name, data)])

    // made after the question is stored: message ids order a conversation
    let messageId = ''
    const answer = new Answer(run.requestId, maxStreamBytes, started, now)
    let upstreamStream: UpstreamStream | undefined
    let upstreamUrl: string | undefined
    let upstreamOutcome = 'cancelled'
    /** the upstream sent its last line: nothing of it is left open */
    let upstreamFinished = false
    let questionStored = false

    /** stores the assistant's message once, with exactly the text of the events sent */
    async function persist(status: 'completed' | 'failed' | 'cancelled'): Promise<void> {
      if (!questionStored) return
      const message: AppendMessage & { id: string } = {
        id: messageId,
        role: 'assistant',
        content: answer.text,
        modality: 'text',
        status,
        references: answer.references ?? null,
        usage: answer.usage ?? null,
        ttftMs: answer.ttftMs ?? null,
        durationMs: now() - started,
        requestId: run.requestId,
        userId: caller.userId,
      }
      const context = { request_id: run.requestId, conversation_id: conversation.id }
      // an unreachable database does not hold up the ending: the answer is tried again in the background
      await storeThroughOutage({
        first: writer.append(conversation, message),
        again: () => writer.appendLater(conversation, message),
        failed: (err) =>
          // the owner deleted the conversation while it streamed: nothing is wrong with the gateway
          err instanceof AppError && err.status === 404
            ? logger.warn(context, 'answer not stored: the conversation was deleted')
            : logger.error({ err, ...context }, 'could not store the assistant message'),
        logger,
        what: 'assistant message',
        context,
      }).first
    }

    /** why the question could not be stored */
    let refusal: unknown
    const streamEnd = () => emit('stream_end', { request_id: run.requestId, lines_processed: answer.lines, duration_ms: now() - started, timestamp: unixSeconds() })
    let ending = 'completed'

    try {
      const question = {
        role: 'user' as const,
        content: body.message,
        modality: 'text' as const,
        status: 'completed' as const,
        requestId: run.requestId,
        userId: caller.userId,
      }
      // the question is stored while the upstream starts; the stream starts (its response, stream_start) once it is
      const stored = prepared.isNew ? writer.start(conversation, question) : writer.append(conversation, question)
      stored.catch(() => {})
      // the stream's id, the client's or ours: the upstream and stream_start name the same one
      const streamId = body.stream_id ?? newId('str')
      const query = upstream.query({
        body: {
          messages: [...prepared.history, { role: 'user', content: body.message }],
          conversation_id: conversation.id,
          stream_id: streamId,
          request_id: run.requestId,
          model: body.model,
          temperature: body.temperature,
          max_tokens: body.max_tokens,
          tenant_id: caller.tenantId,
          user_id: caller.userId,
        },
        requestId: run.requestId,
        traceparent: input.traceparent,
        signal,
      })
      // answered after we stopped waiting: close it
      query.then((s) => signal.aborted && s.cancel('abandoned'), () => {})
      // a question that could not be stored refuses the request (the finally closes the upstream)
      await stored.catch((err: unknown) => {
        throw new QuestionRefused(err)
      })
      questionStored = true
      messageId = newId('msg')
      emit('stream_start', {
        request_id: run.requestId,
        stream_id: streamId,
        conversation_id: conversation.id,
        message_id: messageId,
        timestamp: unixSeconds(),
      })
      run.accept()
      upstreamStream = await query
      upstreamUrl = upstreamStream.upstream
      // the lines of one upstream read are handled in one turn (a cancel can only land between reads)
      for await (const batch of upstreamStream.batches) {
        const first = answer.lines === 0
        answer.take(batch, run.count, relay)
        if (first && answer.lines > 0) metrics?.chatFirstEvent.observe((now() - started) / 1000)
      }
      upstreamFinished = true
      // a 200 with no line of NDJSON in it (an empty body, an HTML page) is a broken upstream, not an empty answer
      if (answer.lines === 0) throw new UpstreamError('STREAM_ERROR', 'The algorithm service ended the stream without an answer', { upstream: upstreamUrl })
      const { failed } = answer
      upstreamOutcome = failed ? 'failed' : 'completed'
      ending = failed ? 'upstream_error' : 'completed'
      await persist(failed ? 'failed' : 'completed')
      streamEnd()
    } catch (err) {
      const reason = signal.aborted ? signal.reason : err
      if (err instanceof QuestionRefused) {
        ending = 'refused'
        refusal = err.cause
      } else if (reason instanceof StreamStop) {
        ending = reason.reason
        await persist('cancelled')
        emit('stream_cancelled', { request_id: run.requestId, reason: reason.reason })
      } else {
        const failure = upstreamFailure(err)
        if (err instanceof UpstreamError) upstreamUrl ??= err.upstream
        // the client reads the contract's message; the driver's reason (the error's cause) is logged here
        if (!failure) logger.error({ err, request_id: run.requestId }, 'chat stream failed')
        else if (err instanceof UpstreamError) logger.warn({ err, request_id: run.requestId, upstream: upstreamUrl }, 'chat stream failed upstream')
        else logger.warn({ request_id: run.requestId, upstream: upstreamUrl, limit: maxStreamBytes }, 'chat answer cut: too large')
        upstreamOutcome =
          err instanceof AnswerTooLarge ? 'cancelled' : failure?.code === 'ALGO_TIMEOUT' ? 'timeout' : failure?.code === 'ALGO_SERVICE_ERROR' ? 'unavailable' : 'failed'
        ending = failure?.code ?? 'STREAM_ERROR'
        await persist('failed')
        emit('error', { ...(failure ?? { code: 'STREAM_ERROR', error: 'The stream failed' }), request_id: run.requestId })
        streamEnd()
      }
    } finally {
      run.finish()
      clearInterval(ticker)
      clearTimeout(run.graceTimer)
      clearTimeout(run.flushTimer)
      // whatever is still pending upstream (a call answered late) must not outlive the run; a clean end has
      // nothing left to close, and creating an error per stream (stack capture) is not free
      if (!signal.aborted) run.ctrl.abort(RUN_OVER)
      if (!upstreamFinished) upstreamStream?.cancel('stream ended')
      unregister()
      metrics?.chatStreamsActive.dec()
      // a refused request never started a stream: not an ending, and its request id is free again
      if (ending !== 'refused') metrics?.chatStreamEndings.inc({ reason: ending })
      if (upstreamUrl) metrics?.chatUpstreamRequests.inc({ upstream: upstreamUrl, outcome: upstreamOutcome })
      if (answer.invalidLines > 0) {
        metrics?.chatInvalidLines.inc(answer.invalidLines)
        logger.warn({ request_id: run.requestId, invalid_lines: answer.invalidLines }, 'upstream sent invalid NDJSON lines')
      }
      if (ending === 'refused') {
        // gone from this instance and the store before the request is answered: the same request id, sent again, starts afresh
        await forgetRefused(run, refusal)
      } else {
        run.refuse(new Error('the stream ended before it started')) // nothing, once it started
        await retire(run)
      }
    }
  }

  /**
   * The ending in the store, in one pipelined burst that Redis runs in this order: the whole log, then the claim
   * says ended, then the followers hear it; the run leaves its user's live set. True when all of it was stored.
   */
  async function storeEnding(run: Run): Promise<boolean> {
    const [logged, claimed, , released] = await Promise.all([
      writeLog(run, replayTtlMs),
      writeClaim(run, 'ended', replayTtlMs),
      publishFeed(run, { count: run.count, end: true }),
      releaseConcurrent(run),
    ])
    return logged && claimed && released
  }

  /** after the end: the replay log and the claim live on for the replay TTL */
  async function retire(run: Run): Promise<void> {
    const key = runKey(run.tenantId, run.requestId)
    if (shared) {
      await run.flushing // a write for a follower still on its way goes first
      if (await storeEnding(run)) {
        if (runs.get(key) === run) runs.delete(key)
        return
      }
      // Redis did not take it: this instance keeps the run (a resume or re-POST here replays it from memory) and
      // tries again in the background, the whole log each time, so other instances can replay it once Redis is back
      const context = { request_id: run.requestId }
      logger.warn(context, 'chat stream ending not stored yet: the store is unreachable; trying again')
      // a long outage with many streams ending must not hold them all: past the cap the oldest are let go
      run.compact()
      const entry = { run, bytes: run.size, dropped: false }
      waiting.add(entry)
      const again = async () => {
        if (entry.dropped) throw new Error('dropped')
        run.flushed = 0
        if (!(await storeEnding(run))) throw new Error('the store did not take the ending')
      }
      void endings
        .start((signal) => tryAgainWhile(again, { retriable: () => !entry.dropped, signal, forMs: replayTtlMs }))
        .then(
          () => logger.info(context, 'chat stream ending stored on a later try'),
          (err: unknown) => {
            if (!entry.dropped) logger.error({ err, ...context }, 'chat stream ending not stored: other instances cannot replay it')
          },
        )
        .finally(() => {
          waiting.remove(entry)
          if (runs.get(key) === run) runs.delete(key)
        })
      return
    }
    await releaseConcurrent(run)
    // in process, the run is the replay log: kept for the replay TTL, the oldest dropped first past the byte cap
    run.compact()
    retained.expire(expired)
    retained.add({ run, bytes: run.size, until: now() + replayTtlMs })
    expireLater()
  }

  const expired = (e: { until: number }) => e.until <= now()
  /** one timer for all the runs kept for replay, due when the oldest expires (they are kept in the order they expire) */
  let expiryTimer: ReturnType<typeof setTimeout> | undefined
  function expireLater(): void {
    const oldest = retained.oldest
    if (expiryTimer || !oldest) return
    expiryTimer = setTimeout(() => {
      expiryTimer = undefined
      retained.expire(expired)
      expireLater()
    }, Math.max(1, oldest.until - now()))
    expiryTimer.unref()
  }

  /** an ending waiting for the store, given up to free its memory: no other instance will replay that stream */
  function dropWaiting(entry: { run: Run; dropped: boolean }, heldBytes: number): void {
    entry.dropped = true
    const { run } = entry
    const key = runKey(run.tenantId, run.requestId)
    if (runs.get(key) === run) runs.delete(key)
    run.clear()
    logger.error(
      { request_id: run.requestId, waiting_bytes: heldBytes, limit: replayMaxBytes },
      'chat stream ending dropped while waiting for the store (CHAT_REPLAY_MAX_BYTES): other instances cannot replay it',
    )
  }

  /** a replay log past its TTL or the cap (in-process store): the stream is gone, and its request id free */
  function forget(entry: { run: Run }): void {
    const { run } = entry
    const key = runKey(run.tenantId, run.requestId)
    if (runs.get(key) !== run) return
    runs.delete(key)
    void store.del(keys.chatStream(run.tenantId, run.requestId)).catch(() => {})
  }

  // ---- following a stream held by another instance (or finished, from the store's log)

  /** a live claim whose holder instance has stopped (crashed: its presence lapsed) */
  async function holderGone(claim: Claim): Promise<boolean> {
    if (claim.state !== 'live' || !claim.inst || !presence) return false
    return (await presence.gone([claim.inst])).has(claim.inst)
  }

  /** the stream another instance holds, through the store; rejects with NO_STREAM when there is none */
  async function follow(tenantId: string, requestId: string, after: number, signal: AbortSignal): Promise<ReadableStream<string>> {
    const feed = new EventFeed()
    const logKey = keys.chatEvents(tenantId, requestId)
    let endAt: number | undefined
    let heardAt = now()
    let lastSentAt = now()
    let filling: Promise<void> = Promise.resolve()

    /** reads the stored log and adds what the feed lacks (one read at a time) */
    const fillFromLog = () => {
      filling = filling.then(async () => {
        try {
          feed.fill(0, splitEvents((await store.get(logKey)) ?? ''))
        } catch (err) {
          logger.warn({ err, request_id: requestId }, 'could not read chat events from the store')
        }
        if (endAt !== undefined && feed.count >= endAt) feed.finish()
      })
      return filling
    }

    /** rejected with NO_STREAM when the holder refuses the stream before it starts */
    const refused = Promise.withResolvers<never>()
    refused.promise.catch(() => {})
    const onFeed = jsonMessages<FeedMessage>((m) => {
      if ('refused' in m) refused.reject(NO_STREAM)
      else if ('events' in m) {
        if (m.from > feed.count) void fillFromLog()
        feed.fill(m.from, m.events)
      } else {
        if (m.end) endAt = m.count
        if (m.count > feed.count || m.end) void fillFromLog()
      }
    })
    const unsubscribe = await store.subscribe(channels.chat(tenantId, requestId), (raw) => {
      heardAt = lastSentAt = now()
      onFeed(raw)
    })
    const fid = crypto.randomUUID()
    let announcedAt = now()
    const announce = (t: 'watch' | 'unwatch') => {
      announcedAt = now()
      return store.publish(channels.chatControl(), JSON.stringify({ t, tenant: tenantId, rid: requestId, fid } satisfies ControlMessage)).catch(() => {})
    }
    /** the holder is gone without an ending: say so rather than wait for ever */
    const lost = () => {
      if (feed.ended) return
      const id = feed.count
      feed.push(formatEvent(id, 'error', { code: 'STREAM_ERROR', error: 'The stream was lost', request_id: requestId }))
      feed.push(formatEvent(id + 1, 'stream_end', { request_id: requestId, lines_processed: 0, duration_ms: 0, timestamp: unixSeconds() }))
    }
    /** since when every check on the holder has failed (undefined: the last one answered) */
    let unansweredSince: number | undefined
    /** the claim, or `unknown` when the store did not answer: that says nothing about the holder, so ask again later */
    const checkClaim = () =>
      readClaim(tenantId, requestId).then(
        (claim) => {
          unansweredSince = undefined
          return claim
        },
        (err: unknown) => {
          unansweredSince ??= now()
          logger.warn({ err, request_id: requestId }, 'could not check on a chat stream held elsewhere: checking again later')
          return 'unknown' as const
        },
      )
    await announce('watch')
    await fillFromLog()
    const claim = await checkClaim()
    if (claim === 'unknown') {
      // the ticker checks again after FOLLOWER_CHECK_MS
    } else if (!claim && feed.count === 0) {
      void unsubscribe()
      void announce('unwatch')
      throw NO_STREAM
    } else if (!claim || claim.state === 'ended') {
      // the holder writes the whole log before the claim says ended: read it again, it may have ended meanwhile
      await fillFromLog()
      endAt = feed.count
      feed.finish()
    } else if (await holderGone(claim)) {
      await fillFromLog()
      lost()
      feed.finish()
    }

    const ticker = setInterval(async () => {
      if (feed.ended) return
      if (now() - lastSentAt >= pingIntervalMs) {
        lastSentAt = now()
        feed.ping()
      }
      if (now() - announcedAt >= WATCH_RENEW_MS) void announce('watch')
      if (now() - heardAt < FOLLOWER_CHECK_MS) return
      heardAt = now()
      const c = await checkClaim()
      if (c === 'unknown' && now() - unansweredSince! >= followerPatienceMs) {
        // nothing reaches this follower without the store: its client's connection closes as a network drop
        // would (no `error`: the stream may be fine where it is held), and the client resumes once the store is back
        logger.error({ request_id: requestId, patience_ms: followerPatienceMs }, 'gave up following a chat stream held elsewhere: the store has not answered')
        return feed.finish()
      }
      if (c === 'unknown' || (c?.state === 'live' && !(await holderGone(c)))) return
      await fillFromLog()
      if (!c && feed.count === 0) return refused.reject(NO_STREAM) // refused where it was held, before it started
      if (!c || c.state === 'live') lost()
      feed.finish()
    }, tickMs)
    const leave = () => {
      clearInterval(ticker)
      void unsubscribe()
      void announce('unwatch')
    }

    if (!feed.ended && feed.count === 0) {
      // not started where it is held: answered as the request that started it is, once its question is stored
      const first = Promise.withResolvers<void>()
      const waiter = { from: 0, write: (text: string) => text !== PING && first.resolve(), close: () => first.resolve() }
      const gone = () => first.resolve() // the client left: the stream below is closed at once
      feed.attach(waiter)
      signal.addEventListener('abort', gone, { once: true })
      if (signal.aborted) gone()
      try {
        await Promise.race([first.promise, refused.promise])
      } catch (err) {
        leave()
        throw err
      } finally {
        feed.detach(waiter)
        signal.removeEventListener('abort', gone)
      }
    }
    return watchFeed(feed, after, signal, { attached() {}, detached: leave })
  }

  function ownedBy(run: { tenantId: string; userId: string }, caller: Pick<Principal, 'tenantId' | 'userId'>): boolean {
    return run.tenantId === caller.tenantId && run.userId === caller.userId
  }

  /**
   * A run that will not start, refused with `why`: gone from the map, out of the live set. A request attached to
   * it meanwhile (the same POST sent twice) is answered with `why` as well.
   */
  async function giveUp(run: Run, why: unknown, ...pending: Promise<unknown>[]): Promise<void> {
    const key = runKey(run.tenantId, run.requestId)
    if (runs.get(key) === run) runs.delete(key)
    run.refuse(why)
    run.finish()
    await Promise.allSettled(pending)
    await releaseConcurrent(run)
  }

  /**
   * A run refused before it started (its conversation, its question not stored): gone, its request id free again
   * (the client retries), and a request following it from another instance is told so.
   */
  async function forgetRefused(run: Run, why: unknown, ...pending: Promise<unknown>[]): Promise<void> {
    await giveUp(run, why, ...pending)
    await store.del(keys.chatStream(run.tenantId, run.requestId)).catch(() => {})
    // told whether or not its watch has arrived yet: one it missed finds the claim gone when it looks
    if (shared) await publishFeed(run, { refused: true })
  }

  /** true once the run has started; false when it gave way to another instance's claim; its refusal otherwise */
  function startedHere(run: Run): Promise<boolean> {
    return run.ready.then(
      () => true,
      (err: unknown) => {
        if (err === CLAIMED_ELSEWHERE) return false
        throw err
      },
    )
  }

  /** a store or database failure as a 503; HTTP errors, and NO_STREAM for the caller to decide, as they are */
  function guard<T>(work: Promise<T>): Promise<T> {
    return work.catch((err: unknown) => {
      throw err instanceof AppError || err === NO_STREAM ? err : chatErrors.unavailable(err)
    })
  }

  return {
    /**
     * Opens a stream for the caller: a new run, or — for a request id the caller already used with the same
     * body — the existing stream from its first event, without calling the upstream again. Throws (an HTTP
     * error) before any event: 404 conversation, 409 request id taken.
     */
    async open(input: ChatStreamInput): Promise<ReadableStream<string>> {
      const { caller, body, signal } = input
      const requestId = body.request_id ?? newId('req')
      const hash = bodyHash(body)
      const key = runKey(caller.tenantId, requestId)
      for (let attempt = 0; ; attempt++) {
        const existing = runs.get(key)
        if (existing) {
          if (!ownedBy(existing, caller) || existing.hash !== hash) throw chatErrors.requestIdInUse()
          // the same answer as the request that started it: its stream once the question is stored, or its refusal
          if (await guard(startedHere(existing))) return watchFeed(existing, -1, signal, watchHooks(existing))
          continue
        }
        if (closing) throw chatErrors.unavailable(new Error('shutting down'))
        const run = new Run(caller.tenantId, caller.userId, requestId, hash)
        const claim: Claim = { user: caller.userId, hash, state: 'live', inst: presence?.id }
        runs.set(key, run) // before the first await: a concurrent re-POST here attaches to it
        // the claim, the admission and the conversation checks run together: one wait instead of three
        const claiming = guard(store.set(keys.chatStream(caller.tenantId, requestId), JSON.stringify(claim), { ttlMs: LIVE_CLAIM_TTL_MS, onlyIfAbsent: true }))
        const admitted = guard(admitConcurrent(run, caller))
        const preparing = prepare(caller, body)
        // either may fail while another is awaited: each is handled where it is awaited, not reported as unhandled
        for (const p of [claiming, admitted, preparing]) p.catch(() => {})
        let claimed: boolean
        try {
          claimed = await claiming
        } catch (err) {
          await giveUp(run, err, admitted, preparing)
          throw err
        }
        if (!claimed) {
          await giveUp(run, CLAIMED_ELSEWHERE, admitted, preparing)
          const held = await guard(readClaim(caller.tenantId, requestId))
          if (!held) {
            if (attempt < MAX_ATTEMPTS) continue // it expired between the two reads: claim again
            throw chatErrors.unavailable(new Error('request id claim kept vanishing'))
          }
          if (held.user !== caller.userId || held.hash !== hash) throw chatErrors.requestIdInUse()
          if (!shared) throw chatErrors.requestIdInUse()
          try {
            return await guard(follow(caller.tenantId, requestId, -1, signal))
          } catch (err) {
            if (err === NO_STREAM && attempt < MAX_ATTEMPTS) continue // refused where it was held, or expired: ask again here
            throw err === NO_STREAM ? chatErrors.unavailable(err) : err
          }
        }
        let prepared: Prepared
        try {
          await admitted
          prepared = await preparing
        } catch (err) {
          await forgetRefused(run, err, admitted, preparing)
          throw err
        }
        run.done = produce(run, input, prepared).catch((err: unknown) => {
          logger.error({ err, request_id: requestId }, 'chat run failed')
          run.refuse(err)
        })
        // the question stored, or the request refused before any byte: 404 (its conversation deleted meanwhile),
        // 503 (the database away) — a status the client can act on, instead of a stream that fails at once
        await guard(run.ready)
        return watchFeed(run, -1, signal, watchHooks(run))
      }
    },

    /** the caller's stream from after event `after` (-1: all), live or finished within the replay TTL; 404 otherwise */
    async resume(caller: Pick<Principal, 'tenantId' | 'userId'>, requestId: string, after: number, signal: AbortSignal): Promise<ReadableStream<string>> {
      const run = runs.get(runKey(caller.tenantId, requestId))
      if (run) {
        if (!ownedBy(run, caller)) throw chatErrors.streamNotFound()
        // a stream refused before it started never was one; one given up to another instance's claim is followed there
        const started = await startedHere(run).catch(() => {
          throw chatErrors.streamNotFound()
        })
        if (started) {
          // no client has seen an event this run has not sent: such an id would wait for nothing
          if (after >= run.count) throw chatErrors.pastTheEnd(after, run.count)
          return watchFeed(run, after, signal, watchHooks(run))
        }
      }
      if (!shared) throw chatErrors.streamNotFound()
      const claim = await guard(readClaim(caller.tenantId, requestId))
      if (!claim || claim.user !== caller.userId) throw chatErrors.streamNotFound()
      return guard(follow(caller.tenantId, requestId, after, signal)).catch((err: unknown) => {
        throw err === NO_STREAM ? chatErrors.streamNotFound() : err
      })
    },

    /** stops one of the caller's live streams, on whichever instance holds it; 404 otherwise */
    async cancel(caller: Pick<Principal, 'tenantId' | 'userId'>, requestId: string): Promise<{ request_id: string; status: 'cancelled' }> {
      const run = runs.get(runKey(caller.tenantId, requestId))
      if (run) {
        if (!ownedBy(run, caller) || run.ended) throw chatErrors.streamNotFound()
        run.stop('client_cancelled')
        return { request_id: requestId, status: 'cancelled' }
      }
      if (!shared) throw chatErrors.streamNotFound()
      const claim = await guard(readClaim(caller.tenantId, requestId))
      if (!claim || claim.user !== caller.userId || claim.state !== 'live') throw chatErrors.streamNotFound()
      await guard(store.publish(channels.chatControl(), JSON.stringify({ t: 'cancel', tenant: caller.tenantId, rid: requestId } satisfies ControlMessage)))
      return { request_id: requestId, status: 'cancelled' }
    },

    /**
     * Shutdown: no new streams; running ones may finish until `deadline` (epoch ms), then end with
     * `stream_cancelled{reason:"shutdown"}`. Resolves once every ending is stored.
     */
    async shutdown(deadline = now()): Promise<void> {
      closing = true
      const running = () => [...runs.values()].filter((r) => !r.ended)
      const finished = Promise.all(running().map((r) => r.done))
      const left = deadline - now()
      if (left > 0) await Promise.race([finished, Bun.sleep(left)])
      for (const run of running()) run.stop('shutdown')
      await Promise.all([...runs.values()].map((r) => r.done))
      // endings waiting for the store get one more try now
      await endings.stop()
      await writer.stopRetrying()
      const unsubscribe = await control
      await unsubscribe?.()
    },
  }
}

export type ChatService = ReturnType<typeof createChatService>
