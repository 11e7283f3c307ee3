import { sql } from 'drizzle-orm'
import { bigint, foreignKey, index, integer, jsonb, pgTable, real, text } from 'drizzle-orm/pg-core'
import { oneOf, timestamptz } from './columns'
import { users } from './users'

export const voiceSessionStatuses = ['active', 'completed', 'failed', 'cancelled', 'expired'] as const
export type VoiceSessionStatus = (typeof voiceSessionStatuses)[number]

/**
 * One row per voice session (contract §5): written when it starts, completed with its counters when it ends.
 * A row left `active` by an instance that died is not live (the live set is in the store); every instance sweeps
 * such rows to `failed` (end_reason `instance_lost`) once their holder is known gone.
 */
export const voiceSessions = pgTable(
  'voice_sessions',
  {
    /** `vs_<uuidv7>`, time-ordered: the list cursor */
    id: text('id').primaryKey(),
    tenantId: text('tenant_id').notNull(),
    userId: text('user_id').notNull(),
    /** no foreign key: deleting the conversation keeps the session's record */
    conversationId: text('conversation_id').notNull(),
    status: text('status', { enum: voiceSessionStatuses }).notNull().default('active'),
    /** why it ended: client_ended, client_disconnected, idle, shutdown, token_revoked, deleted, upstream_error, instance_lost */
    endReason: text('end_reason'),
    /** the session's audio config as last set by the client */
    config: jsonb('config').$type<Record<string, unknown>>().notNull(),
    /** audio frames and bytes received from the client */
    packets: integer('packets').notNull().default(0),
    bytes: bigint('bytes', { mode: 'number' }).notNull().default(0),
    /** mean time a frame spent in the gateway (received → handed to the other side's socket), ms */
    avgRelayLatencyMs: real('avg_relay_latency_ms'),
    asrCount: integer('asr_count').notNull().default(0),
    ttsCount: integer('tts_count').notNull().default(0),
    errorCount: integer('error_count').notNull().default(0),
    droppedFrames: integer('dropped_frames').notNull().default(0),
    startedAt: timestamptz('started_at').notNull().defaultNow(),
    endedAt: timestamptz('ended_at'),
  },
  (t) => [
    foreignKey({ name: 'voice_sessions_user_fk', columns: [t.tenantId, t.userId], foreignColumns: [users.tenantId, users.id] }).onDelete('cascade'),
    // "my sessions, newest first" and the tenant-wide list for admins
    index('voice_sessions_tenant_user_id_idx').on(t.tenantId, t.userId, t.id.desc()),
    index('voice_sessions_tenant_id_idx').on(t.tenantId, t.id.desc()),
    // the sweep for rows a stopped instance left active: only those rows are in it
    index('voice_sessions_active_idx').on(t.startedAt).where(sql`${t.status} = 'active'`),
    oneOf('voice_sessions_status_check', t.status, voiceSessionStatuses),
  ],
)

export type VoiceSession = typeof voiceSessions.$inferSelect
export type NewVoiceSession = typeof voiceSessions.$inferInsert
