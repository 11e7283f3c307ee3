/**
 * Every route of the table while Postgres is down (a private server this file stops and starts again): each
 * answer is in the contract's shape and either one the route gives without the database or a retryable 503
 * `SERVICE_UNAVAILABLE` with `Retry-After` — never a 500, and within a second, not after a reconnect backoff —
 * and the gateway serves again once Postgres is back.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, jsonRequest, type TestApp } from '../helpers/app'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'
import { type PrivateServer, privatePostgresAvailable, startPrivatePostgres } from '../helpers/private-servers'
import { ci } from '../helpers/services'

if (ci && !privatePostgresAvailable) throw new Error('outage.test needs the Postgres 15 binaries under CI=true')

describe.skipIf(!privatePostgresAvailable)('every route while Postgres is down', () => {
  let pg: PrivateServer
  let gw: TestApp
  let root: TestUser

  beforeAll(async () => {
    pg = await startPrivatePostgres()
    gw = await createTestApp({ DATABASE_URL: pg.url })
    const tenantId = await makeTenant(gw, { quotas: { requests_per_minute_per_user: 0, requests_per_minute: 0 } })
    root = await makeUser(gw, { tenantId, roles: ['super_admin'] })
  }, 60_000)
  afterAll(async () => {
    await gw?.close()
    await pg?.destroy()
  })

  test('a 503 SERVICE_UNAVAILABLE with Retry-After where the database is needed, at once, never a 500; back to 200 when it returns', async () => {
    expect((await gw.request('/api/v2/auth/me', { headers: root.auth })).status).toBe(200)
    const routes = gw.app.routes.filter((r) => r.path.startsWith('/api/v2/') && r.method !== 'WS' && r.path !== '/api/v2/auth/logout')
    await pg.stop()
    const answers = new Map<string, number>()
    try {
      for (const r of routes) {
        const url = r.path.replace(/:[A-Za-z_]+\??/g, 'x_0123456789')
        const init = r.method === 'GET' || r.method === 'DELETE' ? { method: r.method, headers: root.auth } : jsonRequest(r.method, {}, root.auth)
        const t0 = performance.now()
        const res = await gw.request(url, init)
        const ms = performance.now() - t0
        const body = (await res.json().catch(() => ({}))) as Record<string, unknown>
        const what = `${r.method} ${r.path}`
        answers.set(what, res.status)
        expect({ what, status: res.status === 500 ? 500 : 'not 500' }).toEqual({ what, status: 'not 500' })
        // no request waits on a reconnect backoff (postgres.js's default grows to 20 s during an outage)
        expect({ what, fast: ms < 1500 }).toEqual({ what, fast: true })
        if (res.status >= 400) expect({ what, code: typeof body.code, request_id: body.request_id }).toEqual({ what, code: 'string', request_id: res.headers.get('x-request-id') })
        if (res.status === 503 && body.code === 'SERVICE_UNAVAILABLE') expect({ what, retry: res.headers.get('retry-after') }).toEqual({ what, retry: '1' })
      }
    } finally {
      await pg.start()
    }
    // the sweep did reach the database where a route needs it
    for (const what of ['GET /api/v2/conversations', 'GET /api/v2/conversations/:id/messages', 'GET /api/v2/api-keys', 'GET /api/v2/admin/users', 'GET /api/v2/voice/sessions']) {
      expect({ what, status: answers.get(what) }).toEqual({ what, status: 503 })
    }
    expect((await gw.request('/api/v2/auth/me', { headers: root.auth })).status).toBe(200)
  }, 60_000)
})
