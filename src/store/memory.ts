/**
 * In-process store for a single gateway instance (REDIS_URL unset) and for tests. It mirrors the Redis
 * implementation's observable behaviour: TTLs (expired keys are invisible), emptied sets vanish, pub/sub is
 * delivered asynchronously, and calls after close() reject with StoreUnavailableError.
 */
import {
  callSafely,
  checkIncrement,
  checkTtl,
  StoreUnavailableError,
  type MessageHandler,
  type SetOptions,
  type Store,
  type StoreLogger,
} from './types.ts'

type Value = string | Set<string>
interface Entry {
  value: Value
  /** performance.now() deadline: monotonic, so wall-clock jumps do not expire keys */
  expiresAt?: number
}

/** Expired keys are dropped on access; this sweep only bounds memory held by keys nobody reads again. */
const SWEEP_INTERVAL_MS = 10_000

export function createMemoryStore(opts: { logger?: StoreLogger } = {}): Store {
  const data = new Map<string, Entry>()
  const subscribers = new Map<string, Set<MessageHandler>>()
  let closed = false

  const sweep = setInterval(function sweepExpired() {
    const now = performance.now()
    for (const [key, entry] of data) if (isExpired(entry, now)) data.delete(key)
  }, SWEEP_INTERVAL_MS)
  sweep.unref()

  function open(op: string): void {
    if (closed) throw new StoreUnavailableError(op, { cause: new Error('store closed') })
  }

  function live(key: string): Entry | undefined {
    const entry = data.get(key)
    if (entry && isExpired(entry, performance.now())) {
      data.delete(key)
      return undefined
    }
    return entry
  }

  function typed<T extends Value>(key: string, is: (v: Value) => v is T): { entry: Entry; value: T } | undefined {
    const entry = live(key)
    if (!entry) return undefined
    if (!is(entry.value)) throw new TypeError(`WRONGTYPE key ${key} holds another kind of value`)
    return { entry, value: entry.value }
  }

  function expireIn(entry: Entry, ttlMs: number | undefined): void {
    if (ttlMs !== undefined) entry.expiresAt = performance.now() + ttlMs
  }

  /** adds members to the set at key (created when missing; the TTL set/refreshed when given) */
  function addMembers(key: string, members: string[], ttlMs: number | undefined): { added: number; size: number } {
    const ttl = checkTtl(ttlMs)
    const found = typed(key, isSet)
    if (members.length === 0) return { added: 0, size: found?.value.size ?? 0 }
    const entry = found?.entry ?? { value: new Set<string>() }
    const set = entry.value as Set<string>
    const before = set.size
    for (const m of members) set.add(m)
    expireIn(entry, ttl)
    data.set(key, entry)
    return { added: set.size - before, size: set.size }
  }

  function deliver(channel: string, message: string): void {
    for (const handler of [...(subscribers.get(channel) ?? [])]) {
      callSafely(
        () => handler(message),
        (err) => opts.logger?.warn({ err, channel }, 'store subscriber failed'),
      )
    }
  }

  const store: Store = {
    kind: 'memory',

    async get(key) {
      open('get')
      return typed(key, isString)?.value ?? null
    },

    async set(key, value, options: SetOptions = {}) {
      open('set')
      const ttlMs = checkTtl(options.ttlMs)
      if (options.onlyIfAbsent && live(key)) return false
      const entry: Entry = { value }
      expireIn(entry, ttlMs)
      data.set(key, entry)
      return true
    },

    async del(...keys) {
      open('del')
      let removed = 0
      for (const key of new Set(keys)) if (live(key) && data.delete(key)) removed++
      return removed
    },

    async exists(key) {
      open('exists')
      return live(key) !== undefined
    },

    async mGet(keys) {
      open('mGet')
      return keys.map((key) => typed(key, isString)?.value ?? null)
    },

    async incrMany(entries) {
      open('incrMany')
      const results = []
      for (const { key, by, ttlMs } of entries) results.push(await store.incr(key, by, ttlMs))
      return results
    },

    async incr(key, by = 1, ttlMs) {
      open('incr')
      checkIncrement(by)
      const ttl = checkTtl(ttlMs)
      const found = typed(key, isString)
      const current = found ? Number(found.value) : 0
      if (!Number.isSafeInteger(current)) throw new TypeError(`key ${key} does not hold an integer`)
      const entry = found?.entry ?? { value: '0' }
      entry.value = String(current + by)
      if (entry.expiresAt === undefined) expireIn(entry, ttl)
      data.set(key, entry)
      return { value: current + by, ttlMs: remainingMs(entry) }
    },

    async sAdd(key, members, ttlMs) {
      open('sAdd')
      return addMembers(key, members, ttlMs).added
    },

    async sAddCard(key, members, ttlMs) {
      open('sAddCard')
      return addMembers(key, members, ttlMs).size
    },

    async sRem(key, members) {
      open('sRem')
      const found = typed(key, isSet)
      if (!found) return 0
      let removed = 0
      for (const m of members) if (found.value.delete(m)) removed++
      if (found.value.size === 0) data.delete(key)
      return removed
    },

    async sMembers(key) {
      open('sMembers')
      return [...(typed(key, isSet)?.value ?? [])]
    },

    async sCard(key) {
      open('sCard')
      return typed(key, isSet)?.value.size ?? 0
    },

    async append(key, value, ttlMs) {
      open('append')
      const ttl = checkTtl(ttlMs)
      const found = typed(key, isString)
      const entry: Entry = found?.entry ?? { value: '' }
      entry.value = (entry.value as string) + value
      expireIn(entry, ttl)
      data.set(key, entry)
    },

    async publish(channel, message) {
      open('publish')
      // like Redis: delivered after the publisher continues, never inside its call stack
      queueMicrotask(() => deliver(channel, message))
      return subscribers.get(channel)?.size ? 1 : 0
    },

    async subscribe(channel, handler) {
      open('subscribe')
      // a fresh wrapper per call, so subscribing the same function twice gives two independent subscriptions
      const subscription: MessageHandler = (message) => handler(message)
      let handlers = subscribers.get(channel)
      if (!handlers) subscribers.set(channel, (handlers = new Set()))
      handlers.add(subscription)
      return async function unsubscribe() {
        handlers.delete(subscription)
        if (handlers.size === 0 && subscribers.get(channel) === handlers) subscribers.delete(channel)
      }
    },

    async ping() {
      open('ping')
    },

    async close() {
      closed = true
      clearInterval(sweep)
      subscribers.clear()
      data.clear()
    },
  }
  return store
}

function isExpired(entry: Entry, now: number): boolean {
  return entry.expiresAt !== undefined && entry.expiresAt <= now
}

function remainingMs(entry: Entry): number {
  if (entry.expiresAt === undefined) return -1
  return Math.max(0, Math.ceil(entry.expiresAt - performance.now()))
}

const isString = (v: Value): v is string => typeof v === 'string'
const isSet = (v: Value): v is Set<string> => v instanceof Set

