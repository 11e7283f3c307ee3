/** Wire contracts of /api/v2/chat (contract §4). */
import { t } from 'elysia'
import { ErrorResponse } from '../../http/models'

/** error statuses the chat routes may answer before a stream starts, for the OpenAPI document */
export const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse, 429: ErrorResponse }

/** CHAT_MAX_MESSAGE_CHARS */
export const MAX_MESSAGE_CHARS = 10_000

export const RequestId = t.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.:-]+$' })

export const ChatStreamBody = t.Object({
  /** not blank: at least one non-space character */
  message: t.String({ minLength: 1, maxLength: MAX_MESSAGE_CHARS, pattern: '\\S' }),
  conversation_id: t.Optional(t.String({ minLength: 1, maxLength: 64 })),
  stream_id: t.Optional(t.String({ minLength: 1, maxLength: 128 })),
  request_id: t.Optional(RequestId),
  model: t.String({ minLength: 1, maxLength: 100, default: 'gpt-3.5-turbo' }),
  temperature: t.Number({ minimum: 0, maximum: 2, default: 0.7 }),
  max_tokens: t.Integer({ minimum: 1, maximum: 8192, default: 2048 }),
})
export type ChatStreamBody = typeof ChatStreamBody.static

export const CancelBody = t.Object({ request_id: RequestId })
export const CancelResponse = t.Object({ request_id: t.String(), status: t.Literal('cancelled') })
