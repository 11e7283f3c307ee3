/**
 * The embedded algorithm simulator: a deterministic stand-in for the algorithm service (RAG + LLM + ASR + TTS)
 * on plain Bun.serve. The gateway's default upstream when ALGO_SERVICE_URL is unset, the upstream of every
 * test and benchmark, and runnable alone (`bun run simulator`). Routes:
 *   GET  /health            {status:"healthy", simulator:true}
 *   POST /query             NDJSON answer stream (query.ts; scenarios chosen per request, see directives.ts)
 *   GET  /voice/stream      WebSocket voice pipeline (voice.ts)
 *   POST /documents/ingest  202 + optional status callbacks (ingest.ts)
 */
import type { Server } from 'bun'
import { queryDefaults, voiceDefaults, type QueryOptions, type VoiceOptions } from './directives.ts'
import { errorResponse, json } from './http.ts'
import { handleIngest } from './ingest.ts'
import { handleQuery } from './query.ts'
import {
  newStats,
  type IngestCallback,
  type SimulatorLogger,
  type SimulatorState,
  type SimulatorStats,
} from './state.ts'
import { upgradeVoice, voiceHandler, type VoiceSocketData } from './voice.ts'

export { simulatedAnswer, answerSentence } from './content.ts'
export { extractDirectives, QUERY_DEFAULTS, VOICE_DEFAULTS } from './directives.ts'
export type { QueryOptions, VoiceOptions } from './directives.ts'
export type { IngestCallback, SimulatorLogger, SimulatorStats } from './state.ts'

export interface SimulatorOptions {
  /** 0 = any free port. @default 0 */
  port?: number
  /** @default '127.0.0.1' */
  hostname?: string
  /** @default silent */
  logger?: SimulatorLogger
  /** Report ingested documents back to the gateway. Can also be set later with setCallback(). */
  callback?: IngestCallback
  /** Server-wide `/query` defaults (a request's directive or `simulate` still wins). */
  query?: Partial<QueryOptions>
  /** Server-wide voice defaults (the upgrade URL's query parameters still win). */
  voice?: Partial<VoiceOptions>
  /** Bun's idle timeout for ordinary requests, seconds (`/query` streams are exempt). @default 10 */
  idleTimeoutS?: number
}

export interface Simulator {
  /** e.g. http://127.0.0.1:41234 */
  readonly url: string
  readonly port: number
  readonly stats: SimulatorStats
  /** Where ingest status reports go; the gateway knows its own URL only after it listens. */
  setCallback(callback: IngestCallback | undefined): void
  /** Closes everything, including open streams and sockets. */
  stop(): Promise<void>
  /** The same as stop(), so the simulator fits lists of closeable resources (deps.ts). */
  close(): Promise<void>
}

const silent: SimulatorLogger = { info() {}, warn() {} }
const ROUTES: Record<string, string> = {
  '/health': 'GET',
  '/query': 'POST',
  '/voice/stream': 'GET',
  '/documents/ingest': 'POST',
}

function route(req: Request, server: Server<VoiceSocketData>, state: SimulatorState) {
  const path = new URL(req.url).pathname
  const method = ROUTES[path]
  if (!method) return errorResponse(404, 'NOT_FOUND', `no simulator route ${path}`)
  if (req.method !== method)
    return json(405, { error: 'method not allowed', code: 'METHOD_NOT_ALLOWED' }, { Allow: method })
  switch (path) {
    case '/health':
      return json(200, { status: 'healthy', simulator: true })
    case '/query':
      return handleQuery(req, server, state)
    case '/voice/stream':
      return upgradeVoice(req, server, state)
    default:
      return handleIngest(req, state)
  }
}

export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const state: SimulatorState = {
    stats: newStats(),
    logger: opts.logger ?? silent,
    queryDefaults: queryDefaults(opts.query),
    voiceDefaults: voiceDefaults(opts.voice),
    streams: new Set(),
    shutdown: new AbortController(),
    callback: opts.callback,
    closeVoice: () => {},
  }
  const server = Bun.serve<VoiceSocketData>({
    port: opts.port ?? 0,
    hostname: opts.hostname ?? '127.0.0.1',
    idleTimeout: opts.idleTimeoutS ?? 10,
    fetch: (req, srv) => route(req, srv, state),
    websocket: voiceHandler(state),
    error(err) {
      state.logger.warn({ err: String(err) }, 'simulator: request failed')
      return errorResponse(500, 'SIMULATOR_ERROR', 'simulator internal error')
    },
  })
  const port = server.port as number
  const host = server.hostname ?? '127.0.0.1'
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  state.logger.info({ url, simulator: true }, `algorithm SIMULATOR (not a real algorithm service) listening on ${url}`)
  let stopping: Promise<void> | undefined
  function stop(): Promise<void> {
    stopping ??= (async () => {
      state.shutdown.abort()
      for (const stream of state.streams) stream.terminate()
      state.closeVoice()
      await server.stop(true)
    })()
    return stopping
  }
  return {
    url,
    port,
    stats: state.stats,
    setCallback(callback) {
      state.callback = callback
    },
    stop,
    close: stop,
  }
}
