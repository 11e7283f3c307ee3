/**
 * In-process fixed-window counters: the rate limiter's fallback while the shared store is away. Bounded:
 * a window's counter is dropped once the window ended, and the map never holds more than `maxKeys`
 * counters — when it fills with live windows the oldest are dropped, which lets those ids start afresh
 * (failing open for a few callers beats a gateway that runs out of memory during an outage).
 */

interface Counter {
  count: number
  /** end of the counter's window, on the limiter's clock */
  expiresAt: number
}

export interface LocalCounter {
  /** adds `by` (default 1) to key's counter (created for a window ending at expiresAt) and returns the new count */
  incr(key: string, expiresAt: number, now: number, by?: number): number
  /** the current count, 0 when the key has none (or its window ended) */
  get(key: string, now: number): number
  delete(key: string): void
  readonly size: number
}

/** @param maxKeys most counters held at once. @default 10_000 */
export function createLocalCounter(maxKeys = 10_000): LocalCounter {
  if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) {
    throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`)
  }
  const counters = new Map<string, Counter>()
  // room is made down to this size, so a full map is swept once per tenth of maxKeys inserts, not every time
  const lowWater = Math.floor(maxKeys * 0.9)

  function live(key: string, now: number): Counter | undefined {
    const counter = counters.get(key)
    if (counter && counter.expiresAt <= now) {
      counters.delete(key)
      return undefined
    }
    return counter
  }

  function makeRoom(now: number): void {
    if (counters.size < maxKeys) return
    for (const [key, counter] of counters) if (counter.expiresAt <= now) counters.delete(key)
    // Map iterates in insertion order: the first keys are the oldest windows
    for (const key of counters.keys()) {
      if (counters.size <= lowWater) break
      counters.delete(key)
    }
  }

  return {
    incr(key, expiresAt, now, by = 1) {
      let counter = live(key, now)
      if (!counter) {
        makeRoom(now)
        counter = { count: 0, expiresAt }
        counters.set(key, counter)
      }
      return (counter.count += by)
    },
    get: (key, now) => live(key, now)?.count ?? 0,
    delete: (key) => void counters.delete(key),
    get size() {
      return counters.size
    },
  }
}
