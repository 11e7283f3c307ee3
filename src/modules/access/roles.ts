/**
 * Built-in roles as data (contract §3). Custom roles live in the `roles` table per tenant and are
 * passed in by the caller; this module never reads storage.
 */
import type { Grant } from './permissions'

export const BUILT_IN_ROLE_NAMES = ['user', 'admin', 'super_admin'] as const
export type BuiltInRoleName = (typeof BUILT_IN_ROLE_NAMES)[number]

/**
 * `user` reaches conversations and documents only through ownership and shares (decide.ts), so it
 * holds no tenant-wide conversation or document grant. `apikey:write` lets it manage its own keys;
 * the API-key routes scope that to keys the caller created.
 */
const USER_GRANTS: readonly Grant[] = ['chat:write', 'voice:write', 'apikey:read', 'apikey:write']

/** Everything in its own tenant except `tenant:*` and `system:*`, spelled out so nothing new slips in. */
const ADMIN_GRANTS: readonly Grant[] = [
  'chat:*',
  'conversation:*',
  'voice:*', // includes voice:monitor (live session view)
  'document:*',
  'user:*',
  'role:*',
  'apikey:*',
  'audit:*', // includes audit:read (audit log)
]

/**
 * Everything. The "all tenants" half is not a grant: the auth layer honours `X-Tenant-ID` only for
 * this role (contract §3), and decide() short-circuits on the role name before any grant is checked.
 */
const SUPER_ADMIN_GRANTS: readonly Grant[] = ['*:*']

// A Map, not an object literal, so names like `constructor` or `__proto__` resolve to nothing.
const BUILT_IN_ROLES: ReadonlyMap<string, readonly Grant[]> = new Map<BuiltInRoleName, readonly Grant[]>([
  ['user', Object.freeze(USER_GRANTS)],
  ['admin', Object.freeze(ADMIN_GRANTS)],
  ['super_admin', Object.freeze(SUPER_ADMIN_GRANTS)],
])

/** True for `user`, `admin`, `super_admin`: the admin API must refuse custom roles with these names. */
export function isBuiltInRole(name: unknown): name is BuiltInRoleName {
  return typeof name === 'string' && BUILT_IN_ROLES.has(name)
}

/** The grants of one built-in role, or an empty list for any other name. */
export function builtInRoleGrants(name: string): readonly Grant[] {
  return BUILT_IN_ROLES.get(name) ?? []
}

/**
 * The de-duplicated union of the grants of every named role. Built-in names always resolve to the
 * built-in grants (a custom role stored under such a name is ignored, so it cannot redefine `user`);
 * unknown names grant nothing.
 */
export function roleGrants(
  roleNames: readonly string[],
  customRoles: ReadonlyMap<string, readonly string[]>,
): string[] {
  const grants = new Set<string>()
  for (const name of roleNames) {
    const roleGrantList = BUILT_IN_ROLES.get(name) ?? customRoles.get(name) ?? []
    for (const grant of roleGrantList) grants.add(grant)
  }
  return [...grants]
}
