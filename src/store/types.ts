/**
 * The shared store: one small, Promise-based interface over Redis (several gateway instances) or process
 * memory (a single instance). Features use it for the revocation denylist, caches, rate-limit counters,
 * live-connection registries, pub/sub between instances and chat-stream event logs.
 *
 * Every backend failure rejects with StoreUnavailableError — fast, never a hang, never a raw driver error —
 * so callers can fail closed (auth answers 503 rather than letting a revoked token through).
 */
import { AppError } from '../errors.ts'

export interface Store {
  readonly kind: 'memory' | 'redis'
  get(key: string): Promise<string | null>
  /**
   * Without ttlMs the key never expires (and loses any TTL it had, as Redis SET does).
   * Returns false only when onlyIfAbsent and the key existed.
   */
  set(key: string, value: string, opts?: SetOptions): Promise<boolean>
  /** returns how many of the keys existed */
  del(...keys: string[]): Promise<number>
  exists(key: string): Promise<boolean>
  /** the values of several keys in one round trip (null where absent) */
  mGet(keys: string[]): Promise<Array<string | null>>
  /**
   * Atomic add of an integer (default 1). ttlMs is applied when the key is created — or found without a TTL —
   * and never extended afterwards, so a fixed rate-limit window really ends. Returns the new value and the
   * key's remaining TTL in ms (-1: none). One round trip in Redis.
   */
  incr(key: string, by?: number, ttlMs?: number): Promise<{ value: number; ttlMs: number }>
  /** several incr in one atomic step and one round trip (e.g. the per-user and per-tenant limits of a request) */
  incrMany(entries: ReadonlyArray<{ key: string; by?: number; ttlMs?: number }>): Promise<Array<{ value: number; ttlMs: number }>>
  /** adds members; sets/refreshes the TTL when given; returns how many were new */
  sAdd(key: string, members: string[], ttlMs?: number): Promise<number>
  /** sAdd, returning how many members the set has then (an admission against a count: one round trip) */
  sAddCard(key: string, members: string[], ttlMs?: number): Promise<number>
  /** returns how many were removed; an emptied set disappears */
  sRem(key: string, members: string[]): Promise<number>
  sMembers(key: string): Promise<string[]>
  /** how many members (0 for a missing key) */
  sCard(key: string): Promise<number>
  /** appends to a string value (created when missing); sets/refreshes the TTL when given (one round trip) */
  append(key: string, value: string, ttlMs?: number): Promise<void>
  /**
   * At-most-once delivery to every subscriber of every instance; messages are not stored. Resolves with how
   * many stores (one per instance) had a subscriber for the channel, as Redis's PUBLISH counts them.
   */
  publish(channel: string, message: string): Promise<number>
  /**
   * Calls handler with each message on channel (several handlers per channel are all called). Resolves once
   * the subscription is active; the returned function removes this handler and never rejects.
   * onReconnect runs after the subscription came back from a lost connection: messages published meanwhile
   * were missed, so a cache fed by this channel should be flushed. onDisconnect runs as soon as the pub/sub
   * connection is known lost (messages may be missed from then on).
   */
  subscribe(channel: string, handler: MessageHandler, opts?: SubscribeOptions): Promise<Unsubscribe>
  /** resolves when the backend (including the pub/sub connection) answers; rejects fast otherwise */
  ping(): Promise<void>
  /** idempotent; afterwards every call rejects with StoreUnavailableError */
  close(): Promise<void>
}

export interface SetOptions {
  ttlMs?: number
  onlyIfAbsent?: boolean
}

export type MessageHandler = (message: string) => void

/** A handler for a channel of JSON messages: each message parsed, a malformed one passed to `onMalformed` (or dropped). */
export function jsonMessages<T>(handler: (message: T) => void, onMalformed?: () => void): MessageHandler {
  return (raw) => {
    let message: T
    try {
      message = JSON.parse(raw) as T
    } catch {
      return onMalformed?.()
    }
    handler(message)
  }
}
export type Unsubscribe = () => Promise<void>
export interface SubscribeOptions {
  onReconnect?: () => void
  onDisconnect?: () => void
}

/** pino-compatible subset */
export interface StoreLogger {
  warn(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
}

/**
 * The store could not be reached (or answered with an error). Carries status 503 so that a caller who does
 * not handle it still fails closed; the message is safe to show, the detail is in `op` and `cause`.
 */
export class StoreUnavailableError extends AppError {
  override readonly code = 'STORE_UNAVAILABLE' as const

  constructor(
    readonly op: string,
    options?: { cause?: unknown },
  ) {
    super(503, 'STORE_UNAVAILABLE', 'Shared store unavailable', undefined, options)
    this.name = 'StoreUnavailableError'
  }
}

/** Rejects TTLs Redis would refuse; rounds fractions up so a TTL never ends early. */
export function checkTtl(ttlMs: number | undefined): number | undefined {
  if (ttlMs === undefined) return undefined
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a positive number, got ${ttlMs}`)
  return Math.ceil(ttlMs)
}

/** INCRBY takes 64-bit integers; we stay within what a JS number holds exactly. */
export function checkIncrement(by: number): number {
  if (!Number.isSafeInteger(by)) throw new RangeError(`incr amount must be a safe integer, got ${by}`)
  return by
}

/**
 * Runs a subscriber callback so that neither a throw nor a rejected promise (async handlers fit the type)
 * escapes: one broken subscriber must not starve the others or crash the process.
 */
export function callSafely(fn: () => unknown, report: (err: unknown) => void): void {
  try {
    const result = fn()
    if (result instanceof Promise) result.catch(report)
  } catch (err) {
    report(err)
  }
}
