import { describe, expect, test } from 'bun:test'
import {
  BUILT_IN_ROLE_NAMES,
  CONCRETE_PERMISSIONS,
  RESOURCES,
  anyGrantMatches,
  builtInRoleGrants,
  isBuiltInRole,
  isValidPermission,
  roleGrants,
} from '../../src/modules/access'

const NO_CUSTOM = new Map<string, string[]>()
const grantsOf = (...names: string[]) => roleGrants(names, NO_CUSTOM)

describe('built-in roles', () => {
  test('are user, admin and super_admin, all with well-formed grants', () => {
    expect([...BUILT_IN_ROLE_NAMES]).toEqual(['user', 'admin', 'super_admin'])
    for (const name of BUILT_IN_ROLE_NAMES) {
      expect(isBuiltInRole(name)).toBe(true)
      expect(builtInRoleGrants(name).every(isValidPermission)).toBe(true)
    }
  })

  test('user chats, talks and manages API keys, with no tenant-wide conversation or document access', () => {
    const user = grantsOf('user')
    for (const p of ['chat:write', 'chat:read', 'voice:write', 'apikey:read', 'apikey:write']) {
      expect(anyGrantMatches(user, p)).toBe(true)
    }
    for (const resource of ['conversation', 'document', 'user', 'role', 'tenant', 'audit', 'system']) {
      for (const action of ['read', 'write', 'delete', 'admin', 'monitor']) {
        expect(anyGrantMatches(user, `${resource}:${action}`)).toBe(false)
      }
    }
    expect(anyGrantMatches(user, 'voice:monitor')).toBe(false)
    expect(anyGrantMatches(user, 'apikey:delete')).toBe(false)
  })

  test('admin holds every action on every resource except tenant and system', () => {
    const admin = grantsOf('admin')
    for (const permission of CONCRETE_PERMISSIONS) {
      const [resource] = permission.split(':')
      const expected = resource !== 'tenant' && resource !== 'system'
      expect([permission, anyGrantMatches(admin, permission)]).toEqual([permission, expected])
    }
    expect(anyGrantMatches(admin, 'voice:monitor')).toBe(true)
    expect(anyGrantMatches(admin, 'audit:read')).toBe(true)
  })

  test('super_admin holds everything', () => {
    const superAdmin = grantsOf('super_admin')
    expect(superAdmin).toEqual(['*:*'])
    for (const permission of CONCRETE_PERMISSIONS) expect(anyGrantMatches(superAdmin, permission)).toBe(true)
    expect(RESOURCES.length * 5).toBe(CONCRETE_PERMISSIONS.length)
  })
})

describe('roleGrants', () => {
  const custom = new Map<string, string[]>([
    ['support', ['conversation:read', 'audit:read']],
    ['user', ['*:*']], // a stored row shadowing a built-in name must be ignored
  ])

  test('unions built-in and custom roles without duplicates', () => {
    expect(roleGrants(['user', 'support', 'user'], custom).sort()).toEqual(
      ['apikey:read', 'apikey:write', 'audit:read', 'chat:write', 'conversation:read', 'voice:write'].sort(),
    )
  })

  test('a custom role cannot redefine a built-in role', () => {
    expect(roleGrants(['user'], custom)).not.toContain('*:*')
    expect(anyGrantMatches(roleGrants(['user'], custom), 'tenant:admin')).toBe(false)
  })

  test('unknown role names grant nothing, including names on Object.prototype', () => {
    expect(roleGrants(['nobody', 'Admin', 'SUPER_ADMIN', '', 'constructor', '__proto__', 'toString'], custom)).toEqual([])
    expect(builtInRoleGrants('constructor')).toEqual([])
    expect(isBuiltInRole('constructor')).toBe(false)
    expect(isBuiltInRole('Admin')).toBe(false)
    expect(isBuiltInRole(42)).toBe(false)
  })

  test('the built-in tables cannot be mutated through the returned arrays', () => {
    const grants = roleGrants(['admin'], NO_CUSTOM)
    grants.push('tenant:*')
    expect(anyGrantMatches(roleGrants(['admin'], NO_CUSTOM), 'tenant:read')).toBe(false)
    expect(Object.isFrozen(builtInRoleGrants('admin'))).toBe(true)
  })
})
