/**
 * Applies ./drizzle at start. Drizzle's migrator takes no lock, so two instances starting together against
 * one Postgres would both try to create its bookkeeping schema and apply the same migration; a session-level
 * advisory lock, held on a reserved connection for the duration, makes them take turns. (PGlite is one
 * process's private database, so there is nobody to race with.)
 */
import { join } from 'node:path'
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator'
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator'
import { driverOf, type DatabaseHandle } from './client'

/** Resolved from this file, not the cwd, so it works from any directory and inside the container. */
export const migrationsFolder = join(import.meta.dir, '../../drizzle')

/** Arbitrary constant shared by every gateway instance: "voicehelper-gateway migrations". */
export const MIGRATION_LOCK_KEY = 7_426_130_955_011_001n

export async function migrate(handle: DatabaseHandle): Promise<void> {
  const driver = driverOf(handle)
  if (driver.kind === 'pglite') {
    await migratePglite(driver.db, { migrationsFolder })
    return
  }
  // The lock only has to be held while the migrator runs on the pool; holding it on its own reserved
  // connection means a crash releases it with that connection.
  const lockConnection = await driver.client.reserve()
  try {
    await lockConnection`select pg_advisory_lock(${MIGRATION_LOCK_KEY.toString()}::bigint)`
    try {
      await migratePostgres(driver.db, { migrationsFolder })
    } finally {
      await lockConnection`select pg_advisory_unlock(${MIGRATION_LOCK_KEY.toString()}::bigint)`
    }
  } finally {
    lockConnection.release()
  }
}
