/** Wire contracts of /api/v2/voice (contract §5). */
import { t } from 'elysia'
import { voiceSessionStatuses } from '../../db/schema'
import { ErrorResponse, idPage } from '../../http/models'

const Timestamp = t.String({ format: 'date-time' })

export const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 429: ErrorResponse }

// not t.UnionEnum: Elysia fills an absent optional UnionEnum query field with its first value
const Status = t.Union([
  t.Literal(voiceSessionStatuses[0]),
  t.Literal(voiceSessionStatuses[1]),
  t.Literal(voiceSessionStatuses[2]),
  t.Literal(voiceSessionStatuses[3]),
  t.Literal(voiceSessionStatuses[4]),
])

export const TicketResponse = t.Object({
  ticket: t.String({ description: 'single use; pass as subprotocol `ticket.<ticket>` or `?ticket=`' }),
  expires_in: t.Integer({ description: 'seconds', examples: [60] }),
})

export const StreamQuery = t.Object({
  conversation_id: t.Optional(t.String({ minLength: 1, maxLength: 64 })),
  language: t.Optional(t.String({ pattern: '^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$', maxLength: 32 })),
  ticket: t.Optional(t.String({ maxLength: 128 })),
})

export const VoiceSessionView = t.Object({
  id: t.String(),
  user_id: t.String(),
  conversation_id: t.String(),
  status: Status,
  end_reason: t.Nullable(t.String()),
  config: t.Record(t.String(), t.Unknown()),
  packets: t.Integer(),
  bytes: t.Integer(),
  avg_relay_latency_ms: t.Nullable(t.Number()),
  asr_count: t.Integer(),
  tts_count: t.Integer(),
  error_count: t.Integer(),
  dropped_frames: t.Integer(),
  started_at: Timestamp,
  ended_at: t.Nullable(Timestamp),
})

export const VoiceSessionList = t.Object({ items: t.Array(VoiceSessionView), next_cursor: t.Nullable(t.String()) })

export const VoiceSessionListQuery = t.Composite([
  idPage('vs'),
  t.Object({
    status: t.Optional(Status),
    /** one member's sessions (voice:monitor) */
    user_id: t.Optional(t.String({ minLength: 1, maxLength: 64 })),
  }),
])

export const VoiceSessionParams = t.Object({ id: t.String({ maxLength: 64 }) })

export const EndedSession = t.Object({ id: t.String(), status: Status })
