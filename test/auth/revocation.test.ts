/**
 * Revocation across instances, against the real servers: two gateway instances share one Postgres and one
 * Redis. What one instance revokes or disables, the other refuses within a second; a Redis restart does not
 * un-revoke anything; with Redis away, authentication fails closed — fast — and recovers by itself.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { tenants, users } from '../../src/db/schema'
import { createTestApp, type TestApp } from '../helpers/app'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'
import { RedisServer } from '../helpers/redis-server'
import { ci, createThrowawayDatabase, hasPostgres } from '../helpers/services'

const hasRedisBinary = Bun.which('redis-server') !== null
if (ci && !hasRedisBinary) throw new Error('revocation.test needs redis-server under CI=true')

describe.skipIf(!hasPostgres || !hasRedisBinary)('revocation across two instances (Postgres + Redis)', () => {
  let redis: RedisServer
  let database: { url: string; drop: () => Promise<void> }
  let a: TestApp
  let b: TestApp
  let tenantId: string

  beforeAll(async () => {
    redis = await RedisServer.onFreePort()
    await redis.start()
    database = await createThrowawayDatabase()
    const env = { DATABASE_URL: database.url, REDIS_URL: redis.url }
    a = await createTestApp(env)
    b = await createTestApp(env)
    tenantId = await makeTenant(a)
  }, 60_000)

  afterAll(async () => {
    await a?.close()
    await b?.close()
    await redis?.kill()
    await database?.drop()
  })

  const me = (gw: TestApp, user: TestUser) => gw.request('/api/v2/auth/me', { headers: user.auth })

  /** polls until the instance refuses with `code`; returns how long that took */
  async function refusedWithin(gw: TestApp, user: TestUser, code: string, limitMs: number): Promise<number> {
    const started = performance.now()
    for (;;) {
      const res = await me(gw, user)
      if (res.status >= 400 && ((await res.json()) as { code: string }).code === code) return performance.now() - started
      if (performance.now() - started > limitMs) throw new Error(`still not ${code} after ${limitMs} ms (status ${res.status})`)
      await Bun.sleep(20)
    }
  }

  test('logout on A: B refuses the token at once', async () => {
    const user = await makeUser(a, { tenantId })
    expect((await me(b, user)).status).toBe(200)
    expect((await a.request('/api/v2/auth/logout', { method: 'POST', headers: user.auth })).status).toBe(200)
    const res = await me(b, user)
    expect(res.status).toBe(401)
    expect(((await res.json()) as { code: string }).code).toBe('TOKEN_REVOKED')
  })

  test('a user disabled through A is refused by B within 1 s, although B had them cached', async () => {
    const user = await makeUser(a, { tenantId })
    expect((await me(b, user)).status).toBe(200)
    await a.deps.db.db.update(users).set({ status: 'disabled' }).where(eq(users.id, user.id))
    await a.deps.identity.bus.publish({ t: 'user', tenant: tenantId, id: user.id, ended: true })
    expect(await refusedWithin(b, user, 'USER_DISABLED', 1000)).toBeLessThan(1000)
  })

  test('a tenant suspended through A is refused by B within 1 s', async () => {
    const other = await makeTenant(a)
    const user = await makeUser(a, { tenantId: other })
    expect((await me(b, user)).status).toBe(200)
    await a.deps.db.db.update(tenants).set({ status: 'suspended' }).where(eq(tenants.id, other))
    await a.deps.identity.bus.publish({ t: 'tenant', id: other, ended: true })
    expect(await refusedWithin(b, user, 'TENANT_SUSPENDED', 1000)).toBeLessThan(1000)
  })

  test("a logout on A ends the user's live connections held by B within 2 s", async () => {
    const user = await makeUser(a, { tenantId })
    const meRes = (await (await me(b, user)).json()) as { user: { id: string } }
    const claims = JSON.parse(Buffer.from(user.accessToken.split('.')[1]!, 'base64url').toString())
    const ended = Promise.withResolvers<number>()
    const started = performance.now()
    b.deps.identity.live.register({
      id: 'stream-1',
      kind: 'chat',
      tenantId,
      userId: meRes.user.id,
      sessionId: claims.session_id,
      jti: claims.jti,
      end: () => ended.resolve(performance.now() - started),
    })
    await a.request('/api/v2/auth/logout', { method: 'POST', headers: user.auth })
    const tookMs = await Promise.race([ended.promise, Bun.sleep(2000).then(() => Number.POSITIVE_INFINITY)])
    expect(tookMs).toBeLessThan(2000)
    expect(b.deps.identity.live.list().map((c) => c.id)).not.toContain('stream-1')
  })

  test('revocations survive a Redis restart (reloaded from Postgres)', async () => {
    const revoked = await makeUser(a, { tenantId })
    const fine = await makeUser(a, { tenantId })
    await a.request('/api/v2/auth/logout', { method: 'POST', headers: revoked.auth })
    await redis.kill()
    await redis.start() // empty: --save "" --appendonly no
    const deadline = Date.now() + 10_000
    let status = 0
    while (Date.now() < deadline) {
      status = (await me(b, fine)).status
      if (status === 200) break
      await Bun.sleep(100)
    }
    expect(status).toBe(200)
    const res = await me(b, revoked)
    expect(res.status).toBe(401)
    expect(((await res.json()) as { code: string }).code).toBe('TOKEN_REVOKED')
    expect(((await (await me(a, revoked)).json()) as { code: string }).code).toBe('TOKEN_REVOKED')
  }, 30_000)

  test('Redis stopped: authenticated requests fail closed with 503 AUTH_SERVICE_ERROR within 1 s; back → 200', async () => {
    const user = await makeUser(a, { tenantId })
    expect((await me(a, user)).status).toBe(200)
    await redis.kill()
    for (let i = 0; i < 3; i++) {
      const started = performance.now()
      const res = await me(a, user)
      expect(performance.now() - started).toBeLessThan(1000)
      expect(res.status).toBe(503)
      expect(((await res.json()) as { code: string }).code).toBe('AUTH_SERVICE_ERROR')
    }
    await redis.start()
    const deadline = Date.now() + 10_000
    let status = 0
    while (Date.now() < deadline && status !== 200) {
      status = (await me(a, user)).status
      if (status !== 200) await Bun.sleep(100)
    }
    expect(status).toBe(200)
  }, 30_000)
})
