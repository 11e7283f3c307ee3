/**
 * Who reaches which conversation: the owner; explicit shares (read: look; write: look and change;
 * neither: delete); admins by their role grant. Anyone else — another member, another tenant — gets
 * 404 CONVERSATION_NOT_FOUND and nothing changes.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { conversations, messages } from '../../src/db/schema'
import { createTestApp, type TestApp } from '../helpers/app'
import { makeUser, type TestUser } from '../helpers/identity'
import { as } from '../admin/helpers'
import { CONV, conversationWorld, insertConversation, insertMessages, share } from './helpers'

let gw: TestApp
let world: Awaited<ReturnType<typeof conversationWorld>>

beforeAll(async () => {
  gw = await createTestApp()
  world = await conversationWorld(gw)
}, 60_000)
afterAll(() => gw.close())

/** the conversation row and its messages, to prove a refused request changed nothing */
async function snapshot(id: string) {
  const db = gw.deps.db.db
  return { conversation: await db.select().from(conversations).where(eq(conversations.id, id)), messages: await db.select().from(messages).where(eq(messages.conversationId, id)) }
}

async function expectHidden(who: TestUser | Record<string, string>, id: string) {
  const before = await snapshot(id)
  const client = as(gw, who)
  const replies = {
    get: await client.get(`${CONV}/${id}`),
    messages: await client.get(`${CONV}/${id}/messages`),
    patch: await client.patch(`${CONV}/${id}`, { title: 'taken over', status: 'archived' }),
    del: await client.del(`${CONV}/${id}`),
  }
  for (const [name, reply] of Object.entries(replies)) {
    expect({ name, status: reply.status, code: reply.body.code }).toEqual({ name, status: 404, code: 'CONVERSATION_NOT_FOUND' })
    expect(JSON.stringify(reply.body)).not.toContain(id)
  }
  const listed = (await client.get(CONV)).body.items.map((c: { id: string }) => c.id)
  expect(listed).not.toContain(id)
  expect(await snapshot(id)).toEqual(before)
}

describe('shares', () => {
  test('a read share may read and list it, not change or delete it', async () => {
    const conv = await insertConversation(gw, world.alice, { title: 'shared for reading' })
    await insertMessages(gw, conv, 2)
    await share(gw, conv, world.bob.id, 'read')
    const bob = as(gw, world.bob)
    expect((await bob.get(`${CONV}/${conv.id}`)).body.title).toBe('shared for reading')
    expect((await bob.get(`${CONV}/${conv.id}/messages`)).body.items).toHaveLength(2)
    expect((await bob.get(`${CONV}?scope=shared`)).body.items.map((c: { id: string }) => c.id)).toContain(conv.id)

    const before = await snapshot(conv.id)
    const patch = await bob.patch(`${CONV}/${conv.id}`, { title: 'mine now' })
    expect(patch.status).toBe(403)
    expect(patch.body.code).toBe('PERMISSION_DENIED')
    const del = await bob.del(`${CONV}/${conv.id}`)
    expect(del.status).toBe(403)
    expect(del.body.code).toBe('PERMISSION_DENIED')
    expect(await snapshot(conv.id)).toEqual(before)
  })

  test('a write share may change it, not delete it', async () => {
    const conv = await insertConversation(gw, world.alice)
    await share(gw, conv, world.bob.id, 'write')
    const bob = as(gw, world.bob)
    const patch = await bob.patch(`${CONV}/${conv.id}`, { title: 'edited by bob', status: 'archived' })
    expect(patch.status).toBe(200)
    expect(patch.body).toMatchObject({ title: 'edited by bob', status: 'archived' })
    const del = await bob.del(`${CONV}/${conv.id}`)
    expect(del.status).toBe(403)
    expect((await snapshot(conv.id)).conversation).toHaveLength(1)
  })

  test('deleting a shared conversation removes it for the people it was shared with', async () => {
    const conv = await insertConversation(gw, world.alice)
    await share(gw, conv, world.bob.id, 'write')
    expect((await as(gw, world.alice).del(`${CONV}/${conv.id}`)).status).toBe(204)
    expect((await as(gw, world.bob).get(`${CONV}/${conv.id}`)).status).toBe(404)
    expect((await as(gw, world.bob).get(`${CONV}?scope=shared`)).body.items.map((c: { id: string }) => c.id)).not.toContain(conv.id)
  })
})

describe('no access → 404 CONVERSATION_NOT_FOUND, nothing changes', () => {
  test('another member of the same tenant', async () => {
    const conv = await insertConversation(gw, world.alice)
    await insertMessages(gw, conv, 3)
    await expectHidden(world.bob, conv.id)
  })

  test('a share of another user does not help', async () => {
    const carol = await makeUser(gw, { tenantId: world.tenantId })
    const conv = await insertConversation(gw, world.alice)
    await share(gw, conv, carol.id, 'write')
    await expectHidden(world.bob, conv.id)
  })

  test('another tenant: its plain users, its admins, and a share row pointing across tenants', async () => {
    const conv = await insertConversation(gw, world.alice)
    await insertMessages(gw, conv, 1)
    const other = await conversationWorld(gw)
    // a share recorded under the other tenant must not open this tenant's conversation
    await share(gw, { id: conv.id, tenantId: other.tenantId }, other.bob.id, 'write')
    await expectHidden(other.alice, conv.id)
    await expectHidden(other.bob, conv.id)
    await expectHidden(other.admin, conv.id)
  })
})

describe('tenant-wide grants', () => {
  test("an admin reads, changes and deletes any conversation of their tenant", async () => {
    const conv = await insertConversation(gw, world.alice)
    const admin = as(gw, world.admin)
    expect((await admin.get(`${CONV}/${conv.id}`)).status).toBe(200)
    expect((await admin.patch(`${CONV}/${conv.id}`, { status: 'archived' })).body.status).toBe('archived')
    expect((await admin.del(`${CONV}/${conv.id}`)).status).toBe(204)
  })

  test('a super_admin acting in another tenant may read it but not start conversations there', async () => {
    const conv = await insertConversation(gw, world.alice)
    const other = await conversationWorld(gw)
    const root = await makeUser(gw, { tenantId: other.tenantId, roles: ['super_admin'] })
    const acting = { ...root.auth, 'x-tenant-id': world.tenantId }
    expect((await as(gw, acting).get(`${CONV}/${conv.id}`)).status).toBe(200)
    const created = await as(gw, acting).post(CONV, { title: 'x' })
    expect(created.status).toBe(403)
    expect(created.body.code).toBe('TENANT_MISMATCH')
  })
})
