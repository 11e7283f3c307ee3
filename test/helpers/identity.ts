/**
 * Tenants, users and their tokens for a test, made through the real stack: rows in the database and a
 * real password login over HTTP. Each test makes its own tenant instead of cleaning up.
 */
import { tenants, users } from '../../src/db/schema'
import { newId } from '../../src/lib/ids'
import { jsonRequest, type TestApp } from './app'

export const TEST_PASSWORD = 'test-password-123'
const passwordHash = await Bun.password.hash(TEST_PASSWORD, { algorithm: 'argon2id' })

export interface TestUser {
  id: string
  email: string
  tenantId: string
  accessToken: string
  refreshToken: string
  /** Authorization header for this user */
  auth: { authorization: string }
}

export async function makeTenant(
  gw: TestApp,
  opts: { id?: string; status?: 'active' | 'suspended'; quotas?: Record<string, number>; allowSignup?: boolean } = {},
): Promise<string> {
  const id = opts.id ?? `t${crypto.randomUUID().slice(0, 12)}`
  await gw.deps.db.db.insert(tenants).values({
    id,
    name: `Tenant ${id}`,
    status: opts.status ?? 'active',
    quotas: opts.quotas ?? {},
    settings: { allow_signup: opts.allowSignup ?? false },
  })
  return id
}

export async function makeUser(
  gw: TestApp,
  opts: { tenantId: string; roles?: string[]; permissions?: string[]; email?: string },
): Promise<TestUser> {
  const email = opts.email ?? `u${crypto.randomUUID().slice(0, 12)}@example.com`
  const [row] = await gw.deps.db.db
    .insert(users)
    .values({
      id: newId('usr'),
      tenantId: opts.tenantId,
      email,
      username: email.split('@')[0]!,
      passwordHash,
      roles: opts.roles ?? ['user'],
      permissions: opts.permissions ?? [],
    })
    .returning()
  const res = await gw.request(
    '/api/v2/auth/login',
    jsonRequest('POST', { email, password: TEST_PASSWORD, tenant_id: opts.tenantId }),
  )
  if (res.status !== 200) throw new Error(`login failed for a test user: ${res.status} ${await res.text()}`)
  const body = (await res.json()) as { access_token: string; refresh_token: string }
  return {
    id: row!.id,
    email,
    tenantId: opts.tenantId,
    accessToken: body.access_token,
    refreshToken: body.refresh_token,
    auth: { authorization: `Bearer ${body.access_token}` },
  }
}

/** a tenant with an admin and a plain user */
export async function makeTenantWithUsers(gw: TestApp) {
  const tenantId = await makeTenant(gw)
  const [admin, user] = await Promise.all([
    makeUser(gw, { tenantId, roles: ['admin'] }),
    makeUser(gw, { tenantId, roles: ['user'] }),
  ])
  return { tenantId, admin, user }
}

/**
 * Rate limits count in fixed windows aligned to the clock: a test that needs `neededMs` inside one window
 * waits for the next window when the current one is about to end, so it cannot straddle a boundary.
 */
export async function awayFromWindowEdge(windowMs: number, neededMs: number): Promise<void> {
  const left = windowMs - (Date.now() % windowMs)
  if (left < neededMs) await Bun.sleep(left + 20)
}
