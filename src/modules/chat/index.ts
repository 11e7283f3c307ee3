/**
 * /api/v2/chat (contract §4): the SSE chat stream and its cancel. Thin: the body is validated before any byte,
 * the service's events are written as SSE, and the stream is exempt from Bun's idle timeout.
 */
import { Elysia, t } from 'elysia'
import { AppError } from '../../errors'
import type { Deps } from '../../deps'
import { type AuthPlugin, QUOTA_DEFAULTS } from '../auth/plugin'
import { createConversationService } from '../conversations/service'
import { createMessageWriter } from '../conversations/writer'
import { CancelBody, CancelResponse, ChatStreamBody, errors, RequestId } from './model'
import { createLostAnswerSweeper } from './lost'
import { type ChatService, createChatService } from './service'

const tags = ['Chat']

export const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
} as const

/** Last-Event-ID: the id of the last event the client has; absent → the whole stream */
function lastEventId(raw: string | undefined): number {
  if (raw === undefined || raw === '') return -1
  if (!/^\d{1,9}$/.test(raw)) {
    throw new AppError(400, 'VALIDATION_FAILED', 'Last-Event-ID must be a non-negative integer', { field: 'last_event_id' })
  }
  return Number(raw)
}

export function chatRoutes({ auth, chat }: { auth: AuthPlugin; chat: ChatService }) {
  return new Elysia({ name: 'voicehelper.chat', prefix: '/api/v2' })
    .use(auth)
    .post(
      '/chat/stream',
      async function chatStream({ principal, body, request, server }) {
        const events = await chat.open({ caller: principal, body, signal: request.signal, traceparent: request.headers.get('traceparent') ?? undefined })
        // a quiet stream is not idle: pings keep it alive, Bun must not cut it after 10 s
        server?.timeout(request, 0)
        return new Response(events, { headers: SSE_HEADERS })
      },
      {
        auth: 'chat:write',
        body: ChatStreamBody,
        detail: {
          tags,
          summary: 'Ask a question; the answer streams back as server-sent events',
          description:
            'A request_id already used by the caller with the same body attaches to that stream (replayed from event 0, then live) instead of asking again; with another body, or another user\'s id: 409.',
          responses: { 200: { description: 'text/event-stream: stream_start, upstream events, then stream_end | error | stream_cancelled' } },
        },
      },
    )
    .get(
      '/chat/stream/:request_id',
      async function resumeStream({ principal, params, query, request, server }) {
        const after = lastEventId(request.headers.get('last-event-id') ?? query.last_event_id)
        const events = await chat.resume(principal, params.request_id, after, request.signal)
        server?.timeout(request, 0)
        return new Response(events, { headers: SSE_HEADERS })
      },
      {
        auth: 'chat:write',
        params: t.Object({ request_id: RequestId }),
        query: t.Object({ last_event_id: t.Optional(t.String({ maxLength: 16 })) }),
        detail: {
          tags,
          summary: 'Resume a stream: the events after Last-Event-ID (header or ?last_event_id=), then live until it ends',
          responses: { 200: { description: 'text/event-stream, the same events with the same ids' } },
        },
      },
    )
    .post('/chat/cancel', ({ principal, body }) => chat.cancel(principal, body.request_id), {
      auth: 'chat:write',
      body: CancelBody,
      response: { 200: CancelResponse, ...errors },
      detail: { tags, summary: "Cancel one of the caller's streams by request_id, on whichever instance holds it" },
    })
}

export function chatModule({ auth, deps }: { auth: AuthPlugin; deps: Pick<Deps, 'db' | 'upstream' | 'identity' | 'logger' | 'config' | 'store' | 'presence' | 'metrics' | 'lifecycle'> }) {
  const chat = createChatService({
    conversations: createConversationService({ db: deps.db.db }),
    writer: createMessageWriter({ db: deps.db }),
    upstream: deps.upstream,
    live: deps.identity.live,
    store: deps.store,
    presence: deps.presence,
    logger: deps.logger,
    metrics: deps.metrics,
    pingIntervalMs: deps.config.chatPingIntervalMs,
    graceMs: deps.config.chatDisconnectGraceMs,
    replayTtlMs: deps.config.chatReplayTtlMs,
    followerPatienceMs: deps.config.chatFollowerPatienceMs,
    maxStreamBytes: deps.config.chatMaxStreamBytes,
    replayMaxBytes: deps.config.chatReplayMaxBytes,
    streamLimit: async (caller) => (await deps.identity.identity.tenant(caller.tenantId))?.quotas.concurrent_streams_per_user ?? QUOTA_DEFAULTS.concurrent_streams_per_user,
  })
  const lost = createLostAnswerSweeper({ db: deps.db, store: deps.store, presence: deps.presence, logger: deps.logger, metrics: deps.metrics, sweepMs: deps.config.chatLostSweepMs })
  deps.lifecycle.onShutdown(async (deadline) => {
    await lost.close()
    await chat.shutdown(deadline)
  })
  return chatRoutes({ auth, chat })
}
