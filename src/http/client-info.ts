/** Where a request came from, for audit rows and per-IP limits. */
import type { Server } from 'bun'
import { metaOf } from './errors-plugin'

export interface ClientInfo {
  ip: string | null
  userAgent: string | null
  requestId: string
}

export function clientInfo(request: Request, server: Server<unknown> | null | undefined): ClientInfo {
  return {
    ip: server?.requestIP(request)?.address ?? null,
    userAgent: request.headers.get('user-agent'),
    requestId: metaOf(request).id,
  }
}
