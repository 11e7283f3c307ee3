/**
 * The client side of the voice protocol (contract §5): the session's audio config and the client's text
 * messages. Pure functions: parsing never throws, it answers what to do.
 */

export interface VoiceConfig {
  sample_rate: number
  channels: number
  format: string
  language: string
  vad_enabled: boolean
  noise_suppression: boolean
  echo_cancellation: boolean
}

/** The seed's defaults. */
export const VOICE_CONFIG_DEFAULTS: Readonly<VoiceConfig> = Object.freeze({
  sample_rate: 16000,
  channels: 1,
  format: 'pcm',
  language: 'zh-CN',
  vad_enabled: true,
  noise_suppression: true,
  echo_cancellation: false,
})

export const CAPABILITIES = Object.freeze({
  protocol: 'voice-protocol-v2',
  audio_formats: ['pcm', 'opus'],
  sample_rates: [8000, 16000, 24000, 48000],
  max_frame_bytes: 1024 * 1024,
  barge_in: true,
  partial_transcripts: true,
  tts: true,
})

type Check = (v: unknown) => boolean
const FIELDS: Record<keyof VoiceConfig, Check> = {
  sample_rate: (v) => Number.isInteger(v) && (v as number) >= 8000 && (v as number) <= 48000,
  channels: (v) => v === 1 || v === 2,
  format: (v) => typeof v === 'string' && /^[a-z0-9_-]{1,16}$/.test(v),
  language: (v) => typeof v === 'string' && /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$/.test(v),
  vad_enabled: (v) => typeof v === 'boolean',
  noise_suppression: (v) => typeof v === 'boolean',
  echo_cancellation: (v) => typeof v === 'boolean',
}
const EXPECTED: Record<keyof VoiceConfig, string> = {
  sample_rate: 'an integer from 8000 to 48000',
  channels: '1 or 2',
  format: 'a format name such as pcm',
  language: 'a language tag such as zh-CN',
  vad_enabled: 'a boolean',
  noise_suppression: 'a boolean',
  echo_cancellation: 'a boolean',
}

/** `language` from the upgrade URL, if it is a valid tag */
export function isLanguageTag(value: string): boolean {
  return FIELDS.language(value)
}

/** The config after a `config` message, or why it is refused (nothing is applied then). */
export function applyConfig(current: VoiceConfig, msg: Record<string, unknown>): { config: VoiceConfig } | { error: string } {
  const next = { ...current }
  for (const key of Object.keys(FIELDS) as Array<keyof VoiceConfig>) {
    if (!(key in msg)) continue
    if (!FIELDS[key](msg[key])) return { error: `config.${key} must be ${EXPECTED[key]}` }
    ;(next as Record<string, unknown>)[key] = msg[key]
  }
  return { config: next }
}

export type ClientMessage =
  | { type: 'config'; msg: Record<string, unknown> }
  | { type: 'start' | 'stop' | 'cancel' | 'ping' | 'end_session' }
  | { type: 'invalid'; error: string }

const SIMPLE = new Set(['start', 'stop', 'cancel', 'ping', 'end_session'])

export function parseClientMessage(raw: string): ClientMessage {
  let msg: unknown
  try {
    msg = JSON.parse(raw)
  } catch {
    return { type: 'invalid', error: 'message is not valid JSON' }
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return { type: 'invalid', error: 'message must be a JSON object' }
  const type = (msg as { type?: unknown }).type
  if (type === 'config') return { type, msg: msg as Record<string, unknown> }
  if (typeof type === 'string' && SIMPLE.has(type)) return { type: type as 'start' }
  return { type: 'invalid', error: `unknown message type ${JSON.stringify(type ?? null).slice(0, 64)}` }
}
