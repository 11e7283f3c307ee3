/**
 * The access decision (contract §3, the seed's order) as one pure function, plus the grant-set
 * helpers the API needs to show permissions and to refuse widening (API keys, custom roles).
 */
import { anyGrantMatches, grantsCover, isValidPermission, parsePermission } from './permissions'

export interface AccessSubject {
  userId: string
  roles: readonly string[] // role names
  directGrants: readonly string[] // user's own grants
  roleGrants: readonly string[] // already resolved from roles (built-in + custom)
  tenantGrants: readonly string[] // tenant-wide grants every member holds
  /** API keys: the key's own grants; the decision is allowed only if BOTH the creator's decision allows and the key's grants match */
  keyGrants?: readonly string[]
}

export interface AccessResource {
  ownerId: string
  shares?: ReadonlyArray<{ userId: string; permission: 'read' | 'write' }>
}

export type AccessReason =
  | 'super_admin'
  | 'direct_grant'
  | 'role_grant'
  | 'owner'
  | 'share'
  | 'tenant_grant'
  | 'denied'
  | 'key_scope'

export interface AccessDecision {
  allowed: boolean
  reason: AccessReason
}

const SUPER_ADMIN_ROLE = 'super_admin'

// Decisions are shared frozen constants: decide() runs on every request and allocates nothing.
const DECISIONS: Readonly<Record<AccessReason, Readonly<AccessDecision>>> = {
  super_admin: Object.freeze({ allowed: true, reason: 'super_admin' }),
  direct_grant: Object.freeze({ allowed: true, reason: 'direct_grant' }),
  role_grant: Object.freeze({ allowed: true, reason: 'role_grant' }),
  owner: Object.freeze({ allowed: true, reason: 'owner' }),
  share: Object.freeze({ allowed: true, reason: 'share' }),
  tenant_grant: Object.freeze({ allowed: true, reason: 'tenant_grant' }),
  denied: Object.freeze({ allowed: false, reason: 'denied' }),
  key_scope: Object.freeze({ allowed: false, reason: 'key_scope' }),
}

/**
 * Decide whether `subject` may do `required` (a concrete `resource:action`), optionally on one
 * resource. Order: super_admin → direct grants → role grants → owner → shares → tenant grants → deny.
 * A malformed or wildcard `required` is a route-declaration bug and is denied for everyone,
 * super_admin included: failing closed beats guessing what was meant.
 * With `keyGrants` the creator's decision must allow AND a key grant must match, so a key never
 * exceeds its creator even if its stored grants were somehow wider.
 */
export function decide(subject: AccessSubject, required: string, resource?: AccessResource): Readonly<AccessDecision> {
  const creator = decideForCreator(subject, required, resource)
  if (!creator.allowed || subject.keyGrants === undefined) return creator
  return anyGrantMatches(subject.keyGrants, required) ? creator : DECISIONS.key_scope
}

function decideForCreator(subject: AccessSubject, required: string, resource?: AccessResource): Readonly<AccessDecision> {
  const parsed = parsePermission(required)
  if (parsed === null || parsed.resource === '*' || parsed.action === '*') return DECISIONS.denied

  if (subject.roles.includes(SUPER_ADMIN_ROLE)) return DECISIONS.super_admin
  if (anyGrantMatches(subject.directGrants, required)) return DECISIONS.direct_grant
  if (anyGrantMatches(subject.roleGrants, required)) return DECISIONS.role_grant
  if (resource !== undefined) {
    if (ownerAllows(subject.userId, resource, parsed.action)) return DECISIONS.owner
    if (shareAllows(subject.userId, resource, parsed.action)) return DECISIONS.share
  }
  if (anyGrantMatches(subject.tenantGrants, required)) return DECISIONS.tenant_grant
  return DECISIONS.denied
}

/** Owners may read, write and delete their resource; `admin` and `monitor` still need a grant. */
function ownerAllows(userId: string, resource: AccessResource, action: string): boolean {
  if (userId === '' || resource.ownerId !== userId) return false
  return action === 'read' || action === 'write' || action === 'delete'
}

/** A `read` share allows read; a `write` share allows read and write; no share allows delete or admin. */
function shareAllows(userId: string, resource: AccessResource, action: string): boolean {
  if (userId === '' || resource.shares === undefined) return false
  if (action !== 'read' && action !== 'write') return false
  for (const share of resource.shares) {
    if (share.userId !== userId) continue
    if (share.permission === 'write' || action === 'read') return true
  }
  return false
}

/**
 * What `GET /auth/me` shows as `permissions`: the sorted, de-duplicated union of direct, role and
 * tenant grants (malformed entries dropped: they grant nothing, so showing them would mislead).
 * A super_admin shows `*:*` even if its role grants were resolved without it. For an API key, only
 * the key grants its creator's grants cover.
 */
export function effectiveGrants(subject: AccessSubject): string[] {
  const creatorGrants = new Set<string>()
  const sources = [subject.directGrants, subject.roleGrants, subject.tenantGrants]
  for (const source of sources) {
    for (const grant of source) if (isValidPermission(grant)) creatorGrants.add(grant)
  }
  if (subject.roles.includes(SUPER_ADMIN_ROLE)) creatorGrants.add('*:*')
  if (subject.keyGrants === undefined) return [...creatorGrants].sort()
  return keyGrantsWithin([...creatorGrants, ...OWNER_GRANTS], subject.keyGrants).within.sort()
}

/**
 * What every member may do to what they own, whatever their grants (the decision's owner step). A key may
 * carry these too: it is still held to its creator's decision, so on anything but what its creator owns
 * or has shared with them it is refused.
 */
export const OWNER_GRANTS: readonly string[] = Object.freeze([
  'conversation:read',
  'conversation:write',
  'conversation:delete',
  'document:read',
  'document:write',
  'document:delete',
])

/** The grants a subject may give an API key: its own, and the owner's actions on what it owns. */
export function delegableGrants(subject: AccessSubject): string[] {
  return [...effectiveGrants(subject), ...OWNER_GRANTS]
}

export interface KeyGrantSplit {
  /** requested grants the creator's grants cover, de-duplicated, in request order */
  within: string[]
  /** requested grants that would widen the creator (or are malformed): the API names these in its refusal */
  offending: string[]
}

/**
 * Split requested key (or custom-role) grants into those the creator covers and those it does not,
 * so creating a key or role can be refused with the exact offending grants.
 */
export function keyGrantsWithin(creatorGrants: readonly string[], requested: readonly string[]): KeyGrantSplit {
  const within: string[] = []
  const offending: string[] = []
  for (const grant of new Set(requested)) {
    if (grantsCover(creatorGrants, grant)) within.push(grant)
    else offending.push(grant)
  }
  return { within, offending }
}
