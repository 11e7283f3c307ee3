/**
 * The rules that keep administration from being a way up: pure functions over grant lists.
 *
 * - Nobody hands out (or takes away) a grant they do not hold themselves, whether as a direct grant, a
 *   custom role's grant, a tenant-wide grant or by assigning a role; only a super_admin makes super_admins.
 * - Nobody manages a user who holds something they lack (an admin cannot disable a super_admin).
 * - Nobody takes anything away from themselves: that is how a tenant loses its last administrator.
 */
import { effectiveGrants, grantsCover, isBuiltInRole, isValidPermission, roleGrants } from '../access'
import { type Actor, adminErrors } from './actor'

export type CustomRoles = ReadonlyMap<string, readonly string[]>

const SUPER_ADMIN = 'super_admin'

/** 400 naming every malformed grant; returns the list de-duplicated, in request order */
export function validPermissions(permissions: readonly string[], field = 'permissions'): string[] {
  const unique = [...new Set(permissions)]
  const malformed = unique.filter((p) => !isValidPermission(p))
  if (malformed.length) throw adminErrors.validation(field, 'Unknown permissions', malformed)
  return unique
}

/** grants in `grants` the actor's own grants do not cover (malformed ones grant nothing and are skipped) */
function uncovered(actor: Actor, grants: Iterable<string>): string[] {
  const out = new Set<string>()
  for (const grant of grants) if (isValidPermission(grant) && !grantsCover(actor.grants, grant)) out.add(grant)
  return [...out]
}

/** 403 naming the grants the actor would hand out or take away without holding them */
export function assertCanGrant(actor: Actor, grants: Iterable<string>): void {
  const wider = uncovered(actor, grants)
  if (wider.length) throw adminErrors.denied('You cannot grant or revoke permissions you do not hold', { permissions: wider })
}

/**
 * Roles a user may be given: 400 for names that are neither built-in nor a custom role of the user's
 * tenant; 403 for roles granting anything the actor lacks. Returns the names de-duplicated.
 */
export function assignableRoles(actor: Actor, roles: readonly string[], customRoles: CustomRoles): string[] {
  const unique = [...new Set(roles)]
  const unknown = unique.filter((r) => !isBuiltInRole(r) && !customRoles.has(r))
  if (unknown.length) throw adminErrors.validation('roles', 'Unknown roles', unknown)
  const denied = unique.filter((r) => (r === SUPER_ADMIN ? !actor.superAdmin : uncovered(actor, roleGrants([r], customRoles)).length > 0))
  if (denied.length) throw adminErrors.denied('You cannot assign roles granting permissions you do not hold', { roles: denied })
  return unique
}

/** 403 unless the actor holds everything the target user holds through roles and direct grants */
export function assertCanManageUser(actor: Actor, target: { roles: readonly string[]; permissions: readonly string[] }, customRoles: CustomRoles): void {
  if (target.roles.includes(SUPER_ADMIN) && !actor.superAdmin) {
    throw adminErrors.denied('Only a super_admin may manage a super_admin', { roles: [SUPER_ADMIN] })
  }
  const wider = uncovered(actor, [...roleGrants(target.roles, customRoles), ...target.permissions])
  if (wider.length) throw adminErrors.denied('You cannot manage a user who holds permissions you lack', { permissions: wider })
}

export interface GrantSources {
  roles: readonly string[]
  directGrants: readonly string[]
  customRoles: CustomRoles
  tenantGrants: readonly string[]
}

/**
 * 400 SELF_LOCKOUT when a change would leave the actor with less than they hold now. Callers pass the
 * actor's grant sources as they would be after the change (their roles, a role they hold redefined,
 * their tenant's grants replaced). Checked against the person, not an API key's narrower grants.
 */
export function assertNoSelfDemotion(actor: Actor, after: GrantSources): void {
  const before = effectiveGrants({ ...actor.subject, keyGrants: undefined })
  const afterGrants = effectiveGrants({
    userId: actor.id,
    roles: after.roles,
    directGrants: after.directGrants,
    roleGrants: roleGrants(after.roles, after.customRoles),
    tenantGrants: after.tenantGrants,
  })
  const lost = before.filter((g) => !grantsCover(afterGrants, g))
  if (actor.subject.roles.includes(SUPER_ADMIN) && !after.roles.includes(SUPER_ADMIN)) lost.push(SUPER_ADMIN)
  if (lost.length) throw adminErrors.selfLockout('You cannot take permissions or roles away from yourself', { lost })
}
