/**
 * Applies ./drizzle at start. Drizzle's migrator takes no lock, so two instances starting together against
 * one Postgres would both try to create its bookkeeping schema and apply the same migration; a session-level
 * advisory lock, held on a reserved connection for the duration, makes them take turns. (PGlite is one
 * process's private database, so there is nobody to race with.) On Postgres the migrations and the lock have
 * their own two connections, without the pool's statement timeout: an index built over a large table, or the
 * wait for another instance's migrations, may take longer than any request should.
 */
import { join } from 'node:path'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator'
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator'
import { APPLICATION_NAME, driverOf, postgresClient, type DatabaseHandle } from './client'

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
  const client = postgresClient(driver.url, { max: 2, name: `${APPLICATION_NAME} migrations`, statementTimeoutMs: 0 })
  try {
    // The lock only has to be held while the migrator runs on the other connection; holding it on its own
    // reserved connection means a crash releases it with that connection.
    const lockConnection = await client.reserve()
    try {
      await lockConnection`select pg_advisory_lock(${MIGRATION_LOCK_KEY.toString()}::bigint)`
      try {
        await migratePostgres(drizzlePostgres({ client }), { migrationsFolder })
      } finally {
        await lockConnection`select pg_advisory_unlock(${MIGRATION_LOCK_KEY.toString()}::bigint)`
      }
    } finally {
      lockConnection.release()
    }
  } finally {
    await client.end({ timeout: 2 })
  }
}
