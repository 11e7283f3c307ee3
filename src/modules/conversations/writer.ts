/**
 * Group commit for the chat stream's messages. Every chat stream writes a question (creating its conversation
 * when new) and an answer; hundreds of streams starting or ending together would each pay a statement and a
 * commit — on the embedded PGlite a millisecond or more of CPU apiece, on the one thread PGlite has. Writes that
 * arrive while a batch is being written wait and go together in the next one: one statement per batch, so an idle
 * gateway writes at once and a busy one writes hundreds of messages per commit.
 *
 * The statement creates the new conversations, bumps the existing ones (count, last_message_at, updated_at)
 * and inserts each message only if its conversation was created or bumped — a conversation deleted meanwhile
 * (or another tenant's) stores nothing, and that write alone fails with 404.
 */
import { type DatabaseHandle, pgErrorCode, rawQuery, tryAgainWhileUnreachable } from '../../db'
import { newId } from '../../lib/ids'
import { BackgroundRetries } from '../../lib/retry'
import { storableReplacer, SUSPECT_ESCAPE } from '../../lib/storable'
import { type AppendMessage, conversationErrors } from './service'

/** rows per statement (one JSON parameter holds them all) */
const MAX_BATCH = 256

interface Pending {
  messageId: string
  tenantId: string
  conversationId: string
  /** set for the first message of a new conversation: its owner and title */
  newConversation?: { userId: string; title: string }
  input: AppendMessage
  createdAt: Date
  resolve(): void
  reject(err: unknown): void
}

/** one message as the statement's JSON row */
function row(p: Pending) {
  const m = p.input
  return {
    id: p.messageId,
    tenant_id: p.tenantId,
    conversation_id: p.conversationId,
    user_id: m.userId,
    role: m.role,
    content: m.content ?? '',
    modality: m.modality ?? 'text',
    status: m.status ?? 'completed',
    references: m.references ?? null,
    usage: m.usage ?? null,
    ttft_ms: m.ttftMs ?? null,
    duration_ms: m.durationMs ?? null,
    request_id: m.requestId ?? null,
    created_at: p.createdAt.toISOString(),
    new_title: p.newConversation ? p.newConversation.title : null,
  }
}

/**
 * JSON of rows for a statement's one parameter, with every string made storable: a NUL or a lone surrogate
 * (an upstream's) becomes U+FFFD, since one refused row would fail the whole batch, other streams' messages too.
 * Only a batch holding a suspect escape needs the (slower) replacer pass.
 */
export function storableJson(rows: unknown): string {
  const text = JSON.stringify(rows)
  return SUSPECT_ESCAPE.test(text) ? JSON.stringify(rows, storableReplacer) : text
}

/**
 * One statement text whatever the batch size: the rows arrive as one JSON array ($1), so the driver serialises
 * one parameter instead of fifteen per row and the server parses the same short text every time.
 */
export const STATEMENT = `
    with v as (
      select * from json_to_recordset($1::text::json) as x(
        id text, tenant_id text, conversation_id text, user_id text, role text, content text, modality text,
        status text, "references" jsonb, usage jsonb, ttft_ms integer, duration_ms integer, request_id text,
        created_at timestamptz, new_title text)
    ),
    news as (select distinct tenant_id, conversation_id from v where new_title is not null),
    created as (
      insert into conversations (id, tenant_id, user_id, title, created_at, updated_at, last_message_at, message_count)
      select v.conversation_id, v.tenant_id, min(v.user_id) filter (where v.new_title is not null), min(v.new_title),
        min(v.created_at), max(v.created_at), max(v.created_at), count(*)
      from v join news on news.tenant_id = v.tenant_id and news.conversation_id = v.conversation_id
      group by v.tenant_id, v.conversation_id
      on conflict do nothing
      returning tenant_id, id
    ),
    bumped as (
      update conversations c
      set message_count = c.message_count + b.n, last_message_at = b.last, updated_at = b.last
      from (
        select tenant_id, conversation_id, count(*) as n, max(created_at) as last from v
        where (tenant_id, conversation_id) not in (select tenant_id, conversation_id from news)
        group by tenant_id, conversation_id
      ) b
      where c.tenant_id = b.tenant_id and c.id = b.conversation_id
      returning c.tenant_id, c.id
    )
    insert into messages (id, tenant_id, conversation_id, user_id, role, content, modality, status, "references", usage, ttft_ms, duration_ms, request_id, created_at)
    select id, tenant_id, conversation_id, user_id, role, content, modality, status, "references", usage, ttft_ms, duration_ms, request_id, created_at
    from v
    where (tenant_id, conversation_id) in (select tenant_id, id from created union all select tenant_id, id from bumped)
    returning id`

/**
 * Batches in flight at once. On Postgres a second batch, on another pooled connection, takes the writes that
 * arrived while the first is being written, for conversations the first does not hold: no row both lock, so no
 * deadlock, and each conversation's writes still commit in the order they were made. PGlite runs one statement
 * at a time anyway.
 */
const LANES = { postgres: 2, pglite: 1 } as const

export function createMessageWriter({ db, lanes = LANES[db.kind] }: { db: DatabaseHandle; lanes?: number }) {
  let queue: Pending[] = []
  let scheduled = false
  let running = 0
  /** the conversations of the batches being written (tenant and id) */
  const held = new Set<string>()
  /** writes tried again in the background (appendLater) */
  const retries = new BackgroundRetries()

  const keyOf = (p: Pending) => `${p.tenantId}\u0000${p.conversationId}`

  /** up to MAX_BATCH queued writes of conversations no running batch holds, in queue order; the rest stay queued */
  function take(): Pending[] {
    if (held.size === 0 && queue.length <= MAX_BATCH) {
      const batch = queue
      queue = []
      return batch
    }
    const batch: Pending[] = []
    const rest: Pending[] = []
    // a conversation skipped once stays held for the rest of the queue (it is in `held`), so order is kept
    for (const p of queue) (batch.length < MAX_BATCH && !held.has(keyOf(p)) ? batch : rest).push(p)
    queue = rest
    return batch
  }

  /** starts batches while a lane is free and the queue holds writes no running batch blocks */
  function pump(): void {
    scheduled = false
    while (running < lanes && queue.length > 0) {
      const batch = take()
      if (batch.length === 0) return
      const keys = batch.map(keyOf)
      for (const k of keys) held.add(k)
      running++
      void write(batch).then(() => {
        for (const k of keys) held.delete(k)
        running--
        pump()
      })
    }
  }

  /** one statement for the batch; each write resolves, or fails with the statement or alone (404) */
  async function write(batch: Pending[]): Promise<void> {
    try {
      const rows = await rawQuery<{ id: string }>(db, STATEMENT, [storableJson(batch.map(row))], { prepare: true })
      const stored = new Set(rows.map((r) => r.id))
      for (const p of batch) stored.has(p.messageId) ? p.resolve() : p.reject(conversationErrors.notFound())
    } catch (err) {
      for (const p of batch) p.reject(err)
    }
  }

  /**
   * A write tried again goes alone, not in a batch: if the try that failed did commit after all (its reply was
   * lost, or it committed late), the message's id is taken, and that duplicate fails only this write — which
   * then counts as stored.
   */
  function writeAgain(conversation: { id: string; tenantId: string }, input: AppendMessage & { id: string }): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      void write([{ messageId: input.id, tenantId: conversation.tenantId, conversationId: conversation.id, input, createdAt: new Date(), resolve, reject }])
    }).catch((err: unknown) => {
      if (pgErrorCode(err) !== '23505') throw err
    })
  }

  function enqueue(p: Omit<Pending, 'resolve' | 'reject' | 'createdAt'>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      queue.push({ ...p, createdAt: new Date(), resolve, reject })
      // a lane free: write on the next turn (writes made in this one join); all busy: the next to finish takes it
      if (!scheduled && running < lanes) {
        scheduled = true
        setImmediate(pump)
      }
    })
  }

  return {
    /** stores a message in an existing conversation; 404 if it is gone */
    append(conversation: { id: string; tenantId: string }, input: AppendMessage): Promise<void> {
      return enqueue({ messageId: input.id ?? newId('msg'), tenantId: conversation.tenantId, conversationId: conversation.id, input })
    },

    /**
     * stores a message whose first write met an unreachable database (`isDatabaseUnreachable`): tries again with
     * backoff for a minute, once more at once after `stopRetrying`; rejects with the last error when it gives up.
     * The message's id must be set, so that a try whose commit did happen is not stored twice.
     */
    appendLater(conversation: { id: string; tenantId: string }, input: AppendMessage & { id: string }): Promise<void> {
      return retries.start((signal) => tryAgainWhileUnreachable(() => writeAgain(conversation, input), signal))
    },

    /** shutdown: the writes tried again in the background try once more at once; resolves when they are done */
    stopRetrying(): Promise<void> {
      return retries.stop()
    },

    /** creates the conversation `id` (owned by `userId`) with its first message; the caller checked the permission */
    start(conversation: { id: string; tenantId: string; userId: string; title?: string }, input: AppendMessage): Promise<void> {
      return enqueue({
        messageId: input.id ?? newId('msg'),
        tenantId: conversation.tenantId,
        conversationId: conversation.id,
        newConversation: { userId: conversation.userId, title: (conversation.title ?? '').trim() },
        input,
      })
    },
  }
}

export type MessageWriter = ReturnType<typeof createMessageWriter>
