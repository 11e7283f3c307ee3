/**
 * What only a real Postgres server can show: instances starting together, the migration lock, and the pool
 * coming back after the server went away (the /ready contract).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import net from 'node:net'
import { sql } from 'drizzle-orm'
import postgres from 'postgres'
import {
  bootstrap,
  migrate,
  MIGRATION_LOCK_KEY,
  openDatabase,
  rowsOf,
  users,
  type DatabaseHandle,
} from '../../src/db'
import { createThrowawayDatabase, hasPostgres } from '../helpers/services'
import journal from '../../drizzle/meta/_journal.json'
import { rejectionOf } from '../helpers/rejection'

// bunfig's [test] timeout is not applied by this Bun; PGlite start-up and argon2 can pass 5 s on a busy machine
setDefaultTimeout(20_000)

const dataDir = '/nonexistent'

describe.skipIf(!hasPostgres)('postgres: concurrent starts', () => {
  test('two instances migrating and bootstrapping one database at once both succeed, leaving one admin', async () => {
    const throwaway = await createThrowawayDatabase()
    const handles = [
      await openDatabase({ url: throwaway.url, dataDir }),
      await openDatabase({ url: throwaway.url, dataDir }),
    ]
    try {
      const start = async (h: DatabaseHandle) => {
        await migrate(h)
        return bootstrap(h.db, { adminEmail: 'admin@example.com', allowSignupDefault: true })
      }
      const results = await Promise.all(handles.map(start))
      expect(results.filter((r) => r.createdAdmin)).toHaveLength(1)
      expect(results.filter((r) => r.generatedPassword !== undefined)).toHaveLength(1)

      const db = handles[0]!.db
      expect(await db.select().from(users)).toHaveLength(1)
      expect(rowsOf(await db.execute(sql`select id from drizzle.__drizzle_migrations`))).toHaveLength(journal.entries.length)
    } finally {
      await Promise.all(handles.map((h) => h.close()))
      await throwaway.drop()
    }
  })

  test('migrate waits for the advisory lock held by another instance', async () => {
    const throwaway = await createThrowawayDatabase()
    const other = postgres(throwaway.url, { max: 1, onnotice: () => {} })
    const h = await openDatabase({ url: throwaway.url, dataDir })
    try {
      await other`select pg_advisory_lock(${MIGRATION_LOCK_KEY.toString()}::bigint)`
      let settled = false
      const running = migrate(h).finally(() => (settled = true))
      await Bun.sleep(400)
      expect(settled).toBe(false)
      const [before] = await other`select to_regclass('public.tenants') as t`
      expect(before!.t).toBeNull()

      await other`select pg_advisory_unlock(${MIGRATION_LOCK_KEY.toString()}::bigint)`
      await running
      const [after] = await other`select to_regclass('public.tenants')::text as t`
      expect(after!.t).toBe('tenants')
      // and the lock was given back: another session can take it without waiting
      const [free] = await other`select pg_try_advisory_lock(${MIGRATION_LOCK_KEY.toString()}::bigint) as ok`
      expect(free!.ok).toBe(true)
    } finally {
      await h.close()
      await other.end()
      await throwaway.drop()
    }
  })
})

/** A TCP relay in front of the real server that can be stopped and started, standing in for a Postgres restart. */
function relay(targetUrl: string) {
  const target = new URL(targetUrl)
  const sockets = new Set<net.Socket>()
  let server: net.Server | undefined
  let port = 0
  return {
    get port() {
      return port
    },
    async start() {
      server = net.createServer((client) => {
        const upstream = net.connect(Number(target.port || 5432), target.hostname)
        for (const s of [client, upstream]) {
          sockets.add(s)
          s.on('close', () => sockets.delete(s))
          s.on('error', () => {})
        }
        client.pipe(upstream).pipe(client)
        client.on('close', () => upstream.destroy())
        upstream.on('close', () => client.destroy())
      })
      await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve))
      port = (server.address() as net.AddressInfo).port
    },
    async stop() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server!.close(() => resolve()))
    },
  }
}

describe.skipIf(!hasPostgres)('postgres: server goes away and comes back', () => {
  let throwaway: { url: string; drop: () => Promise<void> }
  let h: DatabaseHandle
  const proxy = { current: undefined as ReturnType<typeof relay> | undefined }

  beforeAll(async () => {
    throwaway = await createThrowawayDatabase()
    proxy.current = relay(throwaway.url)
    await proxy.current.start()
    const u = new URL(throwaway.url)
    u.hostname = '127.0.0.1'
    u.port = String(proxy.current.port)
    h = await openDatabase({ url: u.toString(), dataDir })
    await migrate(h)
  })
  afterAll(async () => {
    await h?.close()
    await throwaway?.drop()
  })

  test('ping fails fast while the server is down and succeeds again once it is back', async () => {
    const p = proxy.current!
    // several pooled connections open, as under load
    await Promise.all(Array.from({ length: 5 }, () => h.ping()))

    await p.stop()
    const t0 = performance.now()
    expect(await rejectionOf(h.ping())).toBeInstanceOf(Error)
    expect(performance.now() - t0).toBeLessThan(1200)

    await Bun.sleep(300) // a restart takes a moment; postgres.js sees its sockets close meanwhile
    await p.start()
    // postgres.js reconnects on its own: the first ping after the restart already answers
    await h.ping()
    const [row] = await h.db.select({ n: sql<number>`count(*)::int` }).from(users)
    expect(row!.n).toBe(0)
  })
})
