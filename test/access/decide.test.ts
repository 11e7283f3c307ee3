import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import {
  CONCRETE_PERMISSIONS,
  type AccessResource,
  type AccessSubject,
  anyGrantMatches,
  decide,
  delegableGrants,
  effectiveGrants,
  keyGrantsWithin,
  roleGrants,
} from '../../src/modules/access'

function subject(overrides: Partial<AccessSubject> = {}): AccessSubject {
  const roles = overrides.roles ?? ['user']
  return {
    userId: 'u1',
    roles,
    directGrants: [],
    roleGrants: roleGrants(roles, new Map()),
    tenantGrants: [],
    ...overrides,
  }
}

const ownedByMe: AccessResource = { ownerId: 'u1' }
const ownedByOther: AccessResource = { ownerId: 'u2' }

describe('decide: every reason is reachable, in the seed order', () => {
  test('super_admin', () => {
    expect(decide(subject({ roles: ['super_admin'], roleGrants: [] }), 'system:admin')).toEqual({
      allowed: true,
      reason: 'super_admin',
    })
  })

  test('direct grant comes before role grant', () => {
    const s = subject({ roles: ['admin'], roleGrants: roleGrants(['admin'], new Map()), directGrants: ['chat:read'] })
    expect(decide(s, 'chat:read').reason).toBe('direct_grant')
    expect(decide(s, 'chat:write').reason).toBe('role_grant')
  })

  test('role grant comes before ownership', () => {
    expect(decide(subject(), 'chat:read', ownedByMe).reason).toBe('role_grant')
  })

  test('owner, then share, then tenant grant, then denied', () => {
    const s = subject({ tenantGrants: ['document:read'] })
    expect(decide(s, 'document:write', ownedByMe).reason).toBe('owner')
    expect(decide(s, 'document:write', { ownerId: 'u2', shares: [{ userId: 'u1', permission: 'write' }] }).reason).toBe(
      'share',
    )
    expect(decide(s, 'document:read', ownedByOther).reason).toBe('tenant_grant')
    expect(decide(s, 'document:read').reason).toBe('tenant_grant')
    expect(decide(s, 'document:write', ownedByOther)).toEqual({ allowed: false, reason: 'denied' })
  })

  test('key_scope', () => {
    const s = subject({ keyGrants: ['chat:read'] })
    expect(decide(s, 'chat:write')).toEqual({ allowed: false, reason: 'key_scope' })
  })
})

describe('decide: ownership and shares', () => {
  const plainUser = subject()

  test('an owner may read, write and delete, but not admin or monitor', () => {
    expect(decide(plainUser, 'conversation:read', ownedByMe).allowed).toBe(true)
    expect(decide(plainUser, 'conversation:write', ownedByMe).allowed).toBe(true)
    expect(decide(plainUser, 'conversation:delete', ownedByMe).allowed).toBe(true)
    expect(decide(plainUser, 'conversation:admin', ownedByMe).allowed).toBe(false)
    expect(decide(plainUser, 'voice:monitor', ownedByMe).allowed).toBe(false)
  })

  test('without a resource, a plain user has no conversation or document access', () => {
    expect(decide(plainUser, 'conversation:read').allowed).toBe(false)
    expect(decide(plainUser, 'document:read', ownedByOther).allowed).toBe(false)
  })

  test('a read share allows read only; a write share allows read and write; neither allows delete or admin', () => {
    const readShared: AccessResource = { ownerId: 'u2', shares: [{ userId: 'u1', permission: 'read' }] }
    const writeShared: AccessResource = { ownerId: 'u2', shares: [{ userId: 'u1', permission: 'write' }] }
    const expectations: [AccessResource, string, boolean][] = [
      [readShared, 'document:read', true],
      [readShared, 'document:write', false],
      [readShared, 'document:delete', false],
      [writeShared, 'document:read', true],
      [writeShared, 'document:write', true],
      [writeShared, 'document:delete', false],
      [writeShared, 'document:admin', false],
      [writeShared, 'document:monitor', false],
    ]
    for (const [resource, required, allowed] of expectations) {
      expect([required, decide(plainUser, required, resource).allowed]).toEqual([required, allowed])
    }
  })

  test("a share for someone else grants nothing; several shares are all considered", () => {
    const others: AccessResource = { ownerId: 'u2', shares: [{ userId: 'u3', permission: 'write' }] }
    expect(decide(plainUser, 'document:read', others).allowed).toBe(false)
    const mixed: AccessResource = {
      ownerId: 'u2',
      shares: [
        { userId: 'u1', permission: 'read' },
        { userId: 'u1', permission: 'write' },
      ],
    }
    expect(decide(plainUser, 'document:write', mixed).reason).toBe('share')
  })

  test('an empty user id owns nothing', () => {
    expect(decide(subject({ userId: '' }), 'document:read', { ownerId: '' }).allowed).toBe(false)
  })
})

describe('decide: grants from roles, tenants and keys', () => {
  test("a custom role's grants apply; unknown role names grant nothing", () => {
    const custom = new Map([['support', ['conversation:read']]])
    const support = subject({ roles: ['support'], roleGrants: roleGrants(['support'], custom) })
    expect(decide(support, 'conversation:read')).toEqual({ allowed: true, reason: 'role_grant' })
    expect(decide(support, 'conversation:write').allowed).toBe(false)
    const ghost = subject({ roles: ['ghost'], roleGrants: roleGrants(['ghost'], custom) })
    for (const p of CONCRETE_PERMISSIONS) expect(decide(ghost, p).allowed).toBe(false)
  })

  test('tenant-wide grants apply to every member', () => {
    const s = subject({ roles: [], roleGrants: [], tenantGrants: ['document:read'] })
    expect(decide(s, 'document:read')).toEqual({ allowed: true, reason: 'tenant_grant' })
    expect(decide(s, 'document:write').allowed).toBe(false)
  })

  test('an API key is limited to its grants, and never exceeds its creator', () => {
    const key = subject({ keyGrants: ['chat:write', 'conversation:read', 'system:admin'] })
    expect(decide(key, 'chat:write')).toEqual({ allowed: true, reason: 'role_grant' })
    expect(decide(key, 'voice:write')).toEqual({ allowed: false, reason: 'key_scope' })
    expect(decide(key, 'conversation:read', ownedByMe)).toEqual({ allowed: true, reason: 'owner' })
    // the key names system:admin but its creator does not hold it: denied by the creator, not by the key
    expect(decide(key, 'system:admin')).toEqual({ allowed: false, reason: 'denied' })
    // a super_admin's key is still just a key
    const adminKey = subject({ roles: ['super_admin'], roleGrants: ['*:*'], keyGrants: ['audit:read'] })
    expect(decide(adminKey, 'audit:read').allowed).toBe(true)
    expect(decide(adminKey, 'tenant:write').reason).toBe('key_scope')
    // an empty key scope allows nothing
    expect(decide(subject({ keyGrants: [] }), 'chat:write').reason).toBe('key_scope')
  })

  test('a malformed or wildcard required permission is denied, even for super_admin', () => {
    const superAdmin = subject({ roles: ['super_admin'], roleGrants: ['*:*'], directGrants: ['*:*'] })
    for (const required of ['chat:*', '*:*', 'chat', 'CHAT:READ', '']) {
      expect(decide(superAdmin, required, { ownerId: 'u1' })).toEqual({ allowed: false, reason: 'denied' })
    }
  })

  test('decisions are frozen so a caller cannot turn a denial into an allow', () => {
    const decision = decide(subject(), 'tenant:admin')
    expect(Object.isFrozen(decision)).toBe(true)
  })
})

describe('effectiveGrants and keyGrantsWithin', () => {
  test('effective grants are the sorted, de-duplicated, well-formed union', () => {
    const s = subject({ directGrants: ['voice:write', 'bogus'], tenantGrants: ['document:read', 'chat:write'] })
    expect(effectiveGrants(s)).toEqual(['apikey:read', 'apikey:write', 'chat:write', 'document:read', 'voice:write'])
  })

  test('a super_admin shows *:*; a key shows only what its creator covers', () => {
    expect(effectiveGrants(subject({ roles: ['super_admin'], roleGrants: [] }))).toEqual(['*:*'])
    const key = subject({ keyGrants: ['voice:write', 'chat:read', 'tenant:admin', 'chat:*'] })
    expect(effectiveGrants(key)).toEqual(['chat:read', 'voice:write'])
  })

  test("a plain user may give a key the owner's actions, and the key uses them on what its creator owns only", () => {
    const user = subject({ roleGrants: ['chat:write'] })
    expect(keyGrantsWithin(delegableGrants(user), ['chat:write', 'conversation:write', 'conversation:admin', 'conversation:*'])).toEqual({
      within: ['chat:write', 'conversation:write'],
      offending: ['conversation:admin', 'conversation:*'],
    })
    const key = { ...user, keyGrants: ['chat:write', 'conversation:write'] }
    expect(decide(key, 'conversation:write', { ownerId: key.userId }).allowed).toBe(true)
    expect(decide(key, 'conversation:write', { ownerId: 'someone-else' })).toEqual({ allowed: false, reason: 'denied' })
    expect(decide(key, 'conversation:delete', { ownerId: key.userId })).toEqual({ allowed: false, reason: 'key_scope' })
    expect(effectiveGrants(key)).toEqual(['chat:write', 'conversation:write'])
  })

  test('keyGrantsWithin splits requested grants into covered and offending', () => {
    const creator = ['chat:*', 'voice:write']
    expect(keyGrantsWithin(creator, ['chat:read', 'voice:read', 'voice:*', 'chat:read', 'nonsense', '*:*'])).toEqual({
      within: ['chat:read', 'voice:read'],
      offending: ['voice:*', 'nonsense', '*:*'],
    })
    expect(keyGrantsWithin(['*:*'], ['*:*', 'system:monitor'])).toEqual({ within: ['*:*', 'system:monitor'], offending: [] })
  })
})

// ---- Properties ----

const USERS = ['u1', 'u2', 'u3']
const GRANT_POOL = [
  ...CONCRETE_PERMISSIONS,
  'chat:*',
  'document:*',
  '*:read',
  '*:write',
  '*:admin',
  '*:*',
  'bogus',
  'CHAT:READ',
]
const grants = fc.array(fc.constantFrom(...GRANT_POOL), { maxLength: 4 })
const concrete = fc.constantFrom(...CONCRETE_PERMISSIONS)
const share = fc.record({ userId: fc.constantFrom(...USERS), permission: fc.constantFrom('read' as const, 'write' as const) })
const resource: fc.Arbitrary<AccessResource> = fc.record(
  { ownerId: fc.constantFrom(...USERS), shares: fc.array(share, { maxLength: 3 }) },
  { requiredKeys: ['ownerId'] },
)
const accessSubject: fc.Arbitrary<AccessSubject> = fc.record(
  {
    userId: fc.constantFrom(...USERS),
    roles: fc.subarray(['user', 'admin', 'support', 'ghost']),
    directGrants: grants,
    roleGrants: grants,
    tenantGrants: grants,
    keyGrants: grants,
  },
  { requiredKeys: ['userId', 'roles', 'directGrants', 'roleGrants', 'tenantGrants'] },
)
const withoutKey = ({ keyGrants: _ignored, ...rest }: AccessSubject): AccessSubject => rest

describe('decide properties', () => {
  test('an API key never allows more than its creator, nor more than its own grants', () => {
    fc.assert(
      fc.property(accessSubject, grants, concrete, fc.option(resource, { nil: undefined }), (s, keyGrants, p, r) => {
        const withKey = decide({ ...s, keyGrants }, p, r)
        if (withKey.allowed) {
          expect(decide(withoutKey(s), p, r).allowed).toBe(true)
          expect(anyGrantMatches(keyGrants, p)).toBe(true)
        }
      }),
    )
  })

  test('a super_admin is always allowed any concrete permission', () => {
    fc.assert(
      fc.property(accessSubject, concrete, fc.option(resource, { nil: undefined }), (s, p, r) => {
        const superAdmin = withoutKey({ ...s, roles: [...s.roles, 'super_admin'] })
        expect(decide(superAdmin, p, r)).toEqual({ allowed: true, reason: 'super_admin' })
      }),
    )
  })

  test('a denied subject stays denied on any resource it neither owns nor has a share on', () => {
    fc.assert(
      fc.property(accessSubject, concrete, resource, (s, p, r) => {
        if (decide(s, p).allowed) return
        const foreign: AccessResource = {
          ownerId: r.ownerId === s.userId ? `not-${s.userId}` : r.ownerId,
          shares: (r.shares ?? []).filter((sh) => sh.userId !== s.userId),
        }
        expect(decide(s, p, foreign).allowed).toBe(false)
      }),
    )
  })

  test('adding grants from any source never turns an allow into a denial', () => {
    fc.assert(
      fc.property(accessSubject, grants, concrete, fc.option(resource, { nil: undefined }), (s, extra, p, r) => {
        if (!decide(s, p, r).allowed) return
        const widened: AccessSubject = {
          ...s,
          directGrants: [...s.directGrants, ...extra],
          roleGrants: [...s.roleGrants, ...extra],
          tenantGrants: [...s.tenantGrants, ...extra],
        }
        expect(decide(widened, p, r).allowed).toBe(true)
      }),
    )
  })

  test('without a key, allowed ⇔ super_admin, a grant, ownership, or a share allows it', () => {
    fc.assert(
      fc.property(accessSubject, concrete, fc.option(resource, { nil: undefined }), (s0, p, r) => {
        const s = withoutKey(s0)
        const action = p.split(':')[1]
        const own = r !== undefined && r.ownerId === s.userId && ['read', 'write', 'delete'].includes(action!)
        const shared =
          r?.shares?.some((sh) => sh.userId === s.userId && (action === 'read' || (action === 'write' && sh.permission === 'write'))) ??
          false
        const byGrant = [s.directGrants, s.roleGrants, s.tenantGrants].some((g) => anyGrantMatches(g, p))
        const expected = s.roles.includes('super_admin') || byGrant || own || shared
        expect(decide(s, p, r).allowed).toBe(expected)
      }),
    )
  })
})

test('decide is cheap enough to run on every request', () => {
  const s = subject({ roles: ['user'], directGrants: ['voice:write'], tenantGrants: ['document:read'] })
  const r: AccessResource = { ownerId: 'u2', shares: [{ userId: 'u1', permission: 'read' }] }
  const started = performance.now()
  for (let i = 0; i < 100_000; i++) decide(s, 'document:write', r)
  // ~10 ms on a laptop; the bound only catches an accidental regex or allocation per call
  expect(performance.now() - started).toBeLessThan(1_000)
})
