/**
 * Every list's cursor (contract §0): a cursor the list did not hand out is a 400 naming `cursor`, never a 500
 * and never a silently wrong page; the cursors it does hand out page through it.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createTestApp, type TestApp } from '../helpers/app'
import { as, adminWorld } from '../admin/helpers'

let gw: TestApp
let world: Awaited<ReturnType<typeof adminWorld>>
let conversationId: string

beforeAll(async () => {
  gw = await createTestApp()
  world = await adminWorld(gw)
  const created = await as(gw, world.root).post('/api/v2/conversations', { title: 'paged' })
  conversationId = created.body.id
  for (const name of ['k1', 'k2']) await as(gw, world.root).post('/api/v2/api-keys', { name, permissions: ['chat:write'] })
}, 30_000)
afterAll(() => gw.close())

const lists = () => [
  '/api/v2/api-keys',
  `/api/v2/conversations/${conversationId}/messages`,
  '/api/v2/voice/sessions',
  '/api/v2/admin/users',
  '/api/v2/admin/tenants',
  '/api/v2/admin/roles',
  '/api/v2/admin/audit-logs',
  '/api/v2/conversations',
  '/api/v2/admin/sessions',
]

test('a cursor no list hands out is 400 VALIDATION_FAILED on cursor, on every list', async () => {
  const bad = ['not a cursor', '%00', 'ZZZZ', 'usr_' + 'f'.repeat(32) + "' OR 1=1", encodeURIComponent('☃')]
  for (const path of lists()) {
    for (const cursor of bad) {
      const r = await as(gw, world.root).get(`${path}?cursor=${cursor}`)
      expect({ path, cursor, status: r.status, code: r.body.code }).toEqual({ path, cursor, status: 400, code: 'VALIDATION_FAILED' })
      expect(r.body.details.map((d: { field: string }) => d.field)).toContain('cursor')
    }
  }
})

test('the cursors a list hands out page through it', async () => {
  for (const path of ['/api/v2/api-keys', '/api/v2/admin/users', '/api/v2/admin/tenants', '/api/v2/admin/roles', '/api/v2/admin/audit-logs']) {
    const first = await as(gw, world.root).get(`${path}?limit=1`)
    expect({ path, status: first.status }).toEqual({ path, status: 200 })
    expect(first.body.next_cursor).toEqual(expect.any(String))
    const next = await as(gw, world.root).get(`${path}?limit=1&cursor=${encodeURIComponent(first.body.next_cursor)}`)
    expect({ path, status: next.status }).toEqual({ path, status: 200 })
    expect(next.body.items).toHaveLength(1)
    expect(next.body.items[0]).not.toEqual(first.body.items[0])
  }
})
