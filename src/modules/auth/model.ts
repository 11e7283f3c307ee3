/** Wire contracts of the auth and API-key routes (contract §2). */
import { t } from 'elysia'

const Email = t.String({ format: 'email', maxLength: 254, examples: ['ada@example.com'] })
const Password = t.String({ minLength: 8, maxLength: 256, examples: ['correct horse battery'] })
const TenantId = t.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$', examples: ['default'] })

export const RegisterBody = t.Object({
  email: Email,
  password: Password,
  username: t.Optional(t.String({ minLength: 1, maxLength: 64 })),
  tenant_id: t.Optional(TenantId),
})

export const LoginBody = t.Object({
  email: t.String({ minLength: 1, maxLength: 254 }),
  password: t.String({ minLength: 1, maxLength: 256 }),
  tenant_id: t.Optional(TenantId),
})

export const RefreshBody = t.Object({ refresh_token: t.String({ minLength: 1, maxLength: 512 }) })

export const UserView = t.Object({
  id: t.String(),
  email: t.String(),
  username: t.String(),
  tenant_id: t.String(),
  roles: t.Array(t.String()),
})

export const TokenPair = t.Object({
  access_token: t.String(),
  refresh_token: t.String(),
  token_type: t.Literal('Bearer'),
  expires_in: t.Integer(),
})

export const LoginResponse = t.Composite([TokenPair, t.Object({ user: UserView })])

export const MeResponse = t.Object({
  user: t.Composite([UserView, t.Object({ status: t.String() })]),
  tenant: t.Object({ id: t.String(), name: t.String(), status: t.String() }),
  permissions: t.Array(t.String()),
})

export const CreateApiKeyBody = t.Object({
  name: t.String({ minLength: 1, maxLength: 100 }),
  permissions: t.Array(t.String({ maxLength: 64 }), { maxItems: 64 }),
  expires_at: t.Optional(t.String({ format: 'date-time' })),
})

export const ApiKeyView = t.Object({
  id: t.String(),
  name: t.String(),
  prefix: t.String(),
  permissions: t.Array(t.String()),
  expires_at: t.Nullable(t.String()),
  revoked_at: t.Nullable(t.String()),
  last_used_at: t.Nullable(t.String()),
  created_at: t.String(),
})

