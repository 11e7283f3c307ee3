/**
 * appendMessage and startConversation write in one statement each (a data-modifying CTE). Same results as the
 * transaction they replace — on embedded PGlite and, when it is reachable, on a real Postgres (required under CI).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { and, eq, sql } from 'drizzle-orm'
import { conversations, type Message, messages } from '../../src/db/schema'
import { newId } from '../../src/lib/ids'
import { roleGrants } from '../../src/modules/access'
import { type AppendMessage, type Caller, type ConversationRef, createConversationService } from '../../src/modules/conversations/service'
import { createTestApp, type TestApp } from '../helpers/app'
import type { TestUser } from '../helpers/identity'
import { ci, createThrowawayDatabase, hasPostgres } from '../helpers/services'
import { as } from '../admin/helpers'
import { CONV, conversationWorld, insertConversation } from './helpers'

function callerOf(user: TestUser, roles = ['user'], tenantId = user.tenantId): Caller {
  return {
    userId: user.id,
    tenantId,
    homeTenantId: user.tenantId,
    subject: { userId: user.id, roles, directGrants: [], roleGrants: roleGrants(roles, new Map()), tenantGrants: [] },
  }
}

const drivers = [{ name: 'pglite', postgres: false }, ...(hasPostgres || ci ? [{ name: 'postgres', postgres: true }] : [])]

describe.each(drivers)('one-statement writes on $name', ({ postgres }) => {
  let gw: TestApp
  let database: { url: string; drop: () => Promise<void> } | undefined
  let world: Awaited<ReturnType<typeof conversationWorld>>

  beforeAll(async () => {
    if (postgres) database = await createThrowawayDatabase()
    gw = await createTestApp(database ? { DATABASE_URL: database.url } : {})
    world = await conversationWorld(gw)
  }, 60_000)
  afterAll(async () => {
    await gw?.close()
    await database?.drop()
  })

  const service = () => createConversationService({ db: gw.deps.db.db })
  const db = () => gw.deps.db.db
  const messagesOf = (conversationId: string) => db().select().from(messages).where(eq(messages.conversationId, conversationId))
  const conversationRow = async (id: string) => (await db().select().from(conversations).where(eq(conversations.id, id)))[0]

  /** what the old appendMessage did: a transaction, bump then insert … returning() */
  async function appendTheOldWay(conversation: ConversationRef, input: AppendMessage): Promise<Message> {
    return db().transaction(async (tx) => {
      const createdAt = new Date()
      await tx
        .update(conversations)
        .set({ messageCount: sql`${conversations.messageCount} + 1`, lastMessageAt: createdAt })
        .where(and(eq(conversations.tenantId, conversation.tenantId), eq(conversations.id, conversation.id)))
      const { id = newId('msg'), ...fields } = input
      const [message] = await tx
        .insert(messages)
        .values({ ...fields, id, tenantId: conversation.tenantId, conversationId: conversation.id, createdAt })
        .returning()
      return message!
    })
  }

  const full: AppendMessage = {
    userId: '',
    role: 'assistant',
    content: 'hi there',
    modality: 'voice',
    status: 'cancelled',
    references: [{ doc: 'a', score: 0.5 }],
    usage: { total_tokens: 12, nested: { a: [1, 2] } },
    ttftMs: 40,
    durationMs: 900,
    requestId: 'req-1',
  }

  test('appendMessage returns exactly what insert … returning() gave, for a full and a minimal message', async () => {
    const conv = await insertConversation(gw, world.alice)
    for (const input of [{ ...full, userId: world.alice.id }, { userId: world.alice.id, role: 'user' as const }]) {
      const oldWay = await appendTheOldWay(conv, { ...input, id: newId('msg') })
      const newWay = await service().appendMessage(conv, { ...input, id: newId('msg') })
      expect(newWay.createdAt).toBeInstanceOf(Date)
      const strip = ({ id, createdAt, ...rest }: Message) => rest
      expect(strip(newWay)).toEqual(strip(oldWay))
      expect(Object.keys(newWay)).toEqual(Object.keys(oldWay))
      // and what a select reads back
      const [stored] = await db().select().from(messages).where(eq(messages.id, newWay.id))
      expect(stored).toEqual(newWay)
    }
    const minimal = (await messagesOf(conv.id)).at(-1)!
    expect(minimal).toMatchObject({ content: '', modality: 'text', status: 'completed', references: null, usage: null, ttftMs: null, durationMs: null, requestId: null })
  })

  test('appendMessage bumps message_count, last_message_at and updated_at; keeps an announced id', async () => {
    const conv = await insertConversation(gw, world.alice, { updatedAt: new Date('2020-01-01T00:00:00Z') })
    const first = await service().appendMessage(conv, { userId: world.alice.id, role: 'user', content: 'hello' })
    const reply = await service().appendMessage(conv, { ...full, userId: world.alice.id, id: 'msg_announced_' + conv.id })
    expect(reply.id).toBe('msg_announced_' + conv.id)
    expect(reply).toMatchObject({ tenantId: world.tenantId, conversationId: conv.id, references: full.references, usage: full.usage })
    const row = await conversationRow(conv.id)
    expect(row!.messageCount).toBe(2)
    expect(row!.lastMessageAt!.getTime()).toBe(reply.createdAt.getTime())
    expect(row!.updatedAt.getTime()).toBe(reply.createdAt.getTime())
    expect(first.createdAt.getTime()).toBeLessThanOrEqual(reply.createdAt.getTime())
    expect((await as(gw, world.alice).get(`${CONV}/${conv.id}`)).body).toMatchObject({ message_count: 2, last_message_at: reply.createdAt.toISOString() })
  })

  test('appendMessage on a deleted conversation → 404, no message stored', async () => {
    const conv = await insertConversation(gw, world.alice)
    await db().delete(conversations).where(eq(conversations.id, conv.id))
    const id = newId('msg')
    await expect(service().appendMessage(conv, { id, userId: world.alice.id, role: 'user', content: 'late' })).rejects.toMatchObject({
      status: 404,
      code: 'CONVERSATION_NOT_FOUND',
    })
    expect(await db().select().from(messages).where(eq(messages.id, id))).toEqual([])
  })

  test("appendMessage with another tenant's conversation id → 404, nothing stored or bumped", async () => {
    const conv = await insertConversation(gw, world.alice)
    const other = await conversationWorld(gw)
    const id = newId('msg')
    await expect(
      service().appendMessage({ id: conv.id, tenantId: other.tenantId, userId: other.alice.id }, { id, userId: other.alice.id, role: 'user', content: 'x' }),
    ).rejects.toMatchObject({ status: 404, code: 'CONVERSATION_NOT_FOUND' })
    expect(await db().select().from(messages).where(eq(messages.id, id))).toEqual([])
    expect(await messagesOf(conv.id)).toEqual([])
    expect((await conversationRow(conv.id))!.messageCount).toBe(0)
  })

  test('startConversation: the conversation and its first message, count 1, seen through the REST routes', async () => {
    const id = newId('conv')
    const { conversation, message } = await service().startConversation(callerOf(world.alice), {
      id,
      title: '  Trip  ',
      message: { userId: world.alice.id, role: 'user', content: 'where to?', requestId: 'req-s', id: 'msg_first_' + id },
    })
    // the same row create() returns: every column, read back identically
    expect(conversation).toEqual((await conversationRow(id))!)
    expect(Object.keys(conversation).sort()).toEqual(Object.keys(await service().create(callerOf(world.alice))).sort())
    expect(conversation).toMatchObject({ id, tenantId: world.tenantId, userId: world.alice.id, title: 'Trip', status: 'active', messageCount: 1 })
    expect(conversation.lastMessageAt!.getTime()).toBe(message.createdAt.getTime())
    const [stored] = await messagesOf(id)
    expect(stored).toEqual(message)
    expect(message).toMatchObject({ id: 'msg_first_' + id, conversationId: id, tenantId: world.tenantId, role: 'user', content: 'where to?', modality: 'text', status: 'completed', requestId: 'req-s' })

    const alice = as(gw, world.alice)
    expect((await alice.get(`${CONV}/${id}`)).body).toMatchObject({ id, title: 'Trip', message_count: 1, last_message_at: message.createdAt.toISOString() })
    const listed = (await alice.get(`${CONV}/${id}/messages`)).body
    expect(listed.items).toHaveLength(1)
    expect(listed.items[0]).toMatchObject({ id: message.id, role: 'user', content: 'where to?', created_at: message.createdAt.toISOString() })

    // and the stream's reply lands in it
    await service().appendMessage(conversation, { userId: world.alice.id, role: 'assistant', content: 'Lisbon' })
    expect((await alice.get(`${CONV}/${id}`)).body.message_count).toBe(2)
  })

  test('startConversation refuses a caller acting in another tenant (TENANT_MISMATCH) and one without conversation:write', async () => {
    const other = await conversationWorld(gw)
    const id = newId('conv')
    const message = { userId: other.admin.id, role: 'user' as const, content: 'x' }
    const acting = callerOf(other.admin, ['super_admin'], world.tenantId)
    await expect(service().startConversation(acting, { id, message })).rejects.toMatchObject({ status: 403, code: 'TENANT_MISMATCH' })
    await expect(service().create(acting)).rejects.toMatchObject({ status: 403, code: 'TENANT_MISMATCH' })
    expect(() => service().assertCanCreate(acting)).toThrow()
    // an API key scoped to reading only
    const readOnlyKey: Caller = { ...callerOf(world.bob), subject: { ...callerOf(world.bob).subject, keyGrants: ['conversation:read'] } }
    await expect(service().create(readOnlyKey)).rejects.toMatchObject({ status: 403 })
    await expect(service().startConversation(readOnlyKey, { id, message: { ...message, userId: world.bob.id } })).rejects.toMatchObject({ status: 403 })
    expect(await conversationRow(id)).toBeUndefined()
    expect(await messagesOf(id)).toEqual([])
  })

  test('startConversation with an id that exists fails and stores no message', async () => {
    const existing = await insertConversation(gw, world.alice, { title: 'kept' })
    const msgId = newId('msg')
    await expect(
      service().startConversation(callerOf(world.alice), { id: existing.id, title: 'dup', message: { id: msgId, userId: world.alice.id, role: 'user', content: 'x' } }),
    ).rejects.toThrow()
    expect(await db().select().from(messages).where(eq(messages.id, msgId))).toEqual([])
    expect(await conversationRow(existing.id)).toEqual(existing)
  })
})
