/** Creating an account, the one way both self sign-up and administrators do it. */
import type { Database } from '../../db'
import { pgErrorCode } from '../../db'
import { type User, users } from '../../db/schema'
import { AppError } from '../../errors'
import { newId } from '../../lib/ids'

export interface NewAccount {
  tenantId: string
  email: string
  password: string
  username?: string
  roles: string[]
}

/** Email stored trimmed and lowercased, password as argon2id, username defaulting to the email's local part. */
export async function insertAccount(db: Database, input: NewAccount): Promise<User> {
  const email = input.email.trim().toLowerCase()
  try {
    const [row] = await db
      .insert(users)
      .values({
        id: newId('usr'),
        tenantId: input.tenantId,
        email,
        username: input.username?.trim() || email.split('@')[0]!,
        passwordHash: await Bun.password.hash(input.password, { algorithm: 'argon2id' }),
        roles: input.roles,
      })
      .returning()
    return row!
  } catch (err) {
    if (pgErrorCode(err) === '23505') throw new AppError(409, 'EMAIL_TAKEN', 'An account with this email already exists in this tenant')
    throw err
  }
}
