/**
 * Hostile input on every route of the table, as a caller who holds every permission (so the request gets past
 * auth to the route's own handling): odd path ids, bodies of the wrong shape, broken and deeply nested JSON,
 * huge fields, odd query values. Every answer is a 4xx in the contract's shape, never a 5xx, and nothing is
 * logged as a failure. A new route is covered the moment it is mounted.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, jsonRequest, type TestApp } from '../helpers/app'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'
import { ci, createThrowawayDatabase, hasPostgres, hasRedis, redisUrl } from '../helpers/services'

if (ci && (!hasPostgres || !hasRedis)) throw new Error('hostile.test needs Postgres and Redis under CI=true')

const ODD_IDS = ['%00', 'x'.repeat(300), '..%2F..%2Fetc', '%F0%9F%98%80', "'%3B%20drop%20table%20users", '%ff%fe', 'conv_' + 'f'.repeat(32), '%20']

let deep = 'null'
for (let i = 0; i < 5000; i++) deep = `{"a":${deep}}`
const BODIES = [
  '',
  '{',
  '[]',
  '"text"',
  '{"a":1}',
  deep,
  JSON.stringify({ message: 'x'.repeat(900_000), title: 'x'.repeat(900_000), name: 'x'.repeat(900_000), email: 'x'.repeat(900_000) }),
  JSON.stringify({ message: 1, title: [], name: {}, email: true, permissions: 'all', roles: 'admin', request_id: { $ne: null }, password: 1 }),
  JSON.stringify({ permissions: Array.from({ length: 5000 }, (_, i) => `p${i}`), user_id: '%00', tenant_id: '../x' }),
]
const QUERIES = ['limit=-1', 'limit=1e309', 'limit=abc', 'cursor=', 'status=%00', 'user_id=%00', 'tenant_id=%00', 'kind=%00', 'action=%00', 'scope[]=x', 'limit=1&limit=2']

async function expectClean(gw: TestApp, url: string, init: RequestInit, what: string): Promise<void> {
  const res = await gw.request(url, init)
  const text = await res.text()
  expect({ what, status: res.status >= 500 ? res.status : 'below 500' }).toEqual({ what, status: 'below 500' })
  if (res.status >= 400) {
    let body: Record<string, unknown> = {}
    try {
      body = JSON.parse(text)
    } catch {
      // asserted just below
    }
    expect({ what, code: typeof body.code, request_id: body.request_id }).toEqual({ what, code: 'string', request_id: res.headers.get('x-request-id') })
  }
}

const withIds = (path: string, id: string) => path.replace(/:[A-Za-z_]+\??/g, id)

/** the whole sweep against one gateway; Postgres refuses text (a NUL) that PGlite lets through, so both run */
function sweep(name: string, env: () => Promise<{ env: Record<string, string>; drop?: () => Promise<void> }>) {
  describe(name, () => {
    let gw: TestApp
    let root: TestUser
    let routes: Array<{ method: string; path: string }>
    let drop: (() => Promise<void>) | undefined

    beforeAll(async () => {
      const made = await env()
      drop = made.drop
      gw = await createTestApp(made.env)
      const tenantId = await makeTenant(gw, { quotas: { requests_per_minute_per_user: 0, requests_per_minute: 0 } })
      root = await makeUser(gw, { tenantId, roles: ['super_admin'] })
      // the caller's own session must survive the sweep
      routes = gw.app.routes.filter((r) => r.path.startsWith('/api/v2/') && r.method !== 'WS' && r.path !== '/api/v2/auth/logout')
    }, 30_000)
    afterAll(async () => {
      await gw.close()
      await drop?.()
    })

    test('odd path ids on every route: 4xx in the contract shape, never a 5xx', async () => {
      for (const r of routes.filter((r) => r.path.includes(':'))) {
        for (const id of ODD_IDS) {
          const init = r.method === 'GET' || r.method === 'DELETE' ? { method: r.method, headers: root.auth } : jsonRequest(r.method, {}, root.auth)
          await expectClean(gw, withIds(r.path, id), init, `${r.method} ${r.path} id=${id.slice(0, 20)}`)
        }
      }
    }, 60_000)

    test('bodies of every wrong shape on every route that takes one: never a 5xx', async () => {
      for (const r of routes.filter((r) => r.method === 'POST' || r.method === 'PATCH' || r.method === 'PUT')) {
        for (const [i, body] of BODIES.entries()) {
          await expectClean(gw, withIds(r.path, 'hostile-id'), jsonRequest(r.method, body, root.auth), `${r.method} ${r.path} body #${i}`)
        }
      }
    }, 60_000)

    test('odd query values on every GET: never a 5xx', async () => {
      for (const r of routes.filter((r) => r.method === 'GET')) {
        for (const q of QUERIES) await expectClean(gw, `${withIds(r.path, 'hostile-id')}?${q}`, { headers: root.auth }, `GET ${r.path}?${q}`)
      }
    }, 60_000)

    test('nothing above was logged as a failure', () => {
      const failures = gw.logs.filter((l) => Number(l.level) >= 50)
      expect(failures.map((l) => `${l.msg} ${String((l.err as { message?: string } | undefined)?.message ?? '')}`)).toEqual([])
    })
  })
}

sweep('embedded (PGlite, in-process store)', async () => ({ env: {} }))
describe.skipIf(!hasPostgres || !hasRedis)('on Postgres + Redis', () => {
  sweep('Postgres + Redis', async () => {
    const db = await createThrowawayDatabase()
    return { env: { DATABASE_URL: db.url, REDIS_URL: redisUrl }, drop: db.drop }
  })
})
