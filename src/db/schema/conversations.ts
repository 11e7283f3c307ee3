import { foreignKey, index, integer, jsonb, pgTable, text, unique } from 'drizzle-orm/pg-core'
import { oneOf, timestamps, timestamptz } from './columns'
import { users } from './users'

export const conversationStatuses = ['active', 'archived'] as const
export type ConversationStatus = (typeof conversationStatuses)[number]

export const conversations = pgTable(
  'conversations',
  {
    id: text('id').primaryKey(),
    /** no separate tenants FK: the composite users FK below already implies the tenant exists */
    tenantId: text('tenant_id').notNull(),
    userId: text('user_id').notNull(),
    title: text('title').notNull().default(''),
    status: text('status', { enum: conversationStatuses }).notNull().default('active'),
    ...timestamps(),
    lastMessageAt: timestamptz('last_message_at'),
    messageCount: integer('message_count').notNull().default(0),
  },
  (t) => [
    // The owner must belong to the conversation's tenant: the database refuses a cross-tenant row even if a
    // query forgets its tenant filter.
    foreignKey({
      name: 'conversations_user_fk',
      columns: [t.tenantId, t.userId],
      foreignColumns: [users.tenantId, users.id],
    }),
    // "my conversations, most recently active first"
    index('conversations_tenant_user_updated_idx').on(t.tenantId, t.userId, t.updatedAt.desc()),
    // target of messages' composite foreign key
    unique('conversations_tenant_id_id_unique').on(t.tenantId, t.id),
    oneOf('conversations_status_check', t.status, conversationStatuses),
  ],
)

export const messageRoles = ['user', 'assistant'] as const
export const messageModalities = ['text', 'voice'] as const
export const messageStatuses = ['completed', 'cancelled', 'failed'] as const
export type MessageRole = (typeof messageRoles)[number]
export type MessageModality = (typeof messageModalities)[number]
export type MessageStatus = (typeof messageStatuses)[number]

export const messages = pgTable(
  'messages',
  {
    /** time-ordered (`msg_<uuidv7>`), so (tenant_id, conversation_id, id) orders a conversation and is its cursor */
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    conversationId: text('conversation_id').notNull(),
    userId: text('user_id').notNull(),
    role: text('role', { enum: messageRoles }).notNull(),
    content: text('content').notNull().default(''),
    modality: text('modality', { enum: messageModalities }).notNull().default('text'),
    status: text('status', { enum: messageStatuses }).notNull().default('completed'),
    /** retrieval_result references as the algorithm service sent them */
    references: jsonb('references').$type<unknown[]>(),
    /** token usage as the algorithm service reported it, if it did */
    usage: jsonb('usage').$type<Record<string, unknown>>(),
    ttftMs: integer('ttft_ms'),
    durationMs: integer('duration_ms'),
    requestId: text('request_id'),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (t) => [
    // Composite so a message can only belong to a conversation of its own tenant; deleting the conversation
    // deletes its messages.
    foreignKey({
      name: 'messages_conversation_fk',
      columns: [t.tenantId, t.conversationId],
      foreignColumns: [conversations.tenantId, conversations.id],
    }).onDelete('cascade'),
    // A conversation's messages in order (history, cursor pages, the lost-answer sweep's probe, the cascade
    // delete) and a tenant's count, from one index. With a second index on tenant_id, a planner without
    // statistics (PGlite before its first ANALYZE, Postgres without autovacuum) ANDs the two, reading every
    // message of the tenant to find one conversation's.
    index('messages_conversation_idx').on(t.tenantId, t.conversationId, t.id),
    oneOf('messages_role_check', t.role, messageRoles),
    oneOf('messages_modality_check', t.modality, messageModalities),
    oneOf('messages_status_check', t.status, messageStatuses),
  ],
)

export type Conversation = typeof conversations.$inferSelect
export type NewConversation = typeof conversations.$inferInsert
export type Message = typeof messages.$inferSelect
export type NewMessage = typeof messages.$inferInsert
