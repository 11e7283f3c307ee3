/**
 * createApp(deps): the HTTP surface. Error handling first (it must see every failure), then
 * observability, CORS, OpenAPI, then the feature modules.
 */
import { cors } from '@elysiajs/cors'
import { openapi } from '@elysiajs/openapi'
import { Elysia } from 'elysia'
import type { Deps } from './deps'
import { errorsPlugin } from './http/errors-plugin'
import { adminModule } from './modules/admin'
import { authModule } from './modules/auth'
import { authPlugin } from './modules/auth/plugin'
import { chatModule } from './modules/chat'
import { conversationsModule } from './modules/conversations'
import { opsModule } from './modules/ops'
import { voiceModule } from './modules/voice'
import { createRequestRecorder, httpObservabilityPlugin } from './observability/http-plugin'

export function createApp(deps: Deps) {
  const { config, logger, metrics } = deps
  const recordRequest = createRequestRecorder({ logger, metrics })
  const { identity } = deps
  const auth = authPlugin({ authenticate: identity.authenticate, identity: identity.identity, limiter: identity.limiter, metrics })
  const app = new Elysia({
    name: 'voicehelper-gateway',
    // Bun's WebSocket settings are server-wide (Elysia ignores them per route)
    websocket: {
      // contract §5: frames over 1 MiB close the socket (1009)
      maxPayloadLength: 1024 * 1024,
      // the voice session pings and closes idle sockets itself (4408); Bun's own timer is only a backstop
      sendPings: false,
      idleTimeout: Math.min(960, Math.max(120, Math.ceil(config.voice.idleTimeoutMs / 1000) + 30)),
      // audio is dropped by the session past VOICE_MAX_BUFFERED_BYTES; past this, a client that reads nothing
      // is closed instead of silently losing control messages (Bun's default drops them)
      backpressureLimit: Math.max(16 * 1024 * 1024, 4 * config.voice.maxBufferedBytes),
      closeOnBackpressureLimit: true,
    },
  })
  return app
    .use(errorsPlugin({ logger, bodyLimit: config.bodyLimitBytes, routes: () => app.routes, onErrorResponse: recordRequest }))
    .use(httpObservabilityPlugin(recordRequest))
    .use(
      cors({
        origin: config.corsOrigins.includes('*') ? true : [...config.corsOrigins],
        allowedHeaders: ['Authorization', 'Content-Type', 'X-Request-ID', 'X-API-Key', 'X-Tenant-ID', 'Last-Event-ID'],
        exposeHeaders: ['X-Request-ID', 'X-Token-Refresh-Required', 'X-Token-Expires-At', 'Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'],
        maxAge: 600,
        // bearer tokens, never cookies: reflecting an origin must not also allow credentials
        credentials: false,
      }),
    )
    .use(
      openapi({
        path: '/swagger',
        specPath: '/swagger/json',
        provider: 'swagger-ui',
        documentation: {
          info: {
            title: 'VoiceHelper Gateway',
            version: config.version,
            description: 'Chat streaming (SSE), voice sessions (WebSocket) and administration for the VoiceHelper assistant.',
          },
          tags: [
            { name: 'Operations', description: 'Health, readiness and metrics' },
            { name: 'Auth', description: 'Login, tokens, sign-up' },
            { name: 'API keys', description: 'Keys for services' },
            { name: 'Admin', description: 'Tenants, users, roles, grants, audit log and stats' },
            { name: 'Conversations', description: 'Conversations and their messages (owner or shared access)' },
            { name: 'Chat', description: 'Streaming answers (SSE) and their cancellation' },
            { name: 'Voice', description: 'Voice sessions (WebSocket), tickets, session list, observation' },
          ],
          components: {
            securitySchemes: {
              bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
              apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
            },
          },
        },
      }),
    )
    .use(opsModule(deps))
    .use(authModule({ auth, service: identity.service, apiKeys: identity.apiKeys, audit: identity.audit }))
    .use(adminModule({ auth, deps }))
    .use(conversationsModule({ auth, deps }))
    .use(chatModule({ auth, deps }))
    .use(voiceModule({ auth, deps }))
}

export type App = ReturnType<typeof createApp>
