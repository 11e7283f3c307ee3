/** A small JSON client for the admin API, and tenants whose admins are not rate limited by long tests. */
import { and, eq } from 'drizzle-orm'
import { auditLogs } from '../../src/db/schema'
import { jsonRequest, type TestApp } from '../helpers/app'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'

export const ADMIN = '/api/v2/admin'

export interface Reply {
  status: number
  /** the parsed JSON body (tests read arbitrary fields of it) */
  body: any
}

/** requests as `who`: a TestUser, or raw headers (to send none, or a crafted X-Tenant-ID) */
export function as(gw: TestApp, who: TestUser | Record<string, string>) {
  const headers = 'auth' in who ? (who as TestUser).auth : (who as Record<string, string>)
  async function send(method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<Reply> {
    const url = path.startsWith('/api/') ? path : `${ADMIN}${path}`
    const init = body === undefined ? { method, headers: { ...headers, ...extra } } : jsonRequest(method, body, { ...headers, ...extra })
    const res = await gw.request(url, init)
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : undefined }
  }
  return {
    send,
    get: (path: string, extra?: Record<string, string>) => send('GET', path, undefined, extra),
    post: (path: string, body: unknown, extra?: Record<string, string>) => send('POST', path, body, extra),
    patch: (path: string, body: unknown, extra?: Record<string, string>) => send('PATCH', path, body, extra),
    put: (path: string, body: unknown, extra?: Record<string, string>) => send('PUT', path, body, extra),
    del: (path: string, extra?: Record<string, string>) => send('DELETE', path, undefined, extra),
  }
}

/** a tenant with no request-rate limits, so a test may page through many results as one admin */
export function unlimitedTenant(gw: TestApp, opts: { id?: string } = {}): Promise<string> {
  return makeTenant(gw, { ...opts, quotas: { requests_per_minute_per_user: 0, requests_per_minute: 0 } })
}

/** a fresh tenant with an admin, a plain user, and a super_admin living in it */
export async function adminWorld(gw: TestApp) {
  const tenantId = await unlimitedTenant(gw)
  const [admin, user, root] = await Promise.all([
    makeUser(gw, { tenantId, roles: ['admin'] }),
    makeUser(gw, { tenantId, roles: ['user'] }),
    makeUser(gw, { tenantId, roles: ['super_admin'] }),
  ])
  return { tenantId, admin, user, root }
}

/** audit rows for one action and target, straight from the table */
export function auditRows(gw: TestApp, action: string, targetId: string) {
  return gw.deps.db.db
    .select()
    .from(auditLogs)
    .where(and(eq(auditLogs.action, action), eq(auditLogs.targetId, targetId)))
}

/** every item of a paginated list, following next_cursor; fails on a repeated cursor */
export async function collectPages(get: (query: string) => Promise<Reply>, limit: number) {
  const items: Array<Record<string, unknown>> = []
  const pages: number[] = []
  const seenCursors = new Set<string>()
  let cursor: string | null = null
  do {
    const query: string = `?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`
    const reply = await get(query)
    if (reply.status !== 200) throw new Error(`page failed: ${reply.status} ${JSON.stringify(reply.body)}`)
    items.push(...reply.body.items)
    pages.push(reply.body.items.length)
    cursor = reply.body.next_cursor
    if (cursor !== null && seenCursors.has(cursor)) throw new Error('cursor repeated')
    if (cursor !== null) seenCursors.add(cursor)
  } while (cursor !== null)
  return { items, pages }
}
