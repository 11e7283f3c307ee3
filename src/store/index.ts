/**
 * The shared store: Redis when REDIS_URL is set (several instances), process memory otherwise.
 * See types.ts for the interface and keys.ts for the key space.
 */
import { createMemoryStore } from './memory.ts'
import { createRedisStore } from './redis.ts'
import type { Store, StoreLogger } from './types.ts'

export interface CreateStoreOptions {
  /** unset → in-process store, correct for a single instance only */
  redisUrl?: string
  logger?: StoreLogger
  /** upper bound for one Redis call, in ms. @default 500 */
  commandTimeoutMs?: number
}

export async function createStore(opts: CreateStoreOptions = {}): Promise<Store> {
  if (!opts.redisUrl) return createMemoryStore({ logger: opts.logger })
  return createRedisStore({ url: opts.redisUrl, logger: opts.logger, commandTimeoutMs: opts.commandTimeoutMs })
}

export { createMemoryStore } from './memory.ts'
export { createRedisStore, type RedisStoreOptions } from './redis.ts'
export { channels, keys } from './keys.ts'
export { createPresence, type Presence } from './presence.ts'
export {
  jsonMessages,
  StoreUnavailableError,
  type MessageHandler,
  type SetOptions,
  type Store,
  type StoreLogger,
  type SubscribeOptions,
  type Unsubscribe,
} from './types.ts'
