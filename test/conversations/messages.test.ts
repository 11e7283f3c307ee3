/** Messages: listing oldest first with cursor pages, and the service calls the chat stream builds on. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { conversations, messages } from '../../src/db/schema'
import { roleGrants } from '../../src/modules/access'
import { type Caller, createConversationService } from '../../src/modules/conversations/service'
import { createMessageWriter } from '../../src/modules/conversations/writer'
import { createTestApp, type TestApp } from '../helpers/app'
import type { TestUser } from '../helpers/identity'
import { as, collectPages } from '../admin/helpers'
import { CONV, conversationWorld, insertConversation, insertMessages, share } from './helpers'
import { rejectionOf } from '../helpers/rejection'

let gw: TestApp
let world: Awaited<ReturnType<typeof conversationWorld>>

beforeAll(async () => {
  gw = await createTestApp()
  world = await conversationWorld(gw)
}, 60_000)
afterAll(() => gw.close())

/** the principal a plain user's token resolves to, as plain data */
function callerOf(user: TestUser, roles = ['user'], tenantId = user.tenantId): Caller {
  return {
    userId: user.id,
    tenantId,
    homeTenantId: user.tenantId,
    subject: { userId: user.id, roles, directGrants: [], roleGrants: roleGrants(roles, new Map()), tenantGrants: [] },
  }
}

describe('GET /conversations/:id/messages', () => {
  test('25 messages paged by 10: oldest first, every field, no duplicates or gaps', async () => {
    const conv = await insertConversation(gw, world.alice)
    const rows = await insertMessages(gw, conv, 25)
    const { items, pages } = await collectPages((q) => as(gw, world.alice).get(`${CONV}/${conv.id}/messages${q}`), 10)
    expect(pages).toEqual([10, 10, 5])
    expect(items.map((m) => m.id)).toEqual(rows.map((r) => r.id))
    expect(items[0]).toEqual({
      id: rows[0]!.id,
      role: 'user',
      content: 'message 0',
      modality: 'text',
      status: 'completed',
      references: null,
      usage: null,
      ttft_ms: null,
      duration_ms: null,
      request_id: null,
      created_at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
    })
  })

  test('an empty conversation → no items, no cursor', async () => {
    const conv = await insertConversation(gw, world.alice)
    expect((await as(gw, world.alice).get(`${CONV}/${conv.id}/messages`)).body).toEqual({ items: [], next_cursor: null })
  })
})

describe('the service the chat stream uses', () => {
  const service = () => createConversationService({ db: gw.deps.db.db })

  test('create, then the writer: stored with every field, count and last_message_at follow, shown over HTTP', async () => {
    const writer = createMessageWriter({ db: gw.deps.db })
    const conv = await service().create(callerOf(world.alice), 'from the service')
    expect(conv).toMatchObject({ tenantId: world.tenantId, userId: world.alice.id, title: 'from the service', messageCount: 0 })
    await writer.append(conv, { userId: world.alice.id, role: 'user', content: 'hello', requestId: 'req-1' })
    await writer.append(conv, {
      id: 'msg_announced',
      userId: world.alice.id,
      role: 'assistant',
      content: 'hi there',
      status: 'cancelled',
      references: [{ doc: 'a' }],
      usage: { total_tokens: 12 },
      ttftMs: 40,
      durationMs: 900,
      requestId: 'req-1',
    })
    const [reply] = await gw.deps.db.db.select().from(messages).where(eq(messages.id, 'msg_announced'))
    expect(reply).toBeDefined()
    const [row] = await gw.deps.db.db.select().from(conversations).where(eq(conversations.id, conv.id))
    expect(row!.messageCount).toBe(2)
    expect(row!.lastMessageAt?.getTime()).toBe(reply!.createdAt.getTime())
    expect(row!.updatedAt.getTime()).toBeGreaterThanOrEqual(conv.updatedAt.getTime())

    const listed = await as(gw, world.alice).get(`${CONV}/${conv.id}/messages`)
    expect(listed.body.items.map((m: { content: string }) => m.content)).toEqual(['hello', 'hi there'])
    expect(listed.body.items[1]).toMatchObject({ status: 'cancelled', references: [{ doc: 'a' }], usage: { total_tokens: 12 }, ttft_ms: 40, duration_ms: 900, request_id: 'req-1' })
    expect((await as(gw, world.alice).get(`${CONV}/${conv.id}`)).body).toMatchObject({ message_count: 2, last_message_at: reply!.createdAt.toISOString() })
  })

  test('a new conversation is refused to a caller acting in another tenant (TENANT_MISMATCH) and to one without conversation:write', async () => {
    const other = await conversationWorld(gw)
    const acting = callerOf(other.admin, ['super_admin'], world.tenantId)
    expect(await rejectionOf(service().create(acting))).toMatchObject({ status: 403, code: 'TENANT_MISMATCH' })
    expect(() => service().assertCanCreate(acting)).toThrow(expect.objectContaining({ code: 'TENANT_MISMATCH' }))
    // an API key scoped to reading only
    const readOnlyKey: Caller = { ...callerOf(world.bob), subject: { ...callerOf(world.bob).subject, keyGrants: ['conversation:read'] } }
    expect(await rejectionOf(service().create(readOnlyKey))).toMatchObject({ status: 403 })
    expect(() => service().assertCanCreate(readOnlyKey)).toThrow(expect.objectContaining({ status: 403 }))
  })

  test('history: the last N turns, oldest first, skipping empty ones', async () => {
    const conv = await insertConversation(gw, world.alice)
    const rows = await insertMessages(gw, conv, 7)
    await createMessageWriter({ db: gw.deps.db }).append(conv, { userId: world.alice.id, role: 'assistant', content: '', status: 'failed' })
    const expected = rows.slice(-4).map((r) => ({ role: r.role, content: r.content }))
    expect(await service().history(conv, 4)).toEqual(expected)
    expect(await service().history(conv, 100)).toHaveLength(7)
    expect(await service().history(conv, 0)).toEqual([])
    // the tenant is part of the key: the same id under another tenant has no history
    expect(await service().history({ id: conv.id, tenantId: 'another-tenant' }, 4)).toEqual([])
  })

  test('getWritable: the owner and a write share get it; a read share, another member or tenant get 404', async () => {
    const conv = await insertConversation(gw, world.alice)
    await share(gw, conv, world.bob.id, 'write')
    expect((await service().getWritable(callerOf(world.alice), conv.id)).id).toBe(conv.id)
    expect((await service().getWritable(callerOf(world.bob), conv.id)).id).toBe(conv.id)

    const readOnly = await insertConversation(gw, world.alice)
    await share(gw, readOnly, world.bob.id, 'read')
    const other = await conversationWorld(gw)
    for (const [caller, id] of [
      [callerOf(world.bob), readOnly.id],
      [callerOf(world.bob), 'conv_missing'],
      [callerOf(other.admin, ['admin']), conv.id],
    ] as const) {
      expect(await rejectionOf(service().getWritable(caller, id))).toMatchObject({ status: 404, code: 'CONVERSATION_NOT_FOUND' })
    }
  })
})
