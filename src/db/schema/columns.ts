/**
 * Column helpers shared by every aggregate, so timestamps and status checks look the same everywhere.
 */
import { sql, type SQL } from 'drizzle-orm'
import { check, timestamp, type PgColumn } from 'drizzle-orm/pg-core'

/** timestamptz read and written as a JS Date. */
export const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' })

/** created_at / updated_at pair; updated_at is refreshed by Drizzle on every update issued through it. */
export const timestamps = () => ({
  createdAt: timestamptz('created_at').notNull().defaultNow(),
  updatedAt: timestamptz('updated_at')
    .notNull()
    .defaultNow()
    .$onUpdate(() => new Date()),
})

/**
 * Status columns are plain text plus a CHECK constraint rather than a pgEnum: adding a value to an enum type
 * cannot be used in the same transaction that adds it, and Drizzle runs all pending migrations in one
 * transaction; a CHECK can be dropped and re-added in one. The TypeScript union comes from `text({ enum })`.
 */
export function oneOf(name: string, column: PgColumn, values: readonly string[]) {
  const list: SQL = sql.raw(values.map((v) => `'${v.replaceAll("'", "''")}'`).join(', '))
  return check(name, sql`${column} in (${list})`)
}
