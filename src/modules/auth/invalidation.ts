/**
 * Cache invalidation and revocation notices between gateway instances, over the store's pub/sub.
 * The instance that makes a change applies it locally at once and publishes it for the others; a lost
 * subscription (store reconnect) clears everything, since notices sent meanwhile are gone.
 */
import type { Logger } from '../../observability/logger'
import { channels, jsonMessages, type Store } from '../../store'

export type Invalidation =
  /** user changed; `ended` when disabled or deleted: their live connections must end */
  | { t: 'user'; tenant: string; id: string; ended?: boolean }
  /** tenant changed (status, grants, custom roles); `ended` when suspended */
  | { t: 'tenant'; id: string; ended?: boolean }
  /** `exp`: unix seconds after which the token is dead anyway */
  | { t: 'jti'; tenant: string; user: string; jti: string; exp?: number }
  /** `until`: unix seconds after which no access token of the session is alive */
  | { t: 'session'; tenant: string; user: string; id: string; until?: number }
  | { t: 'apikey'; tenant: string; user: string; id: string; hash: string }
  /** everything may be stale (the subscription was lost and is back) */
  | { t: 'all' }
  /** the subscription is lost: notices may be missed until `all` (dispatched locally, never published) */
  | { t: 'lost' }

export type InvalidationHandler = (message: Invalidation) => void

export interface InvalidationBus {
  /** applies locally now, then tells every other instance */
  publish(message: Invalidation): Promise<void>
  onMessage(handler: InvalidationHandler): void
  start(): Promise<void>
  stop(): Promise<void>
}

export function createInvalidationBus({ store, logger }: { store: Store; logger: Logger }): InvalidationBus {
  const handlers: InvalidationHandler[] = []
  const origin = crypto.randomUUID()
  let unsubscribe: (() => Promise<void>) | undefined

  function dispatch(message: Invalidation): void {
    for (const handler of handlers) {
      try {
        handler(message)
      } catch (err) {
        logger.error({ err, invalidation: message.t }, 'invalidation handler failed')
      }
    }
  }

  return {
    async publish(message) {
      dispatch(message)
      try {
        await store.publish(channels.invalidate(), JSON.stringify({ ...message, origin }))
      } catch (err) {
        // The change is in Postgres; other instances pick it up when their cache entries expire.
        logger.warn({ err, invalidation: message.t }, 'could not publish an invalidation')
      }
    },
    onMessage(handler) {
      handlers.push(handler)
    },
    async start() {
      unsubscribe = await store.subscribe(
        channels.invalidate(),
        jsonMessages<Invalidation & { origin?: string }>(
          (message) => {
            if (message.origin !== origin) dispatch(message)
          },
          () => logger.warn({}, 'ignored a malformed invalidation'),
        ),
        { onReconnect: () => dispatch({ t: 'all' }), onDisconnect: () => dispatch({ t: 'lost' }) },
      )
    },
    async stop() {
      await unsubscribe?.()
    },
  }
}
