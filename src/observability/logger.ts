/**
 * JSON logs (pino). Secrets never reach a log line: the redaction list covers the fields where
 * tokens and passwords travel, whatever the caller passes in.
 */
import pino, { type Logger } from 'pino'

export type { Logger }

export const REDACTED_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'access_token',
  '*.access_token',
  'refresh_token',
  '*.refresh_token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers["x-api-key"]',
  'jwtSecret',
  '*.jwtSecret',
  'secret',
  '*.secret',
  'audio',
  '*.audio_chunk',
]

export function createLogger(opts: { level: string; destination?: pino.DestinationStream }): Logger {
  return pino(
    {
      level: opts.level,
      base: { service: 'voicehelper-gateway' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination ?? pino.destination({ dest: 1, sync: true }),
  )
}
