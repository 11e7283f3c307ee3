/**
 * First-start data: tenant `default` and the bootstrap super_admin. Runs on every start, so it only ever
 * inserts what is missing, and relies on unique constraints (`on conflict do nothing`) rather than on the
 * read-before-write when two instances start at once.
 */
import { and, eq, sql } from 'drizzle-orm'
import { newId } from '../lib/ids'
import type { Database } from './client'
import { tenants, users } from './schema'

export const DEFAULT_TENANT_ID = 'default'

export interface BootstrapOptions {
  adminEmail: string
  /** when absent a random password is generated and returned once */
  adminPassword?: string
  /** settings.allow_signup of tenant `default` when this run creates it */
  allowSignupDefault: boolean
}

export interface BootstrapResult {
  createdAdmin: boolean
  /** only on the run that created the admin with a generated password: print it once, never store it */
  generatedPassword?: string
}

export async function bootstrap(db: Database, opts: BootstrapOptions): Promise<BootstrapResult> {
  await db
    .insert(tenants)
    .values({ id: DEFAULT_TENANT_ID, name: 'Default', settings: { allow_signup: opts.allowSignupDefault } })
    .onConflictDoNothing()

  const email = opts.adminEmail.trim().toLowerCase()
  const [existing] = await db
    .select({ id: users.id })
    .from(users)
    .where(and(eq(users.tenantId, DEFAULT_TENANT_ID), eq(sql`lower(${users.email})`, email)))
    .limit(1)
  if (existing) return { createdAdmin: false }

  const generatedPassword = opts.adminPassword === undefined ? generatePassword() : undefined
  const password = opts.adminPassword ?? (generatedPassword as string)
  const inserted = await db
    .insert(users)
    .values({
      id: newId('usr'),
      tenantId: DEFAULT_TENANT_ID,
      email,
      username: 'admin',
      passwordHash: await Bun.password.hash(password, { algorithm: 'argon2id' }),
      roles: ['super_admin'],
    })
    // another instance may have inserted the same email since the select: then it created the admin, not us
    .onConflictDoNothing()
    .returning({ id: users.id })

  if (inserted.length === 0) return { createdAdmin: false }
  return generatedPassword === undefined ? { createdAdmin: true } : { createdAdmin: true, generatedPassword }
}

/** 24 URL-safe characters from 144 random bits. */
function generatePassword(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString('base64url')
}
