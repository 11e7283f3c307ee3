/** A tenant for conversation tests, and rows written straight to the database (faster than the API, exact timestamps). */
import { conversations, messages, resourceShares } from '../../src/db/schema'
import { newId } from '../../src/lib/ids'
import type { TestApp } from '../helpers/app'
import { makeUser } from '../helpers/identity'
import { unlimitedTenant } from '../admin/helpers'

export const CONV = '/api/v2/conversations'

/** a fresh, unthrottled tenant with two plain users and an admin */
export async function conversationWorld(gw: TestApp) {
  const tenantId = await unlimitedTenant(gw)
  const [alice, bob, admin] = await Promise.all([
    makeUser(gw, { tenantId }),
    makeUser(gw, { tenantId }),
    makeUser(gw, { tenantId, roles: ['admin'] }),
  ])
  return { tenantId, alice, bob, admin }
}

export async function insertConversation(gw: TestApp, owner: { id: string; tenantId: string }, fields: { title?: string; updatedAt?: Date } = {}) {
  const [row] = await gw.deps.db.db
    .insert(conversations)
    .values({ id: newId('conv'), tenantId: owner.tenantId, userId: owner.id, title: fields.title ?? 'inserted', ...(fields.updatedAt && { updatedAt: fields.updatedAt }) })
    .returning()
  return row!
}

export async function insertMessages(gw: TestApp, conversation: { id: string; tenantId: string; userId: string }, count: number) {
  const rows = Array.from({ length: count }, (_, i) => ({
    id: newId('msg'),
    tenantId: conversation.tenantId,
    conversationId: conversation.id,
    userId: conversation.userId,
    role: i % 2 === 0 ? ('user' as const) : ('assistant' as const),
    content: `message ${i}`,
  }))
  await gw.deps.db.db.insert(messages).values(rows)
  return rows
}

export function share(gw: TestApp, conversation: { id: string; tenantId: string }, userId: string, permission: 'read' | 'write') {
  return gw.deps.db.db
    .insert(resourceShares)
    .values({ tenantId: conversation.tenantId, resourceType: 'conversation', resourceId: conversation.id, userId, permission })
}
