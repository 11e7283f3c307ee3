/**
 * The chat stream (contract §4), framework-free: checks the conversation, stores the question, calls the
 * algorithm service and turns its NDJSON lines into SSE events, then stores the answer — whatever the ending.
 *
 * Everything that stops a stream early (cancel, client gone, revoked token) aborts one AbortController whose
 * reason is a StreamStop. Every wait races that signal, so a generator suspended in `await` notices at once
 * (elysiajs/elysia#1768), and the same signal is the upstream call's, so the upstream socket closes too.
 */
import { AppError } from '../../errors'
import { newId } from '../../lib/ids'
import type { Principal } from '../auth/principal'
import type { LiveConnections } from '../auth/live-connections'
import type { ConversationRef, ConversationService } from '../conversations/service'
import { UpstreamError, type UpstreamPool, type UpstreamStream } from '../../upstream'
import type { ChatStreamBody } from './model'
import { type ChatEvent, eventName } from './sse'

/** contract §0: a body's `timestamp` is unix seconds (as the seed); `*_at` fields are RFC 3339 */
const unixSeconds = () => Math.floor(Date.now() / 1000)

/** CHAT_HISTORY_TURNS: prior messages sent upstream with a new question */
export const HISTORY_TURNS = 10

export type StopReason = 'client_cancelled' | 'client_disconnected' | 'token_revoked' | 'shutdown'

/** the abort reason of a stream stopped on purpose: it ends with `stream_cancelled`, not `error` */
export class StreamStop extends Error {
  constructor(readonly reason: StopReason) {
    super(`stream stopped: ${reason}`)
    this.name = 'StreamStop'
  }
}

export const chatErrors = {
  streamNotFound: () => new AppError(404, 'STREAM_NOT_FOUND', 'No such stream on this instance'),
  requestIdInUse: () => new AppError(409, 'IDEMPOTENCY_CONFLICT', 'request_id is already in use'),
}

interface ChatLogger {
  warn(o: object, msg?: string): void
  error(o: object, msg?: string): void
}

export interface ChatServiceDeps {
  conversations: ConversationService
  upstream: Pick<UpstreamPool, 'query'>
  live: Pick<LiveConnections, 'register'>
  logger: ChatLogger
  /** `: ping` period while the upstream is silent. @default 15000 */
  pingIntervalMs?: number
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

interface ActiveStream {
  tenantId: string
  userId: string
  stop(reason: StopReason): void
}

type Ending = 'completed' | 'failed' | 'cancelled'

function upstreamFailure(err: unknown): { code: string; error: string } | undefined {
  if (err instanceof UpstreamError) return { code: err.code, error: err.message }
  return undefined
}

/** the chunk text of a generation_chunk line (`content`, or `delta`) */
function chunkText(line: Record<string, unknown>): string {
  const text = line.content ?? line.delta
  return typeof text === 'string' ? text : ''
}

export function createChatService(deps: ChatServiceDeps) {
  const { conversations, upstream, live, logger } = deps
  const pingIntervalMs = deps.pingIntervalMs ?? 15_000
  const now = deps.now ?? Date.now
  /** streams held by this instance, by request_id */
  const active = new Map<string, ActiveStream>()

  /**
   * Awaits `promise`, yielding a ping each `pingIntervalMs` it takes, and throwing `signal.reason` as soon as the
   * signal aborts (the promise is then abandoned: its rejection is swallowed).
   */
  async function* withPings<T>(promise: Promise<T>, signal: AbortSignal): AsyncGenerator<ChatEvent, T> {
    promise.catch(() => {})
    let onAbort!: () => void
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason)
      if (signal.aborted) onAbort()
      else signal.addEventListener('abort', onAbort, { once: true })
    })
    aborted.catch(() => {})
    try {
      while (true) {
        let timer: ReturnType<typeof setTimeout> | undefined
        const tick = new Promise<'tick'>((resolve) => {
          timer = setTimeout(() => resolve('tick'), pingIntervalMs)
        })
        try {
          const won = await Promise.race([promise.then((value) => ({ value })), aborted, tick])
          if (won !== 'tick') return won.value
        } finally {
          clearTimeout(timer)
        }
        yield { kind: 'ping' }
      }
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  async function openConversation(caller: Principal, id: string | undefined): Promise<ConversationRef> {
    return id ? conversations.getWritable(caller, id) : conversations.create(caller)
  }

  /**
   * The events of one chat stream. Throws (an HTTP error) only before its first event: a taken request_id,
   * an unknown conversation. After `stream_start` every failure is an `error` event.
   */
  async function* stream(input: ChatStreamInput): AsyncGenerator<ChatEvent> {
    const { caller, body } = input
    const started = now()
    const requestId = body.request_id ?? newId('req')
    if (active.has(requestId)) throw chatErrors.requestIdInUse()

    const ctrl = new AbortController()
    const stop = (reason: StopReason) => {
      if (!ctrl.signal.aborted) ctrl.abort(new StreamStop(reason))
    }
    active.set(requestId, { tenantId: caller.tenantId, userId: caller.userId, stop })
    const onClientGone = () => stop('client_disconnected')
    input.signal.addEventListener('abort', onClientGone, { once: true })
    let unregister: (() => void) | undefined
    let upstreamStream: UpstreamStream | undefined
    let persisted = false
    let conversation: ConversationRef | undefined
    // made after the user's message is stored: message ids order a conversation
    let messageId = ''
    let text = ''
    let references: unknown[] | undefined
    let usage: Record<string, unknown> | undefined
    let ttftMs: number | undefined
    let linesProcessed = 0
    let invalidLines = 0

    /** stores the assistant's message once, with exactly the text the client was sent */
    async function persist(status: Ending): Promise<void> {
      if (persisted || !conversation) return
      persisted = true
      try {
        await conversations.appendMessage(conversation, {
          id: messageId,
          role: 'assistant',
          content: text,
          modality: 'text',
          status,
          references: references ?? null,
          usage: usage ?? null,
          ttftMs: ttftMs ?? null,
          durationMs: now() - started,
          requestId,
          userId: caller.userId,
        })
      } catch (err) {
        logger.error({ err, request_id: requestId, conversation_id: conversation.id }, 'could not store the assistant message')
      }
    }

    let seq = 0
    const event = (name: string, data: Record<string, unknown>): ChatEvent => ({ kind: 'event', id: seq++, event: name, data })
    const streamEnd = () =>
      event('stream_end', { request_id: requestId, lines_processed: linesProcessed, duration_ms: now() - started, timestamp: unixSeconds() })

    try {
      conversation = await openConversation(caller, body.conversation_id)
      const history = await conversations.history(conversation, HISTORY_TURNS)
      await conversations.appendMessage(conversation, {
        role: 'user',
        content: body.message,
        modality: 'text',
        status: 'completed',
        requestId,
        userId: caller.userId,
      })
      messageId = newId('msg')
      unregister = live.register({
        id: `chat:${requestId}`,
        kind: 'chat',
        tenantId: caller.tenantId,
        userId: caller.userId,
        sessionId: caller.sessionId,
        jti: caller.jti,
        apiKeyId: caller.apiKeyId,
        end: (reason) => stop(reason),
      })
      const streamId = body.stream_id ?? newId('str')
      yield event('stream_start', {
        request_id: requestId,
        stream_id: streamId,
        conversation_id: conversation.id,
        message_id: messageId,
        timestamp: unixSeconds(),
      })

      try {
        const query = upstream.query({
          body: {
            messages: [...history, { role: 'user', content: body.message }],
            conversation_id: conversation.id,
            stream_id: streamId,
            request_id: requestId,
            model: body.model,
            temperature: body.temperature,
            max_tokens: body.max_tokens,
            tenant_id: caller.tenantId,
            user_id: caller.userId,
          },
          requestId,
          traceparent: input.traceparent,
          signal: ctrl.signal,
        })
        // answered after we stopped waiting: close it
        query.then((s) => ctrl.signal.aborted && s.cancel('abandoned'), () => {})
        upstreamStream = yield* withPings(query, ctrl.signal)
        let failed = false
        while (true) {
          const next = yield* withPings(upstreamStream.lines.next(), ctrl.signal)
          if (next.done) break
          const item = next.value
          if (item.kind === 'invalid') {
            invalidLines++
            continue
          }
          const line = item.value
          const name = eventName(line)
          linesProcessed++
          if (name === 'generation_chunk') {
            ttftMs ??= now() - started
            text += chunkText(line)
          } else if (name === 'retrieval_result') {
            const refs = line.references ?? line.refs
            if (Array.isArray(refs)) references = refs
          } else if (name === 'error') {
            failed = true
          }
          if (line.usage && typeof line.usage === 'object') usage = line.usage as Record<string, unknown>
          yield event(name, { ...line, request_id: requestId, line_number: item.lineNumber, timestamp: unixSeconds() })
        }
        await persist(failed ? 'failed' : 'completed')
        yield streamEnd()
      } catch (err) {
        const reason = ctrl.signal.aborted ? ctrl.signal.reason : err
        if (reason instanceof StreamStop) {
          await persist('cancelled')
          yield event('stream_cancelled', { request_id: requestId, reason: reason.reason })
          return
        }
        const failure = upstreamFailure(err)
        if (!failure) logger.error({ err, request_id: requestId }, 'chat stream failed')
        await persist('failed')
        yield event('error', { ...(failure ?? { code: 'STREAM_ERROR', error: 'The stream failed' }), request_id: requestId })
        yield streamEnd()
      }
    } finally {
      input.signal.removeEventListener('abort', onClientGone)
      // whatever the ending, the upstream request must not outlive the stream
      if (!ctrl.signal.aborted) ctrl.abort(new StreamStop('client_disconnected'))
      upstreamStream?.cancel('stream ended')
      unregister?.()
      if (active.get(requestId)?.stop === stop) active.delete(requestId)
      // left at a yield (the client went away): what was sent is still stored
      if (seq > 0) await persist('cancelled')
      if (invalidLines > 0) logger.warn({ request_id: requestId, invalid_lines: invalidLines }, 'upstream sent invalid NDJSON lines')
    }
  }

  return {
    stream,

    /** stops a stream of the caller's held by this instance; 404 otherwise (another user's included) */
    cancel(caller: Pick<Principal, 'tenantId' | 'userId'>, requestId: string): { request_id: string; status: 'cancelled' } {
      const entry = active.get(requestId)
      if (!entry || entry.tenantId !== caller.tenantId || entry.userId !== caller.userId) throw chatErrors.streamNotFound()
      entry.stop('client_cancelled')
      return { request_id: requestId, status: 'cancelled' }
    },

    /** streams open on this instance */
    activeCount: () => active.size,
  }
}

export type ChatService = ReturnType<typeof createChatService>
