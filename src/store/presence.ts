/**
 * This instance in the shared store: an id, and a key that exists while the process runs (refreshed every
 * second, gone five seconds after the last refresh). What an instance holds names it — a chat stream's claim
 * carries its holder's id — so another instance tells a crashed holder from a quiet one in seconds, instead
 * of waiting for the holder's claims to age out.
 */
import { newId } from '../lib/ids'
import { keys } from './keys.ts'
import type { Store, StoreLogger } from './types.ts'

const REFRESH_MS = 1_000
const ALIVE_TTL_MS = 5_000

export interface Presence {
  readonly id: string
  /** whether the instance with that id is running (the in-process store knows only this one) */
  isAlive(id: string): Promise<boolean>
  /** stops refreshing and removes the key: a clean stop is seen at once */
  close(): Promise<void>
}

export function createPresence(store: Store, logger?: StoreLogger): Presence {
  const id = newId('inst')
  if (store.kind === 'memory') {
    return { id, isAlive: async (other) => other === id, close: async () => {} }
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
    isAlive: async (other) => other === id || (await store.exists(keys.instanceAlive(other))),
    async close() {
      if (closed) return
      closed = true
      clearInterval(timer)
      await store.del(keys.instanceAlive(id)).catch(() => {})
    },
  }
}
