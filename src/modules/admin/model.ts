/** Wire contracts of /api/v2/admin (contract §7). Permission and role names are checked by the services. */
import { t } from 'elysia'
import { QUOTA_MAX } from '../../db/schema'
import { ErrorResponse, idPage, Page, pageKeyedBy } from '../../http/models'
import { UserView as AuthUserView } from '../auth/model'

export { ErrorResponse }

const TENANT_ID = '^[a-z0-9][a-z0-9_-]{0,62}$'
const ROLE_NAME = '^[a-z][a-z0-9_.-]{0,62}$'
const TenantId = t.String({ pattern: TENANT_ID, examples: ['acme'] })
const Permission = t.String({ minLength: 1, maxLength: 64, examples: ['chat:write'] })
const Permissions = t.Array(Permission, { maxItems: 64 })
const RoleName = t.String({ pattern: ROLE_NAME, examples: ['auditor'] })

export const TenantPage = pageKeyedBy(TENANT_ID)
export const RolePage = pageKeyedBy(ROLE_NAME)
const Timestamp = t.String({ format: 'date-time' })


/** error statuses every admin route may answer, for the OpenAPI document */
export const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 429: ErrorResponse }

const listOf = <T extends ReturnType<typeof t.Object>>(item: T) => t.Object({ items: t.Array(item), next_cursor: t.Nullable(t.String()) })

// ---- tenants

const QuotaValue = t.Integer({ minimum: 0, maximum: QUOTA_MAX })
/** absent keys fall back to the gateway defaults, 0 means unlimited */
export const Quotas = t.Object(
  {
    requests_per_minute_per_user: t.Optional(QuotaValue),
    requests_per_minute: t.Optional(QuotaValue),
    concurrent_streams_per_user: t.Optional(QuotaValue),
    concurrent_voice_sessions: t.Optional(QuotaValue),
    concurrent_voice_sessions_per_user: t.Optional(QuotaValue),
    daily_tokens: t.Optional(QuotaValue),
  },
  { additionalProperties: false },
)

/**
 * Quotas as clients send them: a record, because Elysia silently drops unknown keys of a closed object
 * and a misspelt quota must be refused, not ignored. The service names unknown keys (QUOTA_KEYS).
 */
const QuotasInput = t.Record(t.String({ maxLength: 64 }), QuotaValue, { examples: [{ requests_per_minute_per_user: 60, daily_tokens: 0 }] })

const TenantStatus = t.Union([t.Literal('active'), t.Literal('suspended')])

export const TenantView = t.Object({
  id: t.String(),
  name: t.String(),
  status: TenantStatus,
  quotas: Quotas,
  created_at: Timestamp,
  updated_at: Timestamp,
})
export const TenantList = listOf(TenantView)

export const CreateTenantBody = t.Object({
  id: TenantId,
  name: t.String({ minLength: 1, maxLength: 200 }),
  quotas: t.Optional(QuotasInput),
})

export const UpdateTenantBody = t.Object(
  {
    name: t.Optional(t.String({ minLength: 1, maxLength: 200 })),
    status: t.Optional(TenantStatus),
    /** replaces the whole quota object */
    quotas: t.Optional(QuotasInput),
  },
  { minProperties: 1 },
)

// ---- users

const UserStatus = t.Union([t.Literal('active'), t.Literal('disabled')])

export const UserView = t.Composite([
  AuthUserView,
  t.Object({
    permissions: t.Array(t.String()),
    status: UserStatus,
    created_at: Timestamp,
    updated_at: Timestamp,
    last_login_at: t.Nullable(Timestamp),
  }),
])
export const UserList = listOf(UserView)

export const CreateUserBody = t.Object({
  email: t.String({ format: 'email', maxLength: 254, examples: ['ada@example.com'] }),
  password: t.String({ minLength: 8, maxLength: 256 }),
  username: t.Optional(t.String({ minLength: 1, maxLength: 64 })),
  roles: t.Optional(t.Array(RoleName, { maxItems: 32 })),
  tenant_id: t.Optional(TenantId),
})

export const UpdateUserBody = t.Object(
  {
    roles: t.Optional(t.Array(RoleName, { maxItems: 32 })),
    status: t.Optional(UserStatus),
    username: t.Optional(t.String({ minLength: 1, maxLength: 64 })),
  },
  { minProperties: 1 },
)

export const UserListQuery = t.Composite([idPage('usr'), t.Object({ tenant_id: t.Optional(TenantId) })])

export const PermissionsBody = t.Object({ permissions: Permissions })

// ---- roles and tenant-wide grants

export const RoleView = t.Object({
  name: t.String(),
  permissions: t.Array(t.String()),
  built_in: t.Boolean(),
  created_at: t.Nullable(Timestamp),
  updated_at: t.Nullable(Timestamp),
})
export const RoleList = listOf(RoleView)

export const CreateRoleBody = t.Object({ name: RoleName, permissions: Permissions })

export const TenantPermissionsView = t.Object({
  tenant_id: t.String(),
  permissions: t.Array(t.String()),
  updated_at: t.Nullable(Timestamp),
})

// ---- audit log and stats

export const AuditQuery = t.Composite([
  idPage('aud'),
  t.Object({ action: t.Optional(t.String({ minLength: 1, maxLength: 100 })), tenant_id: t.Optional(TenantId) }),
])

export const AuditView = t.Object({
  id: t.String(),
  tenant_id: t.Nullable(t.String()),
  actor_id: t.Nullable(t.String()),
  actor_type: t.String(),
  action: t.String(),
  target_type: t.Nullable(t.String()),
  target_id: t.Nullable(t.String()),
  outcome: t.String(),
  ip: t.Nullable(t.String()),
  user_agent: t.Nullable(t.String()),
  request_id: t.Nullable(t.String()),
  details: t.Unknown(),
  created_at: Timestamp,
})
export const AuditList = listOf(AuditView)

export const StatsView = t.Object({
  tenant_id: t.String(),
  users: t.Object({ total: t.Integer(), active: t.Integer(), disabled: t.Integer() }),
  conversations: t.Integer(),
  messages: t.Integer(),
  api_keys: t.Object({ active: t.Integer() }),
})

// ---- live sessions (chat streams and voice sessions, across instances)

const SessionKind = t.Union([t.Literal('chat'), t.Literal('voice')])

export const SessionListQuery = t.Composite([Page, t.Object({ tenant_id: t.Optional(TenantId), kind: t.Optional(SessionKind) })])

export const SessionParams = t.Object({ id: t.String({ minLength: 1, maxLength: 256, examples: ['chat:acme:req-42'] }) })

export const LiveSessionView = t.Object({
  id: t.String({ description: '`<kind>:<tenant_id>:<ref>`: what DELETE takes' }),
  kind: SessionKind,
  tenant_id: t.String(),
  user_id: t.String(),
  conversation_id: t.Nullable(t.String()),
  ref: t.String({ description: "the chat stream's request_id, or the voice session's id" }),
  started_at: Timestamp,
  instance: t.String({ description: 'the gateway instance holding it' }),
})

export const LiveSessionList = t.Object({
  items: t.Array(LiveSessionView),
  next_cursor: t.Nullable(t.String()),
  partial: t.Boolean({ description: 'an instance did not answer within 1 s: its sessions are missing' }),
})

export const EndedLiveSession = t.Object({ id: t.String(), kind: SessionKind, status: t.Literal('ended') })
