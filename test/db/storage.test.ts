/**
 * The same storage behaviour on both drivers: embedded PGlite (in memory, one per file) and a throwaway
 * database on the real Postgres. Each test makes its own tenant, so nothing is cleaned up between tests.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { and, eq, sql } from 'drizzle-orm'
import {
  bootstrap,
  conversations,
  DEFAULT_TENANT_ID,
  messages,
  migrate,
  openDatabase,
  pgErrorCode,
  rowsOf,
  tenants,
  users,
  type DatabaseHandle,
} from '../../src/db'
import { newId } from '../../src/lib/ids'
import { createThrowawayDatabase, hasPostgres } from '../helpers/services'
import journal from '../../drizzle/meta/_journal.json'

/** every migration in drizzle/, each recorded once */
const MIGRATION_COUNT = journal.entries.length

// bunfig's [test] timeout is not applied by this Bun; PGlite start-up and argon2 can pass 5 s on a busy machine
setDefaultTimeout(20_000)

interface Target {
  name: string
  enabled: boolean
  open(): Promise<{ handle: DatabaseHandle; drop(): Promise<void> }>
}

const targets: Target[] = [
  {
    name: 'pglite (memory)',
    enabled: true,
    open: async () => ({
      handle: await openDatabase({ url: 'memory://', dataDir: '/nonexistent' }),
      drop: async () => {},
    }),
  },
  {
    name: 'postgres',
    enabled: hasPostgres,
    async open() {
      const throwaway = await createThrowawayDatabase()
      return {
        handle: await openDatabase({ url: throwaway.url, dataDir: '/nonexistent' }),
        drop: throwaway.drop,
      }
    },
  },
]

/** Runs `work`, expecting it to fail with the given SQLSTATE; returns nothing so a success fails the test. */
async function expectPgError(work: () => PromiseLike<unknown>, code: string): Promise<void> {
  let caught: unknown
  try {
    await work()
  } catch (err) {
    caught = err
  }
  expect(caught).toBeDefined()
  expect(pgErrorCode(caught)).toBe(code)
}

for (const target of targets) {
  describe.skipIf(!target.enabled)(`storage on ${target.name}`, () => {
    let h: DatabaseHandle
    let drop: () => Promise<void>

    beforeAll(async () => {
      ;({ handle: h, drop } = await target.open())
      await migrate(h)
    })
    afterAll(async () => {
      await h?.close()
      await drop?.()
    })

    async function makeTenant() {
      const id = newId('ten')
      await h.db.insert(tenants).values({ id, name: `Tenant ${id}` })
      return id
    }
    async function makeUser(tenantId: string, email = `${newId('u')}@example.com`) {
      const [row] = await h.db
        .insert(users)
        .values({ id: newId('usr'), tenantId, email, username: 'u', passwordHash: 'x' })
        .returning()
      return row!
    }
    async function makeConversation(tenantId: string, userId: string) {
      const [row] = await h.db
        .insert(conversations)
        .values({ id: newId('conv'), tenantId, userId })
        .returning()
      return row!
    }

    test('reports its driver and answers ping', async () => {
      expect(h.kind).toBe(target.name === 'postgres' ? 'postgres' : 'pglite')
      await h.ping()
    })

    test('creates the tables and records every migration once', async () => {
      const tables = rowsOf<{ table_name: string }>(
        await h.db.execute(
          sql`select table_name from information_schema.tables where table_schema = 'public' order by table_name`,
        ),
      ).map((r) => r.table_name)
      expect(tables).toEqual([
        'api_keys',
        'audit_logs',
        'conversations',
        'login_sessions',
        'messages',
        'refresh_tokens',
        'resource_shares',
        'revoked_tokens',
        'roles',
        'tenant_permissions',
        'tenants',
        'users',
        'voice_sessions',
      ])
      const applied = rowsOf(await h.db.execute(sql`select hash from drizzle.__drizzle_migrations`))
      expect(applied).toHaveLength(MIGRATION_COUNT)
    })

    test('fills defaults: status, jsonb objects, role arrays, timestamps', async () => {
      const tenantId = await makeTenant()
      const [tenant] = await h.db.select().from(tenants).where(eq(tenants.id, tenantId))
      expect(tenant).toMatchObject({ status: 'active', quotas: {}, settings: {} })
      expect(tenant!.createdAt).toBeInstanceOf(Date)
      const user = await makeUser(tenantId)
      expect(user).toMatchObject({ roles: ['user'], permissions: [], status: 'active', lastLoginAt: null })
      const conv = await makeConversation(tenantId, user.id)
      expect(conv).toMatchObject({ title: '', status: 'active', messageCount: 0, lastMessageAt: null })
    })

    test('migrating again is a no-op and keeps the data', async () => {
      const tenantId = await makeTenant()
      await migrate(h)
      const applied = rowsOf(await h.db.execute(sql`select hash from drizzle.__drizzle_migrations`))
      expect(applied).toHaveLength(MIGRATION_COUNT)
      expect(await h.db.select().from(tenants).where(eq(tenants.id, tenantId))).toHaveLength(1)
    })

    test('email is unique per tenant regardless of case', async () => {
      const tenantId = await makeTenant()
      await makeUser(tenantId, 'Alice@Example.com')
      await expectPgError(() => makeUser(tenantId, 'alice@EXAMPLE.COM'), '23505')
      const rows = await h.db.select().from(users).where(eq(users.tenantId, tenantId))
      expect(rows.map((r) => r.email)).toEqual(['Alice@Example.com'])
    })

    test('the same email may exist in two tenants', async () => {
      const [a, b] = [await makeTenant(), await makeTenant()]
      await makeUser(a, 'bob@example.com')
      await makeUser(b, 'BOB@example.com')
      const rows = await h.db
        .select()
        .from(users)
        .where(sql`lower(${users.email}) = 'bob@example.com'`)
      expect(rows.map((r) => r.tenantId).sort()).toEqual([a, b].sort())
    })

    test('status columns reject values outside their set', async () => {
      const tenantId = await makeTenant()
      const user = await makeUser(tenantId)
      const conv = await makeConversation(tenantId, user.id)
      await expectPgError(
        () => h.db.execute(sql`update tenants set status = 'deleted' where id = ${tenantId}`),
        '23514',
      )
      await expectPgError(
        () => h.db.execute(sql`update users set status = 'banned' where id = ${user.id}`),
        '23514',
      )
      await expectPgError(
        () => h.db.execute(sql`update conversations set status = 'gone' where id = ${conv.id}`),
        '23514',
      )
      const bad = { id: newId('msg'), tenantId, conversationId: conv.id, userId: user.id, content: 'x' }
      await expectPgError(
        () =>
          h.db.execute(sql`insert into messages (id, tenant_id, conversation_id, user_id, role)
        values (${bad.id}, ${tenantId}, ${conv.id}, ${user.id}, 'system')`),
        '23514',
      )
      await expectPgError(
        () => h.db.insert(messages).values({ ...bad, role: 'user', status: 'pending' as 'failed' }),
        '23514',
      )
      await expectPgError(
        () => h.db.insert(messages).values({ ...bad, role: 'user', modality: 'video' as 'voice' }),
        '23514',
      )
      const [t] = await h.db.select().from(tenants).where(eq(tenants.id, tenantId))
      expect(t!.status).toBe('active')
    })

    test('rows cannot point at another tenant', async () => {
      const [a, b] = [await makeTenant(), await makeTenant()]
      const userA = await makeUser(a)
      const userB = await makeUser(b)
      await expectPgError(() => makeConversation(a, userB.id), '23503')
      await expectPgError(
        () =>
          h.db
            .insert(users)
            .values({
              id: newId('usr'),
              tenantId: newId('ten'),
              email: 'x@y.z',
              username: 'x',
              passwordHash: 'x',
            }),
        '23503',
      )
      const convA = await makeConversation(a, userA.id)
      await expectPgError(
        () =>
          h.db
            .insert(messages)
            .values({
              id: newId('msg'),
              tenantId: b,
              conversationId: convA.id,
              userId: userB.id,
              role: 'user',
            }),
        '23503',
      )
    })

    test('deleting a conversation deletes its messages and only its messages', async () => {
      const tenantId = await makeTenant()
      const user = await makeUser(tenantId)
      const [gone, kept] = [
        await makeConversation(tenantId, user.id),
        await makeConversation(tenantId, user.id),
      ]
      const msg = (conversationId: string, role: 'user' | 'assistant') => ({
        id: newId('msg'),
        tenantId,
        conversationId,
        userId: user.id,
        role,
        content: `${role} says hi`,
        references: [{ doc: 'd1' }],
        usage: { total_tokens: 3 },
        ttftMs: 12,
        durationMs: 40,
      })
      await h.db
        .insert(messages)
        .values([msg(gone.id, 'user'), msg(gone.id, 'assistant'), msg(kept.id, 'user')])
      await h.db
        .delete(conversations)
        .where(and(eq(conversations.tenantId, tenantId), eq(conversations.id, gone.id)))
      const left = await h.db.select().from(messages).where(eq(messages.tenantId, tenantId))
      expect(left).toHaveLength(1)
      expect(left[0]).toMatchObject({
        conversationId: kept.id,
        references: [{ doc: 'd1' }],
        usage: { total_tokens: 3 },
      })
    })

    test('messages page by id in creation order', async () => {
      const tenantId = await makeTenant()
      const user = await makeUser(tenantId)
      const conv = await makeConversation(tenantId, user.id)
      const ids: string[] = []
      for (let i = 0; i < 5; i++) {
        const id = newId('msg')
        ids.push(id)
        await h.db
          .insert(messages)
          .values({ id, tenantId, conversationId: conv.id, userId: user.id, role: 'user', content: `${i}` })
      }
      const page = await h.db
        .select({ content: messages.content })
        .from(messages)
        .where(and(eq(messages.conversationId, conv.id), sql`${messages.id} > ${ids[1]}`))
        .orderBy(messages.id)
        .limit(2)
      expect(page.map((m) => m.content)).toEqual(['2', '3'])
    })

    test('bootstrap creates tenant default and one admin, once, with a printable password', async () => {
      const adminEmail = `${newId('root')}@Example.com`
      const first = await bootstrap(h.db, { adminEmail, allowSignupDefault: true })
      expect(first.createdAdmin).toBe(true)
      expect(first.generatedPassword).toMatch(/^[A-Za-z0-9_-]{20,}$/)

      const [tenant] = await h.db.select().from(tenants).where(eq(tenants.id, DEFAULT_TENANT_ID))
      expect(tenant).toMatchObject({ name: 'Default', status: 'active', settings: { allow_signup: true } })
      const admins = await h.db
        .select()
        .from(users)
        .where(and(eq(users.tenantId, DEFAULT_TENANT_ID), sql`lower(${users.email}) = lower(${adminEmail})`))
      expect(admins).toHaveLength(1)
      expect(admins[0]!.roles).toEqual(['super_admin'])
      expect(admins[0]!.passwordHash).toStartWith('$argon2id$')
      expect(await Bun.password.verify(first.generatedPassword!, admins[0]!.passwordHash)).toBe(true)

      // again, with the address in another case and another sign-up default: nothing changes
      const second = await bootstrap(h.db, {
        adminEmail: adminEmail.toUpperCase(),
        allowSignupDefault: false,
      })
      expect(second).toEqual({ createdAdmin: false })
      const again = await h.db
        .select()
        .from(users)
        .where(sql`lower(${users.email}) = lower(${adminEmail})`)
      expect(again).toHaveLength(1)
      const [tenantAfter] = await h.db.select().from(tenants).where(eq(tenants.id, DEFAULT_TENANT_ID))
      expect(tenantAfter!.settings).toEqual({ allow_signup: true })
    })

    test('bootstrap with a given password stores it hashed and returns no password', async () => {
      const adminEmail = `${newId('root')}@example.com`
      const result = await bootstrap(h.db, {
        adminEmail,
        adminPassword: 'correct horse battery',
        allowSignupDefault: false,
      })
      expect(result).toEqual({ createdAdmin: true })
      const [admin] = await h.db.select().from(users).where(eq(users.email, adminEmail))
      expect(admin!.passwordHash).not.toContain('correct horse')
      expect(await Bun.password.verify('correct horse battery', admin!.passwordHash)).toBe(true)
      expect(await Bun.password.verify('wrong horse battery', admin!.passwordHash)).toBe(false)
    })
  })
}
