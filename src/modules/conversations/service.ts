/**
 * Conversations and their messages (contract §4). Framework-free: callers pass the verified principal
 * and plain data. Every query is filtered by the acting tenant, and access is decided per conversation
 * by decide() — owner, explicit shares, then role or tenant-wide grants. A conversation the caller may
 * not read, or another tenant's, does not exist for them (404 CONVERSATION_NOT_FOUND).
 */
import { and, asc, desc, eq, gt, inArray, ne, or, type SQL, sql } from 'drizzle-orm'
import type { Database } from '../../db'
import { type Conversation, conversations, type Message, type MessageRole, messages, type NewMessage, resourceShares } from '../../db/schema'
import { AppError } from '../../errors'
import { newId } from '../../lib/ids'
import { type AccessResource, decide } from '../access'
import type { PageRequest } from '../../http/models'
import { authErrors } from '../auth/errors'
import type { Principal } from '../auth/principal'
import { decodeCursor, encodeCursor } from './cursor'

/** who is asking: the parts of the verified principal the decisions need */
export type Caller = Pick<Principal, 'userId' | 'tenantId' | 'homeTenantId' | 'subject'>

/** enough of a conversation to write into it: what getWritable returns */
export type ConversationRef = Pick<Conversation, 'id' | 'tenantId' | 'userId'>

export type ListScope = 'own' | 'shared' | 'all'

export interface ConversationPatch {
  title?: string
  status?: Conversation['status']
}

export type AppendMessage = Pick<NewMessage, 'role' | 'content' | 'modality' | 'status' | 'references' | 'usage' | 'ttftMs' | 'durationMs' | 'requestId'> & {
  /** who wrote it (the user for `user` messages; the conversation's caller for the assistant's reply) */
  userId: string
  /** an id announced before the message is stored (stream_start's message_id); a new one otherwise */
  id?: string
}

export const conversationErrors = {
  notFound: () => new AppError(404, 'CONVERSATION_NOT_FOUND', 'Conversation not found'),
}

export function conversationView(row: Conversation) {
  return {
    id: row.id,
    title: row.title,
    status: row.status,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    last_message_at: row.lastMessageAt?.toISOString() ?? null,
    message_count: row.messageCount,
  }
}

export function messageView(row: Message) {
  return {
    id: row.id,
    role: row.role,
    content: row.content,
    modality: row.modality,
    status: row.status,
    references: row.references ?? null,
    usage: row.usage ?? null,
    ttft_ms: row.ttftMs,
    duration_ms: row.durationMs,
    request_id: row.requestId,
    created_at: row.createdAt.toISOString(),
  }
}

/** updated_at to the microsecond, in the form decodeCursor accepts */
const updatedAtText = sql<string>`to_char(${conversations.updatedAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`

/** 403 unless the caller may create a conversation: in their own tenant, with conversation:write on their own */
function checkCreate(caller: Caller) {
  // the owner must be a member of the conversation's tenant (a composite foreign key says so too)
  if (caller.tenantId !== caller.homeTenantId) throw new AppError(403, 'TENANT_MISMATCH', 'Conversations are created in your own tenant')
  if (!decide(caller.subject, 'conversation:write', { ownerId: caller.userId }).allowed) throw authErrors.permissionDenied('conversation:write')
}

/** a conversation's messages after `cursor`, oldest first (the statement is also read by test/db/message-index.test.ts) */
export function messagesPage(db: Database, conversation: Pick<ConversationRef, 'id' | 'tenantId'>, cursor: string | undefined, limit: number) {
  return db
    .select()
    .from(messages)
    .where(and(eq(messages.tenantId, conversation.tenantId), eq(messages.conversationId, conversation.id), cursor ? gt(messages.id, cursor) : undefined))
    .orderBy(asc(messages.id))
    .limit(limit)
}

/** a conversation's last `turns` messages with content, newest first (the history sent upstream with a new question) */
export function latestTurns(db: Database, conversation: Pick<ConversationRef, 'id' | 'tenantId'>, turns: number) {
  return db
    .select({ role: messages.role, content: messages.content })
    .from(messages)
    .where(and(eq(messages.tenantId, conversation.tenantId), eq(messages.conversationId, conversation.id), ne(messages.content, '')))
    .orderBy(desc(messages.id))
    .limit(turns)
}

export function createConversationService({ db }: { db: Database }) {
  const inTenant = (tenantId: string, id: string) => and(eq(conversations.tenantId, tenantId), eq(conversations.id, id))

  /** ids of conversations shared with `userId` in the tenant, as a subquery */
  const sharedWith = (tenantId: string, userId: string) =>
    db
      .select({ id: resourceShares.resourceId })
      .from(resourceShares)
      .where(and(eq(resourceShares.tenantId, tenantId), eq(resourceShares.resourceType, 'conversation'), eq(resourceShares.userId, userId)))

  /** the conversation in the caller's acting tenant with the caller's shares of it, or undefined */
  async function load(caller: Caller, id: string): Promise<{ row: Conversation; resource: AccessResource } | undefined> {
    const [row] = await db.select().from(conversations).where(inTenant(caller.tenantId, id))
    if (!row) return undefined
    const shares = await db
      .select({ userId: resourceShares.userId, permission: resourceShares.permission })
      .from(resourceShares)
      .where(
        and(
          eq(resourceShares.tenantId, row.tenantId),
          eq(resourceShares.resourceType, 'conversation'),
          eq(resourceShares.resourceId, row.id),
          eq(resourceShares.userId, caller.userId),
        ),
      )
    return { row, resource: { ownerId: row.userId, shares } }
  }

  /** 404 unless the caller may read it; 403 if they may read it but not do `action` */
  async function authorize(caller: Caller, id: string, action: 'read' | 'write' | 'delete'): Promise<Conversation> {
    const found = await load(caller, id)
    if (!found || !decide(caller.subject, 'conversation:read', found.resource).allowed) throw conversationErrors.notFound()
    const required = `conversation:${action}`
    if (!decide(caller.subject, required, found.resource).allowed) throw authErrors.permissionDenied(required)
    return found.row
  }

  /** which rows a list covers; 403 when the caller may not even read their own (an API key without the scope) */
  function listFilter(caller: Caller, scope: ListScope, userId: string | undefined): SQL | undefined {
    if (!decide(caller.subject, 'conversation:read', { ownerId: caller.userId }).allowed) throw authErrors.permissionDenied('conversation:read')
    if (userId !== undefined && userId !== caller.userId) {
      // another member's: only with a grant that reaches every conversation of the tenant
      if (!decide(caller.subject, 'conversation:read').allowed) throw authErrors.permissionDenied('conversation:read')
      return eq(conversations.userId, userId)
    }
    const own = eq(conversations.userId, caller.userId)
    const shared = inArray(conversations.id, sharedWith(caller.tenantId, caller.userId))
    if (userId !== undefined || scope === 'own') return own
    if (scope === 'shared') return and(ne(conversations.userId, caller.userId), shared)
    return or(own, shared)
  }

  return {
    /** 403 unless create / startConversation would let the caller create a conversation (checked before a stream starts) */
    assertCanCreate: checkCreate,

    /** a new conversation owned by the caller, in their own tenant */
    async create(caller: Caller, title = ''): Promise<Conversation> {
      checkCreate(caller)
      const [row] = await db
        .insert(conversations)
        .values({ id: newId('conv'), tenantId: caller.tenantId, userId: caller.userId, title: title.trim() })
        .returning()
      return row!
    },

    /** newest-updated first; the cursor is the last row's (updated_at, id), so concurrent inserts (newer) never shift a page */
    async list(caller: Caller, filter: { scope?: ListScope; userId?: string }, page: PageRequest) {
      const after = page.cursor ? decodeCursor(page.cursor) : undefined
      const rows = await db
        .select({ row: conversations, position: updatedAtText })
        .from(conversations)
        .where(
          and(
            eq(conversations.tenantId, caller.tenantId),
            listFilter(caller, filter.scope ?? 'all', filter.userId),
            after && sql`(${conversations.updatedAt}, ${conversations.id}) < (${after.updatedAt}::timestamptz, ${after.id})`,
          ),
        )
        .orderBy(desc(conversations.updatedAt), desc(conversations.id))
        .limit(page.limit + 1)
      const items = rows.slice(0, page.limit)
      const last = items.at(-1)
      return {
        items: items.map((r) => conversationView(r.row)),
        next_cursor: rows.length > page.limit && last ? encodeCursor({ updatedAt: last.position, id: last.row.id }) : null,
      }
    },

    get: (caller: Caller, id: string) => authorize(caller, id, 'read'),

    async update(caller: Caller, id: string, patch: ConversationPatch): Promise<Conversation> {
      const row = await authorize(caller, id, 'write')
      const title = patch.title?.trim()
      const [after] = await db
        .update(conversations)
        .set({ ...(title !== undefined && { title }), ...(patch.status && { status: patch.status }) })
        .where(inTenant(row.tenantId, row.id))
        .returning()
      if (!after) throw conversationErrors.notFound() // deleted meanwhile
      return after
    },

    /** the conversation, its messages (cascade) and every share of it */
    async remove(caller: Caller, id: string): Promise<void> {
      const row = await authorize(caller, id, 'delete')
      await db.transaction(async (tx) => {
        await tx
          .delete(resourceShares)
          .where(and(eq(resourceShares.tenantId, row.tenantId), eq(resourceShares.resourceType, 'conversation'), eq(resourceShares.resourceId, row.id)))
        await tx.delete(conversations).where(inTenant(row.tenantId, row.id))
      })
    },

    /** oldest first; message ids are time-ordered, so the last id is the cursor */
    async messages(caller: Caller, id: string, page: PageRequest) {
      const row = await authorize(caller, id, 'read')
      const rows = await messagesPage(db, row, page.cursor, page.limit + 1)
      const items = rows.slice(0, page.limit)
      return { items: items.map(messageView), next_cursor: rows.length > page.limit ? items.at(-1)!.id : null }
    },

    /** for the chat stream: the conversation if the caller may write to it, else 404 (never 403: contract §4) */
    async getWritable(caller: Caller, id: string): Promise<Conversation> {
      const found = await load(caller, id)
      if (!found || !decide(caller.subject, 'conversation:write', found.resource).allowed) throw conversationErrors.notFound()
      return found.row
    },

    /** the last `turns` messages with content, oldest first: the prior turns sent upstream with a new question */
    async history(conversation: Pick<ConversationRef, 'id' | 'tenantId'>, turns: number): Promise<Array<{ role: MessageRole; content: string }>> {
      if (turns <= 0) return []
      return (await latestTurns(db, conversation, turns)).reverse()
    },
  }
}

export type ConversationService = ReturnType<typeof createConversationService>
