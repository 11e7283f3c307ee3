/**
 * How a caller chooses the simulator's behaviour.
 *
 * `/query`: a `simulate` object in the body, or a directive such as `[[sim chunks=50 delay_ms=20 mode=drop_mid]]`
 * in the last user message (the gateway forwards the message but not extra body fields, so this is how tests
 * steer it from outside). `/voice/stream`: query parameters, or `simulate` in a `config` message.
 * Unknown keys and bad values in a directive or `simulate` are rejected (a typo must not silently run the
 * default scenario); unknown query parameters on the voice URL are ignored because the gateway adds its own.
 */

/** A bad `simulate` object, directive, query parameter or body: answered with 400, never 500. */
export class SimulatorInputError extends Error {
  constructor(
    message: string,
    readonly code = 'INVALID_DIRECTIVE',
  ) {
    super(message)
    this.name = 'SimulatorInputError'
  }
}

export type FieldSpec =
  | { kind: 'int'; min: number; max: number }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'bool' }
  | { kind: 'text'; max: number }

const int = (min: number, max: number): FieldSpec => ({ kind: 'int', min, max })
const oneOf = (values: readonly string[]): FieldSpec => ({ kind: 'enum', values })

export const QUERY_MODES = [
  'normal',
  'http_500',
  'http_429',
  'http_503',
  'error_event',
  'drop_mid',
  'invalid_lines',
  'oversized_line',
  'stall',
  'legacy',
] as const
export type QueryMode = (typeof QUERY_MODES)[number]

export interface QueryOptions {
  /** generation_chunk lines. @default 8 */
  chunks: number
  /** Characters (code points) per chunk. @default 12 */
  chunk_size: number
  /** Pause between consecutive lines. @default 0 */
  delay_ms: number
  /** Silence before anything, headers included (Bun sends headers with the first body byte). @default 0 */
  first_byte_delay_ms: number
  /** Headers and one blank line at once, then silence before the first JSON line. @default 0 */
  first_line_delay_ms: number
  /** @default 'normal' — `legacy` is shorthand for `format=legacy` */
  mode: QueryMode
  /** `seed` (retrieval_start … generation_done) or `legacy` (refs, content…, end). @default 'seed' */
  format: 'seed' | 'legacy'
  /** JSON lines sent before a failure mode or `silence_ms` strikes; past the end means "at the end". @default 5 */
  fail_after: number
  /** Pause after `fail_after` lines, then carry on. @default 0 */
  silence_ms: number
  /** `code` of the `error_event` line. @default 'SIMULATED_ERROR' */
  error_code: string
  /** References in retrieval_result. @default 3 */
  references: number
}

export const QUERY_DEFAULTS: Readonly<QueryOptions> = {
  chunks: 8,
  chunk_size: 12,
  delay_ms: 0,
  first_byte_delay_ms: 0,
  first_line_delay_ms: 0,
  mode: 'normal',
  format: 'seed',
  fail_after: 5,
  silence_ms: 0,
  error_code: 'SIMULATED_ERROR',
  references: 3,
}

const HOUR_MS = 3_600_000
const QUERY_FIELDS: { [K in keyof QueryOptions]: FieldSpec } = {
  chunks: int(0, 1_000_000),
  chunk_size: int(1, 65_536),
  delay_ms: int(0, HOUR_MS),
  first_byte_delay_ms: int(0, HOUR_MS),
  first_line_delay_ms: int(0, HOUR_MS),
  mode: oneOf(QUERY_MODES),
  format: oneOf(['seed', 'legacy']),
  fail_after: int(0, 10_000_000),
  silence_ms: int(0, HOUR_MS),
  error_code: { kind: 'text', max: 64 },
  references: int(0, 20),
}

export interface VoiceOptions {
  /** Answer every audio_chunk at once with `audio_ack {sequence}`. @default false */
  ack: boolean
  /** One asr_partial per this many audio chunks of an utterance. @default 10 */
  partial_every: number
  /** llm_response_chunk messages per reply. @default 4 */
  reply_chunks: number
  /** tts_audio messages per reply. @default 5 */
  tts_frames: number
  /** PCM16 bytes per tts_audio frame (3200 = 100 ms at 16 kHz mono). @default 3200 */
  tts_frame_bytes: number
  /** Pause before each tts_audio frame. @default 0 */
  tts_delay_ms: number
  /** `refuse` answers the upgrade with HTTP 503. @default 'normal' */
  mode: 'normal' | 'refuse'
  /** Close the socket abruptly (no close frame) this long after open; 0 = never. @default 0 */
  drop_after_ms: number
  /** Transcript of every utterance; empty = "simulated utterance <n>". @default '' */
  transcript: string
}

export const VOICE_DEFAULTS: Readonly<VoiceOptions> = {
  ack: false,
  partial_every: 10,
  reply_chunks: 4,
  tts_frames: 5,
  tts_frame_bytes: 3200,
  tts_delay_ms: 0,
  mode: 'normal',
  drop_after_ms: 0,
  transcript: '',
}

const VOICE_FIELDS: { [K in keyof VoiceOptions]: FieldSpec } = {
  ack: { kind: 'bool' },
  partial_every: int(1, 1_000_000),
  reply_chunks: int(0, 100_000),
  tts_frames: int(0, 1_000_000),
  tts_frame_bytes: int(2, 1_048_576),
  tts_delay_ms: int(0, HOUR_MS),
  mode: oneOf(['normal', 'refuse']),
  drop_after_ms: int(0, HOUR_MS),
  transcript: { kind: 'text', max: 10_000 },
}

/** Converts one raw value (a directive string or a JSON value) to what its spec allows, or throws. */
function coerce(key: string, spec: FieldSpec, raw: unknown): unknown {
  switch (spec.kind) {
    case 'int': {
      const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw
      if (typeof n !== 'number' || !Number.isInteger(n) || n < spec.min || n > spec.max) {
        throw new SimulatorInputError(`${key} must be an integer in ${spec.min}..${spec.max}`)
      }
      return n
    }
    case 'enum':
      if (typeof raw !== 'string' || !spec.values.includes(raw)) {
        throw new SimulatorInputError(`${key} must be one of ${spec.values.join(', ')}`)
      }
      return raw
    case 'bool':
      if (raw === true || raw === 'true' || raw === '1') return true
      if (raw === false || raw === 'false' || raw === '0') return false
      throw new SimulatorInputError(`${key} must be true/false or 1/0`)
    case 'text':
      if (typeof raw !== 'string' || raw.length > spec.max) {
        throw new SimulatorInputError(`${key} must be a string of at most ${spec.max} characters`)
      }
      return raw
  }
}

/** Returns `base` with the recognised keys of `input` applied; `strict` rejects unknown keys. */
function applyFields<T extends object>(
  base: T,
  specs: { [K in keyof T]: FieldSpec },
  input: Record<string, unknown>,
  strict: boolean,
): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) }
  for (const [key, raw] of Object.entries(input)) {
    const spec = (specs as Record<string, FieldSpec | undefined>)[key]
    if (!spec) {
      if (strict) throw new SimulatorInputError(`unknown simulator option "${key}"`)
      continue
    }
    out[key] = coerce(key, spec, raw)
  }
  return out as T
}

const DIRECTIVE = /\[\[sim(?:\s+([^\]]*))?\]\]/g
const TOKEN = /^([a-z_]+)(?:=(\S*))?$/

/**
 * Pulls every `[[sim k=v ...]]` out of a text. A bare key means `true`. Returns the merged parameters and the
 * text without the directives (the "question" the answer is derived from).
 */
export function extractDirectives(text: string): { params: Record<string, string>; text: string } {
  const params: Record<string, string> = {}
  const rest = text.replace(DIRECTIVE, (_whole, body: string | undefined) => {
    for (const token of (body ?? '').split(/\s+/).filter(Boolean)) {
      const m = TOKEN.exec(token)
      if (!m?.[1]) throw new SimulatorInputError(`malformed directive token "${token}" (expected key=value)`)
      params[m[1]] = m[2] ?? 'true'
    }
    return ''
  })
  return { params, text: rest.trim() }
}

function asRecord(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) throw new SimulatorInputError(`${what} must be an object`)
  return value as Record<string, unknown>
}

/** Query options: server defaults ← directive in the message ← `simulate` in the body. */
export function resolveQueryOptions(
  defaults: Readonly<QueryOptions>,
  directive: Record<string, string>,
  simulate: unknown,
): QueryOptions {
  let options = applyFields({ ...defaults }, QUERY_FIELDS, directive, true)
  options = applyFields(options, QUERY_FIELDS, asRecord(simulate, 'simulate'), true)
  // `mode=legacy` predates `format`; keep it as a shorthand so both spellings work.
  if (options.mode === 'legacy') return { ...options, mode: 'normal', format: 'legacy' }
  return options
}

/** Voice options from the upgrade URL's query parameters (unknown parameters ignored). */
export function resolveVoiceOptions(defaults: Readonly<VoiceOptions>, params: URLSearchParams): VoiceOptions {
  return checkVoice(applyFields({ ...defaults }, VOICE_FIELDS, Object.fromEntries(params), false))
}

/** Voice options changed mid-session by `{type:"config", simulate:{...}}`. */
export function updateVoiceOptions(current: VoiceOptions, simulate: unknown): VoiceOptions {
  return checkVoice(applyFields(current, VOICE_FIELDS, asRecord(simulate, 'simulate'), true))
}

function checkVoice(options: VoiceOptions): VoiceOptions {
  if (options.tts_frame_bytes % 2 !== 0) throw new SimulatorInputError('tts_frame_bytes must be even (PCM16)')
  return options
}

/** Fills partial defaults given to startSimulator, validating them like any other input. */
export function queryDefaults(partial: Partial<QueryOptions> = {}): QueryOptions {
  return resolveQueryOptions(QUERY_DEFAULTS, {}, partial)
}

export function voiceDefaults(partial: Partial<VoiceOptions> = {}): VoiceOptions {
  return updateVoiceOptions({ ...VOICE_DEFAULTS }, partial)
}
