/** Wire models every module shares: the error body and the list page of contract §0. */
import { t } from 'elysia'

export const ErrorResponse = t.Object({
  error: t.String(),
  code: t.String(),
  request_id: t.String(),
  details: t.Optional(t.Unknown()),
})

const Limit = t.Optional(t.Integer({ minimum: 1, maximum: 100, default: 20 }))

/** `?limit=1..100 (20)&cursor=` for lists whose service decodes (and rejects) its own opaque cursor */
export const Page = t.Object({
  limit: Limit,
  cursor: t.Optional(t.String({ minLength: 1, maxLength: 128 })),
})

/**
 * A page of a list whose cursor is the last item's key: a cursor that cannot be one of its keys is a 400
 * naming `cursor`, not a silently wrong page.
 */
export function pageKeyedBy(keyPattern: string) {
  return t.Object({ limit: Limit, cursor: t.Optional(t.String({ pattern: keyPattern, maxLength: 128, description: 'next_cursor of the previous page' })) })
}

/** …keyed by resource ids `<prefix>_<uuidv7 hex>` (src/lib/ids.ts) */
export const idPage = (prefix: string) => pageKeyedBy(`^${prefix}_[0-9a-f]{32}$`)

export interface PageRequest {
  limit: number
  cursor?: string
}

export const pageFrom = (query: { limit?: number; cursor?: string }): PageRequest => ({ limit: query.limit ?? 20, cursor: query.cursor })
