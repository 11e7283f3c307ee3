/**
 * Who is administering, as the admin services see it: plain data built once per request from the
 * verified principal, plus the audit wrapper every change goes through. No framework here.
 */
import { AppError } from '../../errors'
import type { AccessSubject } from '../access'
import type { Audit, AuditContext } from '../audit/service'

export interface Actor {
  readonly id: string
  readonly kind: 'user' | 'api_key'
  /** the tenant the request acts in (own, or X-Tenant-ID for a super_admin) */
  readonly tenantId: string
  readonly homeTenantId: string
  /** holds the super_admin role (never true for an API key: a key cannot act across tenants) */
  readonly superAdmin: boolean
  /** a super_admin without X-Tenant-ID: lists and look-ups span every tenant */
  readonly global: boolean
  /** effective grants (for a key: its grants within its creator's) — the ceiling of what it may hand out */
  readonly grants: readonly string[]
  /** the caller's own grant sources, to tell whether a change would lock the caller out */
  readonly subject: AccessSubject
  readonly ctx: AuditContext
}

export interface Target {
  type: 'user' | 'role' | 'tenant' | 'tenant_permissions' | 'session' | 'api_key'
  id: string
}

/** what a successful change reports, so the wrapper can audit it in the tenant it touched */
export interface Change<T> {
  value: T
  tenantId: string
  target: Target
  details?: Record<string, unknown>
}

export type Audited = <T>(actor: Actor, action: string, intent: Target | undefined, run: () => Promise<Change<T>>) => Promise<T>

/**
 * Every admin change writes one audit row: success in the tenant that changed; a refusal (403 →
 * `denied`) or another client error (404, 409, 400 → `failure`) in the caller's acting tenant, never in
 * the tenant they tried to reach (that would leak the attempt into another tenant's log).
 */
export function createAudited(audit: Audit): Audited {
  return async (actor, action, intent, run) => {
    const who = { id: actor.id, type: actor.kind }
    let change
    try {
      change = await run()
    } catch (err) {
      if (err instanceof AppError && err.status < 500) {
        const outcome = err.status === 403 ? 'denied' : 'failure'
        await audit.record({ tenantId: actor.tenantId, actor: who, action, target: intent, outcome, details: { code: err.code } }, actor.ctx)
      }
      throw err
    }
    await audit.record({ tenantId: change.tenantId, actor: who, action, target: change.target, outcome: 'success', details: change.details }, actor.ctx)
    return change.value
  }
}

export const adminErrors = {
  notFound: (what: string) => new AppError(404, 'NOT_FOUND', `${what} not found`),
  validation: (field: string, message: string, values?: readonly string[]) =>
    new AppError(400, 'VALIDATION_FAILED', values?.length ? `${message}: ${values.join(', ')}` : message, [
      values ? { field, in: 'body', message, values } : { field, in: 'body', message },
    ]),
  denied: (message: string, details: Record<string, unknown>) => new AppError(403, 'PERMISSION_DENIED', message, details),
  selfLockout: (message: string, details?: Record<string, unknown>) => new AppError(400, 'SELF_LOCKOUT', message, details),
  tenantMismatch: () => new AppError(403, 'TENANT_MISMATCH', 'You may only manage your own tenant'),
}

/**
 * The tenant a list covers: a super_admin acting globally may name one, or none for every tenant
 * (null); anyone else lists the tenant they act in, and naming another is TENANT_MISMATCH.
 */
export function listScope(actor: Actor, requested: string | undefined): string | null {
  if (actor.global) return requested ?? null
  if (requested !== undefined && requested !== actor.tenantId) throw adminErrors.tenantMismatch()
  return actor.tenantId
}

export type { PageRequest } from '../../http/models'

/** `rows` fetched with limit + 1: the extra row only says whether another page exists */
export function pageOf<T>(rows: readonly T[], limit: number, cursorOf: (item: T) => string) {
  const items = rows.slice(0, limit)
  return { items, next_cursor: rows.length > limit ? cursorOf(items.at(-1)!) : null }
}
