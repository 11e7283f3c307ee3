/** The state the simulator's endpoints share: counters, live streams and sockets, and its options. */
import type { QueryOptions, VoiceOptions } from './directives.ts'
import type { StepStream } from './step-stream.ts'

export interface SimulatorLogger {
  info(o: object, m?: string): void
  warn(o: object, m?: string): void
}

export interface SimulatorStats {
  /** Valid `/query` requests accepted (every mode, HTTP failures included). */
  queriesStarted: number
  /** `/query` requests still in progress; drops as soon as a client goes away. */
  queriesOpen: number
  /** Lines taken from `/query` plans (garbage and blank lines included); stops growing when a client aborts. */
  queryLinesGenerated: number
  voiceSocketsOpen: number
  voiceSessionsStarted: number
  /** Bodies of accepted `/documents/ingest` calls, oldest first (the latest 1,000). */
  ingests: Array<Record<string, unknown>>
}

/** Where accepted documents are reported back (the gateway's `POST /api/v2/documents/:id/status`). */
export interface IngestCallback {
  baseUrl: string
  apiKey: string
  /** Pause before `indexing` and again before the final status. @default 20 */
  readyDelayMs?: number
}

export interface SimulatorState {
  readonly stats: SimulatorStats
  readonly logger: SimulatorLogger
  readonly queryDefaults: QueryOptions
  readonly voiceDefaults: VoiceOptions
  /** Open `/query` bodies, so stop() can end them. */
  readonly streams: Set<StepStream>
  /** Aborted by stop(): ends pending first-byte delays and ingest callbacks. */
  readonly shutdown: AbortController
  callback: IngestCallback | undefined
  /** Ends every open voice socket (registered by the voice module). */
  closeVoice: () => void
}

export function newStats(): SimulatorStats {
  return {
    queriesStarted: 0,
    queriesOpen: 0,
    queryLinesGenerated: 0,
    voiceSocketsOpen: 0,
    voiceSessionsStarted: 0,
    ingests: [],
  }
}
