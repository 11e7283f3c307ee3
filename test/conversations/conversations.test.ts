/** /api/v2/conversations: CRUD, validation, and lists that page without duplicates or gaps. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { conversations, messages } from '../../src/db/schema'
import { createTestApp, type TestApp } from '../helpers/app'
import { makeUser } from '../helpers/identity'
import { as, collectPages } from '../admin/helpers'
import { CONV, conversationWorld, insertConversation, insertMessages, share } from './helpers'

let gw: TestApp
let world: Awaited<ReturnType<typeof conversationWorld>>

beforeAll(async () => {
  gw = await createTestApp()
  world = await conversationWorld(gw)
}, 60_000)
afterAll(() => gw.close())

describe('create, read, update, delete', () => {
  test('POST → 201 with the contract fields, owned by the caller in their tenant', async () => {
    const reply = await as(gw, world.alice).post(CONV, { title: '  Trip planning ' })
    expect(reply.status).toBe(201)
    expect(reply.body).toEqual({
      id: expect.stringMatching(/^conv_/),
      title: 'Trip planning',
      status: 'active',
      created_at: expect.any(String),
      updated_at: expect.any(String),
      last_message_at: null,
      message_count: 0,
    })
    expect(new Date(reply.body.created_at).toISOString()).toBe(reply.body.created_at)
    const [row] = await gw.deps.db.db.select().from(conversations).where(eq(conversations.id, reply.body.id))
    expect(row).toMatchObject({ tenantId: world.tenantId, userId: world.alice.id })
  })

  test('POST without a title, or with no body at all → an untitled conversation', async () => {
    const reply = await as(gw, world.alice).post(CONV, {})
    expect(reply.status).toBe(201)
    expect(reply.body.title).toBe('')
    const bare = await as(gw, world.alice).send('POST', CONV)
    expect([bare.status, bare.body.title]).toEqual([201, ''])
    const declaredJson = await as(gw, world.alice).post(CONV, '')
    expect([declaredJson.status, declaredJson.body.title]).toEqual([201, ''])
  })

  test('GET, PATCH title and status, then DELETE → 204 and its messages are gone', async () => {
    const alice = as(gw, world.alice)
    const { body: created } = await alice.post(CONV, { title: 'first' })
    expect((await alice.get(`${CONV}/${created.id}`)).body).toEqual(created)

    const patched = await alice.patch(`${CONV}/${created.id}`, { title: 'renamed', status: 'archived' })
    expect(patched.status).toBe(200)
    expect(patched.body).toMatchObject({ id: created.id, title: 'renamed', status: 'archived' })
    expect(Date.parse(patched.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(created.updated_at))

    await insertMessages(gw, { id: created.id, tenantId: world.tenantId, userId: world.alice.id }, 3)
    const deleted = await alice.del(`${CONV}/${created.id}`)
    expect(deleted.status).toBe(204)
    expect(deleted.body).toBeUndefined()
    expect((await alice.get(`${CONV}/${created.id}`)).body.code).toBe('CONVERSATION_NOT_FOUND')
    expect(await gw.deps.db.db.select().from(messages).where(eq(messages.conversationId, created.id))).toEqual([])
  })

  test('an unknown id → 404 CONVERSATION_NOT_FOUND on every route', async () => {
    const alice = as(gw, world.alice)
    for (const reply of [
      await alice.get(`${CONV}/conv_missing`),
      await alice.patch(`${CONV}/conv_missing`, { title: 'x' }),
      await alice.del(`${CONV}/conv_missing`),
      await alice.get(`${CONV}/conv_missing/messages`),
    ]) {
      expect(reply.status).toBe(404)
      expect(reply.body.code).toBe('CONVERSATION_NOT_FOUND')
    }
  })

  test.each([
    ['POST', { title: 'x'.repeat(201) }, 'title'],
    ['POST', { title: 42 }, 'title'],
    ['PATCH', { status: 'deleted' }, 'status'],
    ['PATCH', { title: 'x'.repeat(201) }, 'title'],
  ])('%s %j → 400 VALIDATION_FAILED naming %s', async (method, body, field) => {
    const alice = as(gw, world.alice)
    const { body: created } = await alice.post(CONV, {})
    const reply = method === 'POST' ? await alice.post(CONV, body) : await alice.patch(`${CONV}/${created.id}`, body)
    expect(reply.status).toBe(400)
    expect(reply.body.code).toBe('VALIDATION_FAILED')
    expect(JSON.stringify(reply.body.details)).toContain(field)
  })

  test('a title Postgres cannot store (a NUL) → 400 VALIDATION_FAILED, not a 500; nothing is created', async () => {
    const alice = as(gw, world.alice)
    const before = (await gw.deps.db.db.select().from(conversations).where(eq(conversations.userId, world.alice.id))).length
    const reply = await alice.post(CONV, { title: 'a\u0000b' })
    expect(reply.status).toBe(400)
    expect(reply.body).toMatchObject({ code: 'VALIDATION_FAILED' })
    const { body: created } = await alice.post(CONV, { title: 'fine' })
    expect((await alice.patch(`${CONV}/${created.id}`, { title: '\u0000' })).status).toBe(400)
    // a body that is not an object creates nothing either (Elysia would not validate it: every field is optional)
    for (const body of [[], 'x', 7]) expect((await alice.post(CONV, body)).status).toBe(400)
    expect((await alice.get(`${CONV}/${created.id}`)).body.title).toBe('fine')
    expect((await gw.deps.db.db.select().from(conversations).where(eq(conversations.userId, world.alice.id))).length).toBe(before + 1)
  })

  test('PATCH with an empty body → 400; bad list parameters → 400 naming them', async () => {
    const alice = as(gw, world.alice)
    const { body: created } = await alice.post(CONV, {})
    expect((await alice.patch(`${CONV}/${created.id}`, {})).status).toBe(400)
    for (const query of ['limit=0', 'limit=101', 'limit=ten']) {
      // Elysia 1.4 checks a coerced query number on its own and drops its name, so only the code is asserted here
      const reply = await alice.get(`${CONV}?${query}`)
      expect({ query, status: reply.status, code: reply.body.code }).toEqual({ query, status: 400, code: 'VALIDATION_FAILED' })
    }
    // a cursor of the right shape whose time is no time (month 13, day 45; year 0; 30 February) is refused, not a 500
    const forged = ['2024-13-45T99:99:99.000000Z', '0000-01-01T00:00:00.000000Z', '2024-02-30T00:00:00.000000Z'].map(
      (at) => ['cursor=' + Buffer.from(`${at}|conv_x`).toString('base64url'), 'cursor'],
    )
    for (const [query, field] of [['scope=everyone', 'scope'], ['cursor=bm9wZQ', 'cursor'], ...forged, [`user_id=${'u'.repeat(65)}`, 'user_id']]) {
      const reply = await alice.get(`${CONV}?${query}`)
      expect({ query, status: reply.status, code: reply.body.code }).toEqual({ query, status: 400, code: 'VALIDATION_FAILED' })
      expect(reply.body.details[0].field).toBe(field!)
    }
  })
})

describe('listing', () => {
  test('45 conversations paged by 10: newest-updated first, no duplicates, no gaps', async () => {
    const owner = await makeUser(gw, { tenantId: world.tenantId })
    const base = Date.now() - 3_600_000
    // several share an updated_at, so the id must break ties
    const rows = []
    for (let i = 0; i < 45; i++) rows.push(await insertConversation(gw, owner, { title: `c${i}`, updatedAt: new Date(base + Math.floor(i / 3) * 1000) }))
    const { items, pages } = await collectPages((q) => as(gw, owner).get(`${CONV}${q}`), 10)
    expect(pages).toEqual([10, 10, 10, 10, 5])
    expect(items.map((c) => c.id)).toEqual(rows.map((r) => r.id).reverse())
  })

  test('rows inserted between pages neither repeat nor shift the remaining pages', async () => {
    const owner = await makeUser(gw, { tenantId: world.tenantId })
    const rows = []
    for (let i = 0; i < 25; i++) rows.push(await insertConversation(gw, owner))
    const client = as(gw, owner)
    const first = await client.get(`${CONV}?limit=10`)
    for (let i = 0; i < 5; i++) await insertConversation(gw, owner) // newer: they belong before page one
    const seen = [...first.body.items]
    let cursor = first.body.next_cursor
    while (cursor) {
      const page = await client.get(`${CONV}?limit=10&cursor=${encodeURIComponent(cursor)}`)
      seen.push(...page.body.items)
      cursor = page.body.next_cursor
    }
    expect(seen.map((c: { id: string }) => c.id)).toEqual(rows.map((r) => r.id).reverse())
  })

  test('own, shared and all; other members’ conversations are not listed', async () => {
    const [owner, friend, stranger] = await Promise.all([1, 2, 3].map(() => makeUser(gw, { tenantId: world.tenantId })))
    const mine = await insertConversation(gw, owner!)
    const friends = await insertConversation(gw, friend!)
    await share(gw, friends, owner!.id, 'read')
    await insertConversation(gw, stranger!)
    const ids = async (query: string) => (await as(gw, owner!).get(`${CONV}${query}`)).body.items.map((c: { id: string }) => c.id)
    expect(await ids('')).toEqual([friends.id, mine.id])
    expect(await ids('?scope=all')).toEqual([friends.id, mine.id])
    expect(await ids('?scope=own')).toEqual([mine.id])
    expect(await ids('?scope=shared')).toEqual([friends.id])
  })

  test('?user_id=: an admin lists a member’s conversations; a plain user may not; another tenant’s member shows nothing', async () => {
    const member = await makeUser(gw, { tenantId: world.tenantId })
    const conv = await insertConversation(gw, member)
    const byAdmin = await as(gw, world.admin).get(`${CONV}?user_id=${member.id}`)
    expect(byAdmin.status).toBe(200)
    expect(byAdmin.body.items.map((c: { id: string }) => c.id)).toEqual([conv.id])

    const byUser = await as(gw, world.bob).get(`${CONV}?user_id=${member.id}`)
    expect(byUser.status).toBe(403)
    expect(byUser.body.code).toBe('PERMISSION_DENIED')
    expect((await as(gw, world.bob).get(`${CONV}?user_id=${world.bob.id}`)).status).toBe(200)

    const other = await conversationWorld(gw)
    await insertConversation(gw, other.alice)
    const across = await as(gw, world.admin).get(`${CONV}?user_id=${other.alice.id}`)
    expect(across.body).toEqual({ items: [], next_cursor: null })
  })
})
