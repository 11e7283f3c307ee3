/**
 * Administration (contract §7): tenants, users, custom roles, tenant-wide grants, the audit log, stats
 * and the live sessions of every instance under /api/v2/admin. Services are framework-free; the route files only adapt HTTP to them.
 */
import { Elysia } from 'elysia'
import type { Deps } from '../../deps'
import { createAudited } from './actor'
import type { AuthPlugin } from './http'
import { createRoleAdmin } from './roles'
import { overviewRoutes } from './routes/overview'
import { roleRoutes } from './routes/roles'
import { sessionRoutes } from './routes/sessions'
import { tenantRoutes } from './routes/tenants'
import { userRoutes } from './routes/users'
import { createLiveSessions } from './sessions'
import { createStats } from './stats'
import { createTenantAdmin } from './tenants'
import { createUserAdmin } from './users'

export function adminModule({ auth, deps }: { auth: AuthPlugin; deps: Pick<Deps, 'db' | 'identity' | 'store' | 'presence'> }) {
  const db = deps.db.db
  const { bus, audit } = deps.identity
  const audited = createAudited(audit)
  return new Elysia({ name: 'voicehelper.admin' })
    .use(tenantRoutes({ auth, tenants: createTenantAdmin({ db, bus, audited }) }))
    .use(userRoutes({ auth, users: createUserAdmin({ db, bus, audited }) }))
    .use(roleRoutes({ auth, roles: createRoleAdmin({ db, bus, audited }) }))
    .use(overviewRoutes({ auth, audit, stats: createStats({ db }) }))
    .use(sessionRoutes({ auth, sessions: createLiveSessions({ store: deps.store, live: deps.identity.live, instance: deps.presence.id }), audited }))
}
