/**
 * This instance in the shared store: an id, and a key that exists while the process runs (refreshed every
 * second, gone five seconds after the last refresh). What an instance holds names it — a chat stream's claim,
 * a voice session's alive key — so another instance tells a crashed holder from a quiet one in seconds, instead
 * of waiting for the holder's own keys to age out.
 */
import { newId } from '../lib/ids'
import { keys } from './keys.ts'
import type { Store, StoreLogger } from './types.ts'

const REFRESH_MS = 1_000
const ALIVE_TTL_MS = 5_000

export interface Presence {
  readonly id: string
  /**
   * Which of these instances are known to have stopped: their presence lapsed (the in-process store knows only
   * this process, so any other id is a previous one). When the store cannot answer: none.
   */
  gone(ids: Iterable<string>): Promise<Set<string>>
  /** stops refreshing and removes the key: a clean stop is seen at once */
  close(): Promise<void>
}

export function createPresence(store: Store, logger?: StoreLogger): Presence {
  const id = newId('inst')
  const others = (ids: Iterable<string>) => [...new Set(ids)].filter((other) => other !== id)
  if (store.kind === 'memory') {
    return { id, gone: async (ids) => new Set(others(ids)), close: async () => {} }
  }
  let closed = false
  let refreshing = false
  const refresh = () => {
    if (closed || refreshing) return
    refreshing = true
    store
      .set(keys.instanceAlive(id), '1', { ttlMs: ALIVE_TTL_MS })
      .catch((err: unknown) => logger?.warn({ err }, 'could not refresh this instance presence'))
      .finally(() => (refreshing = false))
  }
  refresh()
  const timer = setInterval(refresh, REFRESH_MS)
  timer.unref()
  return {
    id,
    async gone(ids) {
      const asked = others(ids)
      if (asked.length === 0) return new Set()
      const alive = await store.mGet(asked.map((other) => keys.instanceAlive(other))).catch(() => undefined)
      return new Set(alive ? asked.filter((_, i) => alive[i] === null) : [])
    },
    async close() {
      if (closed) return
      closed = true
      clearInterval(timer)
      await store.del(keys.instanceAlive(id)).catch(() => {})
    },
  }
}
