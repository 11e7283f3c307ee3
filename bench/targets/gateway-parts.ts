/**
 * The gateway's chat service with its dependencies switched on one at a time, to find where the gateway's
 * cost over the relay goes (bench/chat.ts --gateway-parts). The whole gateway app serves every route (login,
 * admin) except `POST /api/v2/chat/stream`, which a bare Bun.serve handler gives to the real chat service.
 * GATEWAY_PARTS is a `+`-joined list of:
 * - `auth`: each request authenticated (else the first request's caller is reused);
 * - `db`: the question and answer stored by the real message writer (else a writer that stores nothing);
 * - `store`: the configured store (Redis when REDIS_URL is set; else an in-process store);
 * - `metrics`: the chat metrics recorded;
 * - `noreplay`: ended streams are not kept for replay (1 ms instead of CHAT_REPLAY_TTL_S).
 * Same environment as the gateway (src/index.ts).
 */
import { createApp } from '../../src/app'
import { loadConfig } from '../../src/config'
import { createDeps } from '../../src/deps'
import type { Principal } from '../../src/modules/auth/principal'
import { QUOTA_DEFAULTS } from '../../src/modules/auth/plugin'
import { SSE_HEADERS } from '../../src/modules/chat'
import type { ChatStreamBody } from '../../src/modules/chat/model'
import { createChatService } from '../../src/modules/chat/service'
import { createConversationService } from '../../src/modules/conversations/service'
import { createMessageWriter, type MessageWriter } from '../../src/modules/conversations/writer'
import { createMemoryStore } from '../../src/store'

const parts = new Set((process.env.GATEWAY_PARTS ?? '').split('+').filter(Boolean))
const config = loadConfig(process.env)
const deps = await createDeps(config)
const app = createApp(deps)
const noWriter: MessageWriter = { append: async () => {}, start: async () => {}, appendLater: async () => {}, stopRetrying: async () => {} }
const chat = createChatService({
  conversations: createConversationService({ db: deps.db.db }),
  writer: parts.has('db') ? createMessageWriter({ db: deps.db }) : noWriter,
  upstream: deps.upstream,
  live: deps.identity.live,
  store: parts.has('store') ? deps.store : createMemoryStore(),
  logger: deps.logger,
  metrics: parts.has('metrics') ? deps.metrics : undefined,
  pingIntervalMs: config.chatPingIntervalMs,
  graceMs: config.chatDisconnectGraceMs,
  replayTtlMs: parts.has('noreplay') ? 1 : config.chatReplayTtlMs,
  streamLimit: async (caller) => (await deps.identity.identity.tenant(caller.tenantId))?.quotas.concurrent_streams_per_user ?? QUOTA_DEFAULTS.concurrent_streams_per_user,
})

let caller: Principal | undefined
const server = Bun.serve({
  port: config.port,
  hostname: '127.0.0.1',
  async fetch(req, server) {
    if (req.method !== 'POST' || !req.url.endsWith('/api/v2/chat/stream')) return app.handle(req)
    const principal = parts.has('auth') || !caller ? await deps.identity.authenticate(req) : caller
    caller = principal
    const body = (await req.json()) as ChatStreamBody
    const events = await chat.open({ caller: principal, body, signal: req.signal })
    server.timeout(req, 0)
    return new Response(events, { headers: SSE_HEADERS })
  },
})
console.log(JSON.stringify({ msg: 'gateway parts listening', parts: [...parts].join('+') || 'none', port: server.port }))
process.on('SIGTERM', () => process.exit(0))
