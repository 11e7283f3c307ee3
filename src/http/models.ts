/** Wire models every module shares: the error body and the list page of contract §0. */
import { t } from 'elysia'

export const ErrorResponse = t.Object({
  error: t.String(),
  code: t.String(),
  request_id: t.String(),
  details: t.Optional(t.Unknown()),
})

/** `?limit=1..100 (20)&cursor=` */
export const Page = t.Object({
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 100, default: 20 })),
  cursor: t.Optional(t.String({ minLength: 1, maxLength: 128 })),
})

export interface PageRequest {
  limit: number
  cursor?: string
}

export const pageFrom = (query: { limit?: number; cursor?: string }): PageRequest => ({ limit: query.limit ?? 20, cursor: query.cursor })
