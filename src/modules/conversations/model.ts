/** Wire contracts of /api/v2/conversations (contract §4, "Conversations"). */
import { t } from 'elysia'
import { conversationStatuses, messageModalities, messageRoles, messageStatuses } from '../../db/schema'
import { ErrorResponse, idPage, Page } from '../../http/models'

const Timestamp = t.String({ format: 'date-time' })

/** error statuses every conversation route may answer, for the OpenAPI document */
export const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 429: ErrorResponse }

const ConversationStatus = t.Union([t.Literal(conversationStatuses[0]), t.Literal(conversationStatuses[1])])
const Title = t.String({ maxLength: 200, examples: ['Trip planning'] })

export const ConversationView = t.Object({
  id: t.String(),
  title: t.String(),
  status: ConversationStatus,
  created_at: Timestamp,
  updated_at: Timestamp,
  last_message_at: t.Nullable(Timestamp),
  message_count: t.Integer(),
})
export const ConversationList = t.Object({ items: t.Array(ConversationView), next_cursor: t.Nullable(t.String()) })

export const CreateConversationBody = t.Object({ title: t.Optional(Title) })

export const UpdateConversationBody = t.Object({ title: t.Optional(Title), status: t.Optional(ConversationStatus) }, { minProperties: 1 })

export const ConversationListQuery = t.Composite([
  Page,
  t.Object({
    /** own: the caller's; shared: shared with the caller; all (default): both */
    scope: t.Optional(t.Union([t.Literal('own'), t.Literal('shared'), t.Literal('all')], { default: 'all' })),
    /** another member's conversations: needs a tenant-wide conversation:read grant */
    user_id: t.Optional(t.String({ minLength: 1, maxLength: 64 })),
  }),
])

export const ConversationParams = t.Object({ id: t.String({ maxLength: 64 }) })

/** oldest first; the cursor is the last message's id */
export const MessageListQuery = idPage('msg')

export const MessageView = t.Object({
  id: t.String(),
  role: t.UnionEnum(messageRoles),
  content: t.String(),
  modality: t.UnionEnum(messageModalities),
  status: t.UnionEnum(messageStatuses),
  references: t.Nullable(t.Array(t.Unknown())),
  usage: t.Nullable(t.Record(t.String(), t.Unknown())),
  ttft_ms: t.Nullable(t.Integer()),
  duration_ms: t.Nullable(t.Integer()),
  request_id: t.Nullable(t.String()),
  created_at: Timestamp,
})
export const MessageList = t.Object({ items: t.Array(MessageView), next_cursor: t.Nullable(t.String()) })
