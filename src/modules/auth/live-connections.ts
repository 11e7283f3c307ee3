/**
 * The live connections (chat streams, voice sessions) of each principal on this instance, so that a
 * revocation — of a token, a login session, an API key, a user or a whole tenant — ends them at once, and an
 * administrator can list and end them (admin/sessions). A change of a user's or a tenant's grants ends those
 * that no longer hold the permission they were opened with. Notices from other instances arrive over the
 * invalidation bus.
 */
import type { Invalidation, InvalidationBus } from './invalidation'

export type LiveEndReason = 'token_revoked' | 'admin_ended'

export interface LiveConnection {
  /** `<kind>:<tenant>:<request or session id>`: unique across tenants */
  readonly id: string
  readonly kind: 'chat' | 'voice'
  readonly tenantId: string
  readonly userId: string
  readonly sessionId?: string
  readonly jti?: string
  readonly apiKeyId?: string
  readonly conversationId?: string
  /** the permission it was opened with, and the grants of the API key it was opened with */
  readonly permission?: string
  readonly keyGrants?: readonly string[]
  /** ms since the epoch */
  readonly startedAt: number
  /** ends the connection; called at most once */
  end(reason: LiveEndReason): void
}

export interface LiveConnections {
  /** returns the function that unregisters it */
  register(connection: LiveConnection): () => void
  list(): LiveConnection[]
  /** ends every connection the notice revokes; returns how many */
  apply(notice: Invalidation): number
  /** ends one connection (of `tenantId` unless null); false when this instance holds no such connection */
  end(id: string, tenantId: string | null, reason: LiveEndReason): boolean
}

/** whether the connection's user still holds its permission (see createGrantCheck) */
export type GrantCheck = (who: { userId: string; keyGrants?: readonly string[] }, permission: string) => Promise<boolean>

export function createLiveConnections(bus?: InvalidationBus, holds?: GrantCheck, logger?: { warn(o: object, msg?: string): void }): LiveConnections {
  const live = new Map<string, LiveConnection>()

  /** grants changed (no revocation): a connection whose user no longer holds its permission ends */
  function regranted(notice: Invalidation, c: LiveConnection): boolean {
    if (notice.t === 'user') return notice.ended !== true && c.userId === notice.id
    if (notice.t === 'tenant') return notice.ended !== true && c.tenantId === notice.id
    return false
  }

  function recheck(c: LiveConnection): void {
    if (!holds || !c.permission) return
    holds(c, c.permission).then(
      (still) => {
        if (still || live.get(c.id) !== c) return
        live.delete(c.id)
        c.end('token_revoked')
      },
      // the database away: the connection stays; the per-request checks fail closed meanwhile
      (err: unknown) => logger?.warn({ err, connection: c.id }, 'could not recheck the grants of a live connection'),
    )
  }

  function revokedBy(notice: Invalidation, c: LiveConnection): boolean {
    switch (notice.t) {
      case 'jti':
        return c.jti === notice.jti
      case 'session':
        return c.tenantId === notice.tenant && c.sessionId === notice.id
      case 'apikey':
        return c.apiKeyId === notice.id
      case 'user':
        return notice.ended === true && c.tenantId === notice.tenant && c.userId === notice.id
      case 'tenant':
        return notice.ended === true && c.tenantId === notice.id
      default:
        return false
    }
  }

  const registry: LiveConnections = {
    register(connection) {
      live.set(connection.id, connection)
      return () => {
        if (live.get(connection.id) === connection) live.delete(connection.id)
      }
    },
    list: () => [...live.values()],
    apply(notice) {
      let ended = 0
      for (const c of [...live.values()]) {
        if (regranted(notice, c)) recheck(c)
        if (!revokedBy(notice, c)) continue
        live.delete(c.id)
        c.end('token_revoked')
        ended++
      }
      return ended
    },
    end(id, tenantId, reason) {
      const c = live.get(id)
      if (!c || (tenantId !== null && c.tenantId !== tenantId)) return false
      live.delete(id)
      c.end(reason)
      return true
    },
  }
  bus?.onMessage((notice) => registry.apply(notice))
  return registry
}
