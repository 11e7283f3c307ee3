/**
 * Access control as pure functions: permission grammar and matching, built-in roles, the decision.
 * No framework, storage or I/O here; the auth layer loads the data and calls these.
 */
export {
  ACTIONS,
  CONCRETE_PERMISSIONS,
  RESOURCES,
  anyGrantMatches,
  grantMatches,
  grantsCover,
  impliedPermissions,
  isConcretePermission,
  isValidPermission,
  parsePermission,
} from './permissions'
export type { Action, ConcretePermission, Grant, ParsedPermission, Resource } from './permissions'
export { BUILT_IN_ROLE_NAMES, builtInRoleGrants, isBuiltInRole, roleGrants } from './roles'
export type { BuiltInRoleName } from './roles'
export { decide, delegableGrants, effectiveGrants, keyGrantsWithin, OWNER_GRANTS } from './decide'
export type { AccessDecision, AccessReason, AccessResource, AccessSubject, KeyGrantSplit } from './decide'
