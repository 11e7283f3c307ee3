/**
 * /api/v2/voice (contract §5): tickets, the voice WebSocket, the session list, ending a session and
 * observing one. Thin: admission happens before the upgrade (origin, ticket or header auth, permission,
 * limits, conversation), then the socket is handed to the service's session.
 */
import type { ServerWebSocket } from 'bun'
import { Elysia } from 'elysia'
import type { Deps } from '../../deps'
import { AppError } from '../../errors'
import { clientInfo } from '../../http/client-info'
import { metaOf } from '../../http/errors-plugin'
import type { Audit } from '../audit/service'
import { pageFrom } from '../../http/models'
import { credentialOf } from '../auth/authenticate'
import type { AuthPlugin } from '../auth/plugin'
import type { Principal } from '../auth/principal'
import { createConversationService } from '../conversations/service'
import { createMessageWriter } from '../conversations/writer'
import { EndedSession, errors, StreamQuery, TicketResponse, VoiceSessionList, VoiceSessionListQuery, VoiceSessionParams, VoiceSessionView } from './model'
import { type Admission, createVoiceService, type VoiceService } from './service'
import { createTickets, offersProtocol, ticketOf, type Tickets } from './tickets'

const tags = ['Voice']
export const VOICE_PROTOCOL = 'voice-protocol-v2'

/** Bun's per-socket handlers live in `ws.data` (Elysia's global handler calls them): a session takes them over */
type SocketHandlers = {
  message: (ws: unknown, message: string | Buffer) => void
  drain?: (ws: unknown) => void
  close: (ws: unknown, code: number, reason: string) => void
  ping?: (ws: unknown) => void
  pong?: (ws: unknown) => void
}
type SocketData = Record<string, unknown> & Partial<SocketHandlers>

/**
 * Replaces the socket's data with the session's own handlers. Elysia's data holds the whole upgrade context
 * (the request and its headers, the query, closures over them) for the socket's life: ~4 KB per idle session.
 */
function takeOver(raw: ServerWebSocket<SocketData>, handlers: SocketHandlers): void {
  ;(raw as { data: unknown }).data = handlers
}

/** what the admission macros see: the auth macro's principal is not in a macro's inferred context */
interface UpgradeContext {
  principal: Principal
  request: Request
  set: { headers: Record<string, string | number> }
}

export interface VoiceRoutesDeps {
  auth: AuthPlugin
  voice: VoiceService
  tickets: Tickets
  allowedOrigins: readonly string[]
  audit: Audit
}

export function voiceRoutes({ auth, voice, tickets, allowedOrigins, audit }: VoiceRoutesDeps) {
  const anyOrigin = allowedOrigins.includes('*')
  const origins = new Set(allowedOrigins)

  /**
   * Before authentication: the Origin allowlist (browsers send Origin; other clients may not, and are let
   * through), then a ticket, when the request carries no credential of its own, is redeemed into the
   * credential it was issued for — so the auth macro that follows checks it exactly as it checks a header.
   */
  async function admitUpgrade({ request }: { request: Request }): Promise<void> {
    const origin = request.headers.get('origin')
    if (origin !== null && !anyOrigin && !origins.has(origin)) {
      throw new AppError(403, 'ORIGIN_NOT_ALLOWED', 'This Origin may not open voice sessions', { origin })
    }
    if (credentialOf(request.headers) !== null) return
    const ticket = ticketOf(request, Object.fromEntries(new URL(request.url).searchParams))
    if (ticket === undefined) return
    const grant = await tickets.consume(ticket)
    if (!grant) throw new AppError(401, 'TOKEN_INVALID', 'Invalid, expired or already used voice ticket', { reason: 'invalid_ticket' })
    request.headers.set('authorization', `Bearer ${grant.credential}`)
    if (grant.tenant) request.headers.set('x-tenant-id', grant.tenant)
    else request.headers.delete('x-tenant-id')
  }

  return new Elysia({ name: 'voicehelper.voice', prefix: '/api/v2' })
    .use(auth)
    // Admission as macros: a route's own `resolve` runs before the auth macro's, a macro declared after
    // `auth` runs after it, with the principal in hand — still before the upgrade
    .macro({
      voiceSession(_: true) {
        return {
          async resolve(context) {
            const { principal, query, request, set } = context as unknown as UpgradeContext & { query: { conversation_id?: string; language?: string } }
            const admission = await voice.admit(principal, {
              conversationId: query.conversation_id,
              language: query.language,
              traceparent: request.headers.get('traceparent') ?? undefined,
              requestId: metaOf(request).id,
            })
            if (offersProtocol(request, VOICE_PROTOCOL)) set.headers['sec-websocket-protocol'] = VOICE_PROTOCOL
            return { admission }
          },
        }
      },
      voiceObserver(_: true) {
        return {
          async resolve(context) {
            const { principal, params } = context as unknown as UpgradeContext & { params: { id: string } }
            return { target: await voice.admitObserver(principal, params.id) }
          },
        }
      },
    })
    .post(
      '/voice/tickets',
      ({ principal, request }) =>
        tickets.issue({
          credential: credentialOf(request.headers)!,
          tenant: request.headers.get('x-tenant-id') ?? undefined,
          userId: principal.userId,
        }),
      {
        auth: 'voice:write',
        response: { 200: TicketResponse, ...errors },
        detail: {
          tags,
          summary: 'A single-use ticket (60 s) for opening a voice WebSocket from a browser',
          description: 'Pass it as the subprotocol `ticket.<ticket>` (alongside `voice-protocol-v2`) or as `?ticket=`. It is bound to the caller and accepted once.',
        },
      },
    )
    .ws('/voice/stream', {
      query: StreamQuery,
      transform: admitUpgrade,
      auth: 'voice:write',
      voiceSession: true,
      open(ws) {
        const raw = ws.raw as ServerWebSocket<SocketData>
        const session = voice.open(raw as ServerWebSocket<unknown>, raw.data.admission as Admission)
        // Per-frame work goes straight to the session: Elysia's wrapper would build an ElysiaWS and try
        // JSON.parse on every frame (the benchmark's hot path).
        const heartbeat = () => session.onClientHeartbeat()
        takeOver(raw, {
          message: (_ws, message) => session.onClientMessage(message),
          drain: () => session.onClientDrain(),
          close: (_ws, code, reason) => session.onClientClose(code, reason),
          ping: heartbeat,
          pong: heartbeat,
        })
      },
      message() {},
      detail: {
        tags,
        summary: 'The voice session WebSocket (contract §5)',
        description:
          'Auth: Authorization header, or a ticket (subprotocol `ticket.<t>` or `?ticket=`). Refusals are HTTP 401/403/404/429 before the upgrade. Binary frames are audio (≤ 1 MiB); text frames are JSON control messages.',
      },
    })
    .get('/voice/sessions', ({ principal, query }) => voice.list(principal, { userId: query.user_id, status: query.status }, pageFrom(query)), {
      auth: 'voice:read',
      query: VoiceSessionListQuery,
      response: { 200: VoiceSessionList, ...errors },
      detail: { tags, summary: "Voice sessions, live and past, newest first: the caller's own, or the tenant's with voice:monitor" },
    })
    .get('/voice/sessions/:id', ({ principal, params }) => voice.get(principal, params.id), {
      auth: 'voice:read',
      params: VoiceSessionParams,
      response: { 200: VoiceSessionView, ...errors },
      detail: { tags, summary: 'One voice session with its counters (own, or any of the tenant with voice:monitor)' },
    })
    .delete(
      '/voice/sessions/:id',
      async ({ principal, params, request, server }) => {
        const { userId, ...ended } = await voice.end(principal, params.id)
        // another member's session, ended by a monitor: an administrative act
        if (userId !== principal.userId) {
          const entry = { tenantId: principal.tenantId, actor: { id: principal.userId, type: principal.kind }, action: 'voice.session.end' }
          await audit.record({ ...entry, target: { type: 'voice_session', id: ended.id }, outcome: 'success', details: { user_id: userId, status: ended.status } }, clientInfo(request, server))
        }
        return ended
      },
      {
        auth: 'voice:read',
        params: VoiceSessionParams,
        response: { 200: EndedSession, ...errors },
        detail: { tags, summary: 'End a live voice session wherever it runs (own, or any of the tenant with voice:monitor)' },
      },
    )
    .ws('/voice/sessions/:id/observe', {
      params: VoiceSessionParams,
      transform: admitUpgrade,
      auth: 'voice:monitor',
      voiceObserver: true,
      open(ws) {
        const raw = ws.raw as ServerWebSocket<SocketData>
        const target = raw.data.target as { tenantId: string; id: string }
        const socket = raw as ServerWebSocket<unknown>
        takeOver(raw, { message: () => {}, close: () => voice.unobserve(socket, target) })
        void voice.observe(socket, target)
      },
      message() {},
      detail: { tags, summary: "Follow a live voice session's events (not its audio) from any instance (voice:monitor)" },
    })
}

export function voiceModule({ auth, deps }: { auth: AuthPlugin; deps: Pick<Deps, 'db' | 'store' | 'presence' | 'identity' | 'logger' | 'metrics' | 'config' | 'lifecycle' | 'upstreamUrls'> }) {
  const { config } = deps
  const voice = createVoiceService({
    db: deps.db.db,
    store: deps.store,
    presence: deps.presence,
    identity: deps.identity.identity,
    live: deps.identity.live,
    conversations: createConversationService({ db: deps.db.db }),
    writer: createMessageWriter({ db: deps.db }),
    upstreamUrls: deps.upstreamUrls,
    logger: deps.logger,
    metrics: deps.metrics,
    options: {
      maxSessionsPerUser: config.voice.maxSessionsPerUser,
      maxSessionsPerTenant: config.voice.maxSessionsPerTenant,
      maxBufferedBytes: config.voice.maxBufferedBytes,
      pingIntervalMs: config.voice.pingIntervalMs,
      idleTimeoutMs: config.voice.idleTimeoutMs,
      upstreamConnectTimeoutMs: config.voice.upstreamConnectTimeoutMs,
      lostSweepMs: config.voice.lostSweepMs,
      // a production gateway forwards only the config the contract names
      forwardSimulate: !config.production,
    },
  })
  deps.lifecycle.onShutdown(() => voice.shutdown())
  return voiceRoutes({ auth, voice, tickets: createTickets(deps.store), allowedOrigins: config.voice.allowedOrigins, audit: deps.identity.audit })
}
