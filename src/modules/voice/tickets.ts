/**
 * Single-use voice tickets: browsers cannot put a header on a WebSocket, and a long-lived token in a URL ends
 * up in access logs. A ticket is 256 random bits, valid 60 s, consumed by the first upgrade that presents it.
 *
 * The ticket keeps the credential it was issued for (in the store, never in a URL), so the upgrade that
 * redeems it goes through exactly the authentication a header would: revocation, user and tenant status,
 * permission and rate limits are checked at that moment, not at issue time.
 */
import type { Store } from '../../store'
import { keys } from '../../store/keys'

export const TICKET_TTL_S = 60
const TICKET_PATTERN = /^[A-Za-z0-9_-]{43}$/

export interface TicketGrant {
  /** the bearer credential (JWT or API key) the ticket was issued for */
  credential: string
  /** X-Tenant-ID of the issuing request (a super_admin acting in another tenant) */
  tenant?: string
  /** the user it is bound to */
  userId: string
}

export function createTickets(store: Store) {
  return {
    async issue(grant: TicketGrant): Promise<{ ticket: string; expires_in: number }> {
      const ticket = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url')
      await store.set(keys.voiceTicket(ticket), JSON.stringify(grant), { ttlMs: TICKET_TTL_S * 1000 })
      return { ticket, expires_in: TICKET_TTL_S }
    },

    /** the grant, once: of two upgrades presenting the same ticket only the one whose del() removed it wins */
    async consume(ticket: string): Promise<TicketGrant | undefined> {
      if (!TICKET_PATTERN.test(ticket)) return undefined
      const key = keys.voiceTicket(ticket)
      const value = await store.get(key)
      if (value === null) return undefined
      if ((await store.del(key)) !== 1) return undefined
      return JSON.parse(value) as TicketGrant
    },
  }
}

export type Tickets = ReturnType<typeof createTickets>

/** The ticket an upgrade request presents: subprotocol `ticket.<t>` or `?ticket=<t>`. */
export function ticketOf(request: Request, query: Record<string, unknown>): string | undefined {
  const offered = request.headers.get('sec-websocket-protocol')
  if (offered) {
    for (const p of offered.split(',')) {
      const name = p.trim()
      if (name.startsWith('ticket.')) return name.slice('ticket.'.length)
    }
  }
  return typeof query.ticket === 'string' && query.ticket !== '' ? query.ticket : undefined
}

/** whether the client offered `name` as a subprotocol (it is then echoed) */
export function offersProtocol(request: Request, name: string): boolean {
  const offered = request.headers.get('sec-websocket-protocol')
  return offered !== null && offered.split(',').some((p) => p.trim() === name)
}
