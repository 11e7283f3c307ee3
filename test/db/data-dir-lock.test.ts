/**
 * One process per embedded database directory: a second open — another gateway on the same DATA_DIR, or the
 * same process opening it again (`bun --hot` re-running the entry) — is refused instead of writing over the
 * first's files. A lock left by a process that is gone is taken over.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { DataDirInUse, openDatabase } from '../../src/db'
import { HEARTBEAT_MS, STALE_MS } from '../../src/db/data-dir-lock'
import { rejectionOf } from '../helpers/rejection'

const dataDir = await mkdtemp(join(tmpdir(), 'vh-lock-'))
const lockFile = join(dataDir, 'pglite.lock')
afterAll(() => rm(dataDir, { recursive: true, force: true }))

const clientModule = resolve(import.meta.dir, '../../src/db/client.ts')

/** another process with the database open, until it is killed */
async function holder(): Promise<Bun.Subprocess<'ignore', 'pipe', 'inherit'>> {
  const script = `const { openDatabase } = await import(${JSON.stringify(clientModule)}); await openDatabase({ dataDir: ${JSON.stringify(dataDir)} }); console.log('open'); setInterval(() => {}, 1000)`
  const child = Bun.spawn([process.execPath, '-e', script], { stdout: 'pipe', stderr: 'inherit' })
  const reader = child.stdout.getReader()
  const { value } = await reader.read()
  expect(new TextDecoder().decode(value)).toContain('open')
  reader.releaseLock()
  return child
}

describe('the embedded database directory', () => {
  test('a second open in this process is refused until the first is closed', async () => {
    const first = await openDatabase({ dataDir })
    expect(existsSync(lockFile)).toBe(true)
    const refused = await rejectionOf(openDatabase({ dataDir }))
    expect(refused).toBeInstanceOf(DataDirInUse)
    expect((refused as Error).message).toContain('already open in this process')
    await first.close()
    expect(existsSync(lockFile)).toBe(false)
    const again = await openDatabase({ dataDir })
    await again.close()
  }, 60_000) // the first open initialises the directory

  test('another process holding it: refused, naming that process; once it is killed, the stale lock is taken over', async () => {
    const child = await holder()
    try {
      const refused = await rejectionOf(openDatabase({ dataDir }))
      expect(refused).toBeInstanceOf(DataDirInUse)
      expect((refused as Error).message).toContain(`in use by process ${child.pid}`)
    } finally {
      child.kill('SIGKILL')
      await child.exited
    }
    expect(existsSync(lockFile)).toBe(true) // a crash leaves it behind
    const db = await openDatabase({ dataDir })
    await db.close()
  }, 60_000)

  test("a lock naming this pid from an earlier image of the process, or a reused pid, is stale", async () => {
    // `bun --watch` re-execs in place (same pid); a container's gateway is pid 1 on every start
    writeFileSync(lockFile, `${process.pid} ${hostname()} 1\n`)
    const a = await openDatabase({ dataDir })
    await a.close()
    // a live process whose start time is not the one the lock recorded: its pid was reused
    writeFileSync(lockFile, `${process.ppid} ${hostname()} 1\n`)
    const b = await openDatabase({ dataDir })
    await b.close()
  }, 60_000)

  test('a holder on another host (a shared volume) holds it while it touches the file; untouched, it is stale', async () => {
    writeFileSync(lockFile, '1 other-container 4242\n')
    const refused = await rejectionOf(openDatabase({ dataDir }))
    expect((refused as Error).message).toContain('in use by process 1 on host other-container')
    const old = new Date(Date.now() - STALE_MS - 1000)
    utimesSync(lockFile, old, old)
    const db = await openDatabase({ dataDir })
    try {
      // held: the file is touched as long as it is open
      utimesSync(lockFile, old, old)
      await Bun.sleep(HEARTBEAT_MS + 500)
      expect(Date.now() - statSync(lockFile).mtimeMs).toBeLessThan(HEARTBEAT_MS + 1000)
    } finally {
      await db.close()
    }
  }, 60_000)
})
