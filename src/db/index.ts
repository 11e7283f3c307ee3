/** Storage: open a database, migrate it, seed it. Tables and row types live in ./schema. */
export { openDatabase, driverOf, rowsOf, rawQuery, pgErrorCode } from './client'
export { DataDirInUse } from './data-dir-lock'
export { isDatabaseUnreachable, storeThroughOutage, tryAgainWhileUnreachable } from './outage'
export type { Database, DatabaseHandle, DatabaseLogger, OpenDatabaseOptions, Schema } from './client'
export { migrate, migrationsFolder, MIGRATION_LOCK_KEY } from './migrate'
export { bootstrap, DEFAULT_TENANT_ID } from './bootstrap'
export type { BootstrapOptions, BootstrapResult } from './bootstrap'
export * from './schema'
