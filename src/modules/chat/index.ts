/**
 * /api/v2/chat (contract §4): the SSE chat stream and its cancel. Thin: the body is validated before any byte,
 * the service's events are written as SSE, and the stream is exempt from Bun's idle timeout.
 */
import { Elysia } from 'elysia'
import type { Deps } from '../../deps'
import type { AuthPlugin } from '../auth/plugin'
import { createConversationService } from '../conversations/service'
import { CancelBody, CancelResponse, ChatStreamBody, errors } from './model'
import { type ChatService, createChatService } from './service'
import { formatEvent } from './sse'

const tags = ['Chat']

export const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
} as const

export function chatRoutes({ auth, chat }: { auth: AuthPlugin; chat: ChatService }) {
  return new Elysia({ name: 'voicehelper.chat', prefix: '/api/v2' })
    .use(auth)
    .post(
      '/chat/stream',
      async function* chatStream({ principal, body, request, server, set }) {
        // a quiet stream is not idle: pings keep it alive, Bun must not cut it after 10 s
        server?.timeout(request, 0)
        Object.assign(set.headers, SSE_HEADERS)
        const events = chat.stream({ caller: principal, body, signal: request.signal, traceparent: request.headers.get('traceparent') ?? undefined })
        for await (const e of events) yield { toSSE: () => formatEvent(e) }
      },
      {
        auth: 'chat:write',
        body: ChatStreamBody,
        detail: {
          tags,
          summary: 'Ask a question; the answer streams back as server-sent events',
          responses: { 200: { description: 'text/event-stream: stream_start, upstream events, then stream_end | error | stream_cancelled' } },
        },
      },
    )
    .post('/chat/cancel', ({ principal, body }) => chat.cancel(principal, body.request_id), {
      auth: 'chat:write',
      body: CancelBody,
      response: { 200: CancelResponse, ...errors },
      detail: { tags, summary: "Cancel one of the caller's streams by request_id" },
    })
}

export function chatModule({ auth, deps }: { auth: AuthPlugin; deps: Pick<Deps, 'db' | 'upstream' | 'identity' | 'logger' | 'config'> }) {
  const chat = createChatService({
    conversations: createConversationService({ db: deps.db.db }),
    upstream: deps.upstream,
    live: deps.identity.live,
    logger: deps.logger,
    pingIntervalMs: deps.config.chatPingIntervalMs,
  })
  return chatRoutes({ auth, chat })
}
