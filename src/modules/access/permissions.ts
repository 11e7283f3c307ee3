/**
 * Permission grammar and grant matching (contract §3), as pure data and lookups.
 *
 * There are only 11 × 6 = 66 well-formed grants and 50 concrete permissions, so everything is
 * precomputed at module load: parsing is one Map lookup returning a shared frozen object, and
 * matching is a Set membership test. Nothing on the per-request path allocates or runs a regex.
 */

export const RESOURCES = [
  'chat',
  'conversation',
  'voice',
  'document',
  'user',
  'role',
  'tenant',
  'apikey',
  'audit',
  'system',
] as const
export const ACTIONS = ['read', 'write', 'delete', 'admin', 'monitor'] as const

export type Resource = (typeof RESOURCES)[number]
export type Action = (typeof ACTIONS)[number]
/** What a route requires: never a wildcard. Usable as a literal type in route declarations. */
export type ConcretePermission = `${Resource}:${Action}`
/** What a user, role, tenant or key may hold: either side may be `*`. */
export type Grant = `${Resource | '*'}:${Action | '*'}`

export interface ParsedPermission {
  readonly resource: Resource | '*'
  readonly action: Action | '*'
}

/** Which concrete actions holding an action grants: write ⇒ read; admin ⇒ read, write, delete (not monitor). */
const ACTION_IMPLIES: Readonly<Record<Action, readonly Action[]>> = {
  read: ['read'],
  write: ['write', 'read'],
  delete: ['delete'],
  admin: ['admin', 'read', 'write', 'delete'],
  monitor: ['monitor'],
}

const PARSED = new Map<string, ParsedPermission>()
const IMPLIED = new Map<string, ReadonlySet<string>>()

function impliedActions(action: Action | '*'): readonly Action[] {
  return action === '*' ? ACTIONS : ACTION_IMPLIES[action]
}

function buildTables(): void {
  for (const resource of [...RESOURCES, '*'] as const) {
    for (const action of [...ACTIONS, '*'] as const) {
      const grant = `${resource}:${action}`
      PARSED.set(grant, Object.freeze({ resource, action }))
      const implied = new Set<string>()
      for (const r of resource === '*' ? RESOURCES : [resource]) {
        for (const a of impliedActions(action)) implied.add(`${r}:${a}`)
      }
      IMPLIED.set(grant, implied)
    }
  }
}
buildTables()

/** Every concrete permission, e.g. for documentation or an OpenAPI enum. */
export const CONCRETE_PERMISSIONS: readonly ConcretePermission[] = Object.freeze(
  RESOURCES.flatMap((r) => ACTIONS.map((a) => `${r}:${a}` as const)),
)

/**
 * `resource:action` with known lowercase names or `*`; anything else (including non-strings,
 * which arrive from JSON or the database) is null. The result is shared and frozen.
 */
export function parsePermission(s: unknown): ParsedPermission | null {
  return typeof s === 'string' ? (PARSED.get(s) ?? null) : null
}

/** A well-formed grant (wildcards allowed): what admin input must satisfy before it is stored. */
export function isValidPermission(s: unknown): s is Grant {
  return typeof s === 'string' && PARSED.has(s)
}

/** A permission a route may require: well-formed and with no wildcard on either side. */
export function isConcretePermission(s: unknown): s is ConcretePermission {
  const parsed = parsePermission(s)
  return parsed !== null && parsed.resource !== '*' && parsed.action !== '*'
}

/**
 * The concrete permissions a grant implies; empty for a malformed grant. Exposed so callers can
 * reason about grants as sets instead of re-deriving the rules. A copy: the shared tables must
 * stay immutable, since mutating one would change every decision in the process.
 */
export function impliedPermissions(grant: unknown): Set<string> {
  return new Set(typeof grant === 'string' ? IMPLIED.get(grant) : undefined)
}

/**
 * Does `grant` allow `required`? Malformed grants never match, and neither does a required
 * permission that is malformed or contains `*` (only concrete permissions are ever in the sets).
 */
export function grantMatches(grant: string, required: string): boolean {
  return (typeof grant === 'string' && IMPLIED.get(grant)?.has(required)) === true
}

export function anyGrantMatches(grants: readonly string[], required: string): boolean {
  for (const grant of grants) {
    if (grantMatches(grant, required)) return true
  }
  return false
}

/**
 * Does holding `holder` imply everything `wanted` implies? Used to refuse API keys and custom roles
 * wider than their creator: `chat:*` covers `chat:write`, `chat:write` does not cover `chat:*`.
 * The union of the holder's grants counts (`chat:read` + `chat:write` + … covers `chat:*`).
 * A malformed `wanted` is never covered, so it can never slip through as "vacuously within".
 */
export function grantsCover(holder: readonly string[], wanted: string): boolean {
  const wantedSet = typeof wanted === 'string' ? IMPLIED.get(wanted) : undefined
  if (wantedSet === undefined) return false
  for (const permission of wantedSet) {
    if (!anyGrantMatches(holder, permission)) return false
  }
  return true
}
