import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import {
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
} from '../../src/modules/access'

// ---- An independent oracle, written from the contract's words rather than from the implementation ----

const CONTRACT_RESOURCES = 'chat conversation voice document user role tenant apikey audit system'.split(' ')
const CONTRACT_ACTIONS = 'read write delete admin monitor'.split(' ')

/** For each action a grant may name: the required actions it satisfies ("write implies read", …). */
const SATISFIES: Record<string, string> = {
  read: 'read',
  write: 'write read',
  delete: 'delete',
  admin: 'admin read write delete',
  monitor: 'monitor',
  '*': 'read write delete admin monitor',
}

/** Expand a grant into every concrete permission it allows; malformed → the empty set. */
function oracleImplied(grant: unknown): Set<string> {
  const out = new Set<string>()
  if (typeof grant !== 'string') return out
  const parts = grant.split(':')
  if (parts.length !== 2) return out
  const [resource, action] = parts as [string, string]
  const resourceOk = resource === '*' || CONTRACT_RESOURCES.includes(resource)
  if (!resourceOk || !Object.hasOwn(SATISFIES, action)) return out
  for (const r of CONTRACT_RESOURCES) {
    if (resource !== '*' && resource !== r) continue
    for (const a of SATISFIES[action]!.split(' ')) out.add(`${r}:${a}`)
  }
  return out
}

const ALL_GRANTS = [...CONTRACT_RESOURCES, '*'].flatMap((r) => [...CONTRACT_ACTIONS, '*'].map((a) => `${r}:${a}`))
const ALL_CONCRETE = CONTRACT_RESOURCES.flatMap((r) => CONTRACT_ACTIONS.map((a) => `${r}:${a}`))

const MALFORMED_STRINGS = [
  '',
  'chat',
  'chat:',
  ':read',
  ':',
  'chat:read:x',
  'chat::read',
  'CHAT:READ',
  'Chat:read',
  'chat:Read',
  'chat: read',
  ' chat:read',
  'chat:read ',
  'chat :read',
  'chat:read\n',
  'foo:read',
  'chat:fly',
  '**:*',
  '*:**',
  'chat:*read',
  '*chat:read',
  'constructor:read',
  '__proto__:*',
  'chat:toString',
]
const NON_STRINGS: unknown[] = [undefined, null, 0, 1, true, {}, [], ['chat', 'read'], { resource: 'chat', action: 'read' }]
const MALFORMED: unknown[] = [...MALFORMED_STRINGS, ...NON_STRINGS]

const asString = (value: unknown) => value as string

describe('the permission vocabulary', () => {
  test('resources and actions are exactly the contract lists', () => {
    expect([...RESOURCES]).toEqual(CONTRACT_RESOURCES as never)
    expect([...ACTIONS]).toEqual(CONTRACT_ACTIONS as never)
    expect([...CONCRETE_PERMISSIONS].sort()).toEqual([...ALL_CONCRETE].sort() as never)
  })

  test('every well-formed grant parses back to itself', () => {
    for (const grant of ALL_GRANTS) {
      const parsed = parsePermission(grant)
      expect(parsed).not.toBeNull()
      expect(`${parsed!.resource}:${parsed!.action}`).toBe(grant)
      expect(isValidPermission(grant)).toBe(true)
    }
  })

  test('only wildcard-free permissions are concrete', () => {
    for (const grant of ALL_GRANTS) expect(isConcretePermission(grant)).toBe(!grant.includes('*'))
  })

  test('malformed strings and non-strings parse to null and are not valid', () => {
    for (const bad of MALFORMED) {
      expect(parsePermission(bad)).toBeNull()
      expect(isValidPermission(bad)).toBe(false)
      expect(isConcretePermission(bad)).toBe(false)
    }
  })
})

describe('grantMatches, exhaustively against the oracle', () => {
  test('every well-formed grant × every concrete permission (66 × 50)', () => {
    let checked = 0
    for (const grant of ALL_GRANTS) {
      const implied = oracleImplied(grant)
      for (const required of ALL_CONCRETE) {
        if (grantMatches(grant, required) !== implied.has(required)) {
          throw new Error(`grantMatches(${grant}, ${required}) should be ${implied.has(required)}`)
        }
        checked++
      }
      expect(impliedPermissions(grant)).toEqual(implied)
    }
    expect(checked).toBe(66 * 50)
  })

  test('a required permission with a wildcard, or malformed, is never matched', () => {
    const badRequired = [...ALL_GRANTS.filter((g) => g.includes('*')), ...MALFORMED]
    for (const grant of ALL_GRANTS) {
      for (const required of badRequired) expect(grantMatches(grant, asString(required))).toBe(false)
    }
  })

  test('malformed grants never match anything', () => {
    for (const grant of MALFORMED) {
      for (const required of [...ALL_CONCRETE, ...ALL_GRANTS]) {
        expect(grantMatches(asString(grant), required)).toBe(false)
      }
    }
  })

  test('the rules the brief calls out', () => {
    expect(grantMatches('*:*', 'system:monitor')).toBe(true)
    expect(grantMatches('chat:*', 'chat:monitor')).toBe(true)
    expect(grantMatches('chat:*', 'voice:read')).toBe(false)
    expect(grantMatches('*:read', 'audit:read')).toBe(true)
    expect(grantMatches('*:read', 'audit:write')).toBe(false)
    expect(grantMatches('*:write', 'tenant:read')).toBe(true) // write ⇒ read holds with a wildcard resource
    expect(grantMatches('*:admin', 'user:delete')).toBe(true)
    expect(grantMatches('chat:admin', 'chat:monitor')).toBe(false) // admin does not imply monitor
    expect(grantMatches('chat:write', 'chat:delete')).toBe(false)
    expect(grantMatches('chat:read', 'chat:write')).toBe(false)
    expect(grantMatches('chat:monitor', 'chat:read')).toBe(false)
  })

  test('anyGrantMatches is "some grant matches"', () => {
    expect(anyGrantMatches([], 'chat:read')).toBe(false)
    expect(anyGrantMatches(['bogus', 'chat:write'], 'chat:read')).toBe(true)
    expect(anyGrantMatches(['voice:*', 'CHAT:READ'], 'chat:read')).toBe(false)
  })
})

describe('grantsCover', () => {
  test('examples', () => {
    expect(grantsCover(['chat:*'], 'chat:write')).toBe(true)
    expect(grantsCover(['chat:write'], 'chat:*')).toBe(false)
    expect(grantsCover(['chat:write'], 'chat:read')).toBe(true)
    expect(grantsCover(['chat:read'], 'chat:write')).toBe(false)
    expect(grantsCover(['*:*'], '*:*')).toBe(true)
    expect(grantsCover(['chat:*', 'voice:*'], '*:read')).toBe(false)
    // the union counts: all five actions spelled out cover the wildcard
    expect(grantsCover(['chat:read', 'chat:write', 'chat:delete', 'chat:admin', 'chat:monitor'], 'chat:*')).toBe(true)
    expect(grantsCover(['chat:admin', 'chat:monitor'], 'chat:*')).toBe(true)
    expect(grantsCover([], 'chat:read')).toBe(false)
  })

  test('a malformed wanted grant is never covered, even by *:*', () => {
    for (const bad of MALFORMED) expect(grantsCover(['*:*'], asString(bad))).toBe(false)
  })
})

// ---- Properties ----

const validGrant = fc.constantFrom(...ALL_GRANTS)
const concrete = fc.constantFrom(...ALL_CONCRETE)
/** Near misses of real grants (case, spaces, extra parts) plus arbitrary strings and non-strings. */
const malformed: fc.Arbitrary<unknown> = fc
  .oneof(
    fc.constantFrom(...MALFORMED),
    fc.tuple(validGrant, fc.constantFrom(' ', ':', ':x', 'x', '\t', '*')).map(([g, extra]) => g + extra),
    fc.tuple(fc.constantFrom(' ', ':', 'x', '*'), validGrant).map(([extra, g]) => extra + g),
    validGrant.filter((g) => g !== '*:*').map((g) => g.toUpperCase()),
    fc.string(),
    fc.anything(),
  )
  .filter((value) => !ALL_GRANTS.includes(value as string))
const anyGrant = fc.oneof(validGrant, malformed.map(asString))

function oracleUnion(grants: readonly string[]): Set<string> {
  const out = new Set<string>()
  for (const grant of grants) for (const p of oracleImplied(grant)) out.add(p)
  return out
}

describe('grant properties', () => {
  test('anyGrantMatches agrees with the oracle on arbitrary grant lists', () => {
    fc.assert(
      fc.property(fc.array(anyGrant, { maxLength: 6 }), concrete, (grants, required) => {
        expect(anyGrantMatches(grants, required)).toBe(oracleUnion(grants).has(required))
      }),
    )
  })

  test('monotonicity: adding grants never removes access', () => {
    fc.assert(
      fc.property(
        fc.array(anyGrant, { maxLength: 5 }),
        fc.array(anyGrant, { maxLength: 5 }),
        concrete,
        (grants, extra, required) => {
          if (anyGrantMatches(grants, required)) expect(anyGrantMatches([...grants, ...extra], required)).toBe(true)
          if (anyGrantMatches(grants, required)) expect(anyGrantMatches([...extra, ...grants], required)).toBe(true)
        },
      ),
    )
  })

  test('*:* matches every valid permission, whatever else is held', () => {
    fc.assert(
      fc.property(fc.array(anyGrant, { maxLength: 4 }), concrete, (others, required) => {
        expect(anyGrantMatches([...others, '*:*'], required)).toBe(true)
      }),
    )
  })

  test('malformed grants never match', () => {
    fc.assert(
      fc.property(malformed, fc.oneof(concrete, validGrant), (grant, required) => {
        expect(grantMatches(asString(grant), required)).toBe(false)
      }),
    )
  })

  test('grantsCover(a, b) ⇔ implied(b) ⊆ implied(a), for well-formed b', () => {
    fc.assert(
      fc.property(fc.array(anyGrant, { maxLength: 5 }), validGrant, (holder, wanted) => {
        const held = oracleUnion(holder)
        const subset = [...oracleImplied(wanted)].every((p) => held.has(p))
        expect(grantsCover(holder, wanted)).toBe(subset)
      }),
      { numRuns: 300 },
    )
  })
})
