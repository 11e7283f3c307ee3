/**
 * One database handle for two drivers: postgres.js when DATABASE_URL names a Postgres server, embedded PGlite
 * otherwise. Both are wrapped by Drizzle's pg-core, so the same schema, migrations and query code run on each.
 *
 * Raw `db.execute(sql...)` results differ by driver (postgres.js: an array of rows; PGlite: `{ rows }`), so
 * query code should use the query builder, or read raw results through `rowsOf`.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { PGlite } from '@electric-sql/pglite'
import { sql } from 'drizzle-orm'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePglite, type PgliteDatabase } from 'drizzle-orm/pglite'
import { drizzle as drizzlePostgres, type PostgresJsDatabase } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import { lockDataDir } from './data-dir-lock'
import { PgliteThread } from './pglite-thread'
import * as schema from './schema'

export type Schema = typeof schema

/** the gateway's Postgres sessions, as pg_stat_activity names them */
export const APPLICATION_NAME = 'voicehelper-gateway'

/** The type every service receives: either driver's database, with the gateway's tables. */
export type Database = PgDatabase<PgQueryResultHKT, Schema>

export interface DatabaseHandle {
  readonly db: Database
  readonly kind: 'postgres' | 'pglite'
  /** Resolves when `select 1` answers; rejects within `timeoutMs` (default 1000) otherwise. Feeds /ready. */
  ping(timeoutMs?: number): Promise<void>
  /** Closes the pool or the embedded database; safe to call more than once. */
  close(): Promise<void>
}

export interface DatabaseLogger {
  info(o: object, m?: string): void
  warn(o: object, m?: string): void
}

export interface OpenDatabaseOptions {
  /** `postgres://` / `postgresql://` → Postgres; `memory://` → in-memory PGlite (tests); unset → PGlite on disk */
  url?: string
  /** PGlite keeps its files in `${dataDir}/pglite` when no url is given */
  dataDir: string
  logger?: DatabaseLogger
  /**
   * PGlite has no autovacuum: every so often it is vacuumed and analysed here, so that updated rows'
   * space is reused and the planner has statistics. 0 turns it off. @default 600_000
   */
  pgliteVacuumIntervalMs?: number
  /**
   * Postgres: a statement running longer is cancelled by the server (SQLSTATE 57014), so a runaway query, or
   * one a stopped gateway left behind, ends. Migrations run on their own connection without it. 0 = none.
   * @default 0
   */
  statementTimeoutMs?: number
}

/** The driver-typed database behind a handle, for code that must pick a driver-specific helper (migrations). */
export type Driver =
  | { kind: 'postgres'; db: PostgresJsDatabase<Schema>; client: postgres.Sql; url: string }
  | { kind: 'pglite'; db: PgliteDatabase<Schema>; client: PgliteThread }

const drivers = new WeakMap<DatabaseHandle, Driver>()

export function driverOf(handle: DatabaseHandle): Driver {
  const driver = drivers.get(handle)
  if (!driver) throw new Error('not a handle returned by openDatabase')
  return driver
}

export async function openDatabase(opts: OpenDatabaseOptions): Promise<DatabaseHandle> {
  const { url, logger } = opts
  let driver: Driver
  let unlock: (() => void) | undefined
  if (url && /^postgres(ql)?:\/\//.test(url)) {
    const client = postgresClient(url, { max: 10, name: APPLICATION_NAME, statementTimeoutMs: opts.statementTimeoutMs ?? 0 })
    driver = { kind: 'postgres', db: drizzlePostgres({ client, schema }), client, url }
    const u = new URL(url)
    logger?.info({ db: 'postgres', host: u.host, database: u.pathname.slice(1) }, 'database: postgres')
  } else if (url === 'memory://') {
    driver = await pglite()
    logger?.info({ db: 'pglite', storage: 'memory' }, 'database: embedded PGlite in memory')
  } else if (url === undefined) {
    const dir = join(opts.dataDir, 'pglite')
    await mkdir(dir, { recursive: true })
    unlock = lockDataDir(opts.dataDir)
    try {
      driver = await pglite(dir)
    } catch (err) {
      unlock()
      throw err
    }
    logger?.info({ db: 'pglite', dir }, 'database: embedded PGlite (single instance only)')
  } else {
    // never echo the url: it may carry a password
    throw new Error('database url must start with postgres://, postgresql:// or be memory://')
  }
  return handleFor(driver, opts, unlock)
}

/** A postgres.js pool as the gateway opens them: its sessions named and (unless 0) its statements bounded. */
export function postgresClient(url: string, { max, name, statementTimeoutMs }: { max: number; name: string; statementTimeoutMs: number }): postgres.Sql {
  return postgres(url, {
    max,
    // sent at connect: pg_stat_activity names the sessions; 0 also overrides a server-wide default
    connection: { application_name: name, statement_timeout: statementTimeoutMs },
    // fail fast when the server is down instead of queueing requests behind a 30 s connect attempt
    connect_timeout: 3,
    // postgres.js's default waits up to 20 s between reconnects once the server has refused a few (the retry
    // count is shared by the pool), and queries wait with it: capped here, a request meets a refusal within ~0.5 s
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 0.5) * (0.5 + Math.random() / 2),
    onnotice: () => {},
  })
}

/** PGlite in its own thread; Drizzle drives it through the part of PGlite's interface the thread provides */
async function pglite(dataDir?: string): Promise<Driver> {
  const client = await PgliteThread.create(dataDir)
  return { kind: 'pglite', db: drizzlePglite({ client: client as unknown as PGlite, schema }), client }
}

function handleFor(driver: Driver, opts: OpenDatabaseOptions, unlock?: () => void): DatabaseHandle {
  let closing: Promise<void> | undefined
  const vacuumEvery = opts.pgliteVacuumIntervalMs ?? 600_000
  let vacuuming = false
  const vacuum =
    driver.kind === 'pglite' && vacuumEvery > 0
      ? setInterval(() => {
          if (vacuuming || closing) return
          vacuuming = true
          const started = performance.now()
          driver.client
            .exec('VACUUM (ANALYZE)')
            .then(
              () => opts.logger?.info({ db: 'pglite', ms: Math.round(performance.now() - started) }, 'database: vacuumed'),
              (err: unknown) => opts.logger?.warn({ err, db: 'pglite' }, 'database: vacuum failed'),
            )
            .finally(() => (vacuuming = false))
        }, vacuumEvery)
      : undefined
  vacuum?.unref()
  const handle: DatabaseHandle = {
    db: driver.db,
    kind: driver.kind,
    ping: (timeoutMs = 1000) =>
      withTimeout(
        driver.db.execute(sql`select 1`).then(() => undefined),
        timeoutMs,
        'database ping',
      ),
    close() {
      // The timeout is not only for slow queries: postgres.js's end() never settles for a connection that
      // lost its socket mid-query (porsager/postgres#1097), so it is the bound on shutdown after a DB outage.
      clearInterval(vacuum)
      closing ??= (driver.kind === 'postgres' ? driver.client.end({ timeout: 2 }) : driver.client.close()).finally(() => unlock?.())
      return closing
    },
  }
  drivers.set(handle, driver)
  return handle
}

/**
 * Runs one parameterised SQL text on the driver directly, for the few hot statements whose query-builder cost
 * matters (the chat message writer): no Drizzle building, rows as plain objects keyed by column name.
 * `prepare`: on Postgres, a named statement parsed and planned once per connection (a fixed text run often).
 */
export async function rawQuery<T = Record<string, unknown>>(handle: DatabaseHandle, text: string, params: unknown[], opts: { prepare?: boolean } = {}): Promise<T[]> {
  const driver = driverOf(handle)
  if (driver.kind === 'postgres') return (await driver.client.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: opts.prepare ?? false })) as unknown as T[]
  return (await driver.client.query<T>(text, params)).rows
}

/** Rows of a raw `db.execute()` result, whichever driver produced it. */
export function rowsOf<T = Record<string, unknown>>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[]
  return ((result as { rows?: T[] }).rows ?? []) as T[]
}

/** the `code`s of an error and of its causes (Drizzle wraps driver errors), outermost first */
export function* errorCodes(err: unknown): Generator<string> {
  let e = err
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') yield code
    e = (e as { cause?: unknown }).cause
  }
}

/**
 * The SQLSTATE of a failed query (`23505` unique violation, `23503` foreign key, `23514` check), whichever
 * driver raised it.
 */
export function pgErrorCode(err: unknown): string | undefined {
  for (const code of errorCodes(err)) if (/^[0-9A-Z]{5}$/.test(code)) return code
  return undefined
}

/**
 * Rejects after `ms` if `work` has not settled. The loser keeps running (postgres.js gives up on its own after
 * connect_timeout); Promise.race has subscribed to it, so its late rejection is not unhandled.
 */
async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}
