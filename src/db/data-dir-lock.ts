/**
 * One process at a time on an embedded database directory. PGlite is a single-user Postgres: a second process
 * (or a second open in the same process) on the same files writes over the first's and corrupts them, and
 * PGlite itself does not check. Like Postgres's postmaster.pid, a lock file names the holder; a file whose
 * holder is gone (a crash, a restart of the same process image, a container's PID 1 again) is taken over.
 * A holder on another host (a volume shared between containers, whose pids this one cannot see) is told by the
 * file's age: the holder touches it every HEARTBEAT_MS, and one untouched for STALE_MS is taken over.
 */
import { linkSync, readFileSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'

export const HEARTBEAT_MS = 2_000
export const STALE_MS = 10_000

/** this runtime's open locks, kept on globalThis: `bun --hot` re-evaluates modules but keeps the process */
const HELD: Set<string> = ((globalThis as Record<symbol, unknown>)[Symbol.for('voicehelper.dataDirLocks')] ??= new Set<string>()) as Set<string>

export class DataDirInUse extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: Holder,
  ) {
    const who = holder.host === hostname() ? `process ${holder.pid}` : `process ${holder.pid} on host ${holder.host}`
    super(
      holder.pid === process.pid && holder.host === hostname()
        ? `the embedded database in DATA_DIR ${dataDir} is already open in this process`
        : `the embedded database in DATA_DIR ${dataDir} is in use by ${who}: one gateway process per DATA_DIR (set DATABASE_URL to share a Postgres between instances)`,
    )
    this.name = 'DataDirInUse'
  }
}

/** the kernel's start time of a process (Linux), which a reused pid does not share; undefined elsewhere */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the command name (field 2) may hold spaces and parentheses: count from the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

interface Holder {
  pid: number
  host: string
}

/** `<pid> <host> <start time>` (no start time where there is no /proc) */
const ownToken = () => `${process.pid} ${hostname()} ${startTimeOf(process.pid) ?? ''}`.trim()

/** what a lock file says, and when its holder last touched it; undefined when absent or unreadable */
function readLock(path: string): (Holder & { started?: string; touchedAt: number }) | undefined {
  try {
    const [pidText, host = '', started] = readFileSync(path, 'utf8').trim().split(' ')
    const pid = Number(pidText)
    return Number.isSafeInteger(pid) && pid > 0 ? { pid, host, started, touchedAt: statSync(path).mtimeMs } : undefined
  } catch {
    return undefined
  }
}

/** the holder a lock file names, while it holds it: its process still runs (and is not this process's earlier image) */
function liveHolder(path: string): Holder | undefined {
  const lock = readLock(path)
  if (!lock) return undefined
  const { pid, host, started } = lock
  if (host !== hostname()) return Date.now() - lock.touchedAt < STALE_MS ? { pid, host } : undefined
  // this pid but not in HELD (checked first): an earlier image of this process (`bun --watch` re-execs in place)
  if (pid === process.pid) return undefined
  if (!alive(pid)) return undefined
  const now = startTimeOf(pid)
  return started && now && started !== now ? undefined : { pid, host }
}

/** takes the lock of the embedded database in `dataDir` or throws DataDirInUse; the returned function lets it go */
export function lockDataDir(dataDir: string): () => void {
  const path = join(dataDir, 'pglite.lock')
  for (let attempt = 0; ; attempt++) {
    if (HELD.has(path)) throw new DataDirInUse(dataDir, { pid: process.pid, host: hostname() })
    // written aside, then linked into place: the lock appears whole (link fails if it exists), never half-written
    const aside = `${path}.${process.pid}`
    writeFileSync(aside, `${ownToken()}\n`, { mode: 0o600 })
    try {
      linkSync(aside, path)
      HELD.add(path)
      const heartbeat = setInterval(() => {
        const at = new Date()
        try {
          utimesSync(path, at, at)
        } catch {
          // removed under us: the next start takes it
        }
      }, HEARTBEAT_MS)
      heartbeat.unref()
      return () => {
        clearInterval(heartbeat)
        release(path)
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    } finally {
      unlinkSync(aside)
    }
    const holder = liveHolder(path)
    if (holder !== undefined) throw new DataDirInUse(dataDir, holder)
    // stale: remove it and try again (another starter may take it first; then it is theirs — only two starting
    // within the same instant on a stale lock could both remove it, which a lock file cannot rule out)
    // it keeps coming back: someone else is taking it as fast as it goes
    if (attempt >= 3) throw new DataDirInUse(dataDir, readLock(path) ?? { pid: 0, host: hostname() })
    try {
      unlinkSync(path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }
}

function release(path: string): void {
  if (!HELD.delete(path)) return
  try {
    // only our own file: a successor that took over a lock we had lost keeps theirs
    if (readFileSync(path, 'utf8').trim() === ownToken()) unlinkSync(path)
  } catch {
    // already gone
  }
}
