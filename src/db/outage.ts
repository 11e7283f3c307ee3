/**
 * Writes that must not be lost to a short database outage (a restart, a failover): what counts as the database
 * being unreachable, trying again while it is, and the logging around both.
 */
import { tryAgainWhile } from '../lib/retry'
import { errorCodes } from './client'

/** how a driver says the server could not be reached or went away: nothing is wrong with the query */
const UNREACHABLE = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT',
])

/**
 * A failure worth trying again later: the connection failed (refused, reset, closed, timed out), or the server
 * is shutting down or starting (SQLSTATE class 08, 57P01–57P03).
 */
export function isDatabaseUnreachable(err: unknown): boolean {
  for (const code of errorCodes(err)) if (UNREACHABLE.has(code) || code.startsWith('08') || /^57P0[123]$/.test(code)) return true
  return false
}

/**
 * After a first try that failed on an unreachable database: tries `work` again while it fails that way (250 ms,
 * doubling to 8 s), for `forMs` (a minute); once `signal` aborts (shutdown), once more at once.
 */
export function tryAgainWhileUnreachable<T>(work: () => Promise<T>, signal: AbortSignal, forMs = 60_000): Promise<T> {
  return tryAgainWhile(work, { retriable: isDatabaseUnreachable, signal, forMs })
}

interface OutageLogger {
  info(o: object, msg: string): void
  warn(o: object, msg: string): void
}

/**
 * A write that survives a database outage: `first` is its first try; when that fails on an unreachable
 * database, `again` (tryAgainWhileUnreachable around the same write) runs in the background. Any other
 * failure, and `again`'s last, go to `failed`; the wait is logged as `what`. `first` settles with the first
 * try (a stream's ending waits for that, not for an outage); `done` when the write is stored or given up.
 */
export function storeThroughOutage(opts: {
  first: Promise<unknown>
  again: () => Promise<unknown>
  failed: (err: unknown) => void
  logger: OutageLogger
  what: string
  context: object
}): { first: Promise<void>; done: Promise<void> } {
  const { logger, what, context, failed } = opts
  let retried: Promise<void> = Promise.resolve()
  const first = opts.first.then(
    () => {},
    (err: unknown) => {
      if (!isDatabaseUnreachable(err)) return failed(err)
      logger.warn({ err, ...context }, `${what} not stored yet: the database is unreachable; trying again`)
      retried = opts.again().then(() => logger.info(context, `${what} stored on a later try`), failed)
    },
  )
  return { first, done: first.then(() => retried) }
}
