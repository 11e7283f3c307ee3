/**
 * The identity stack, built once per app from the infrastructure: everything the auth plugin, the auth
 * routes and later the admin, chat and voice modules share.
 */
import type { Config } from '../../config'
import type { Database } from '../../db'
import type { Logger } from '../../observability/logger'
import type { Store } from '../../store'
import { createAudit } from '../audit/service'
import { createRateLimiter } from '../quotas'
import { createApiKeys } from './api-keys'
import { createAuthenticator, createGrantCheck } from './authenticate'
import { createIdentityCache } from './identity-cache'
import { createInvalidationBus } from './invalidation'
import { createLiveConnections } from './live-connections'
import { createRevocation } from './revocation'
import { createAuthService } from './service'
import { createTokenService } from './tokens'

export async function createIdentityStack({ config, db, store, logger }: { config: Config; db: Database; store: Store; logger: Logger }) {
  const bus = createInvalidationBus({ store, logger })
  await bus.start()
  const tokens = createTokenService({ secret: config.jwtSecret })
  const identity = createIdentityCache({ db, bus })
  const revocation = createRevocation({ db, store, logger, bus, accessTtlS: tokens.accessTtlS })
  const apiKeys = createApiKeys({ db, bus })
  const limiter = createRateLimiter({ store, logger })
  const audit = createAudit({ db, logger })
  const live = createLiveConnections(bus, createGrantCheck(identity), logger)
  const authenticate = createAuthenticator({ tokens, revocation, identity, apiKeys })
  const service = createAuthService({ db, tokens, revocation, identity, limiter, audit })
  return {
    bus,
    tokens,
    identity,
    revocation,
    apiKeys,
    limiter,
    audit,
    live,
    authenticate,
    service,
    close: async () => {
      revocation.stop()
      await bus.stop()
    },
  }
}

export type IdentityStack = Awaited<ReturnType<typeof createIdentityStack>>
