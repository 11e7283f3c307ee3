/** Embedded PGlite on disk (the default without DATABASE_URL): data outlives the process's handle. */
import { afterAll, expect, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { eq } from 'drizzle-orm'
import { bootstrap, migrate, openDatabase, tenants, users } from '../../src/db'

const dataDir = await mkdtemp(join(tmpdir(), 'vh-pglite-'))
afterAll(() => rm(dataDir, { recursive: true, force: true }))

test('data written before close is there after reopening the same DATA_DIR', async () => {
  const first = await openDatabase({ dataDir })
  expect(first.kind).toBe('pglite')
  expect(existsSync(join(dataDir, 'pglite'))).toBe(true)
  await migrate(first)
  const created = await bootstrap(first.db, { adminEmail: 'admin@example.com', allowSignupDefault: true })
  expect(created.createdAdmin).toBe(true)
  await first.db.insert(tenants).values({ id: 'acme', name: 'Acme', quotas: { daily_tokens: 1000 } })
  await first.close()

  const second = await openDatabase({ dataDir })
  try {
    await migrate(second) // already applied: nothing to do
    const [acme] = await second.db.select().from(tenants).where(eq(tenants.id, 'acme'))
    expect(acme).toMatchObject({ name: 'Acme', quotas: { daily_tokens: 1000 } })
    const again = await bootstrap(second.db, { adminEmail: 'admin@example.com', allowSignupDefault: true })
    expect(again).toEqual({ createdAdmin: false })
    const [admin] = await second.db.select().from(users).where(eq(users.email, 'admin@example.com'))
    expect(await Bun.password.verify(created.generatedPassword!, admin!.passwordHash)).toBe(true)
  } finally {
    await second.close()
  }
}, 60_000) // PGlite initialises a new data directory in seconds, and this test opens one twice
