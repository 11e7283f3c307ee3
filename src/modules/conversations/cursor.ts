/**
 * The conversation list's cursor: the last row's (updated_at, id), opaque to clients. updated_at is
 * carried as Postgres prints it, to the microsecond — a JS Date would round it to the millisecond, and
 * the next page would then repeat or skip rows updated within the same millisecond.
 */
import { AppError } from '../../errors'

export interface ListPosition {
  /** RFC 3339 UTC with microseconds, as `to_char(... 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')` renders it */
  updatedAt: string
  id: string
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/
const ID = /^[A-Za-z0-9_]{1,64}$/

export function encodeCursor(position: ListPosition): string {
  return Buffer.from(`${position.updatedAt}|${position.id}`).toString('base64url')
}

/** a time Postgres takes: a real calendar date and clock time (not 2024-13-45T99:…), from year 1 on */
function isRealTime(stamp: string): boolean {
  const ms = stamp.slice(0, 23) + 'Z'
  const at = Date.parse(ms)
  return stamp >= '0001' && !Number.isNaN(at) && new Date(at).toISOString() === ms
}

/** 400 VALIDATION_FAILED naming `cursor` for anything this gateway did not hand out */
export function decodeCursor(cursor: string): ListPosition {
  const [updatedAt, id, ...rest] = Buffer.from(cursor, 'base64url').toString().split('|')
  if (rest.length || !updatedAt || !id || !TIMESTAMP.test(updatedAt) || !isRealTime(updatedAt) || !ID.test(id)) {
    throw new AppError(400, 'VALIDATION_FAILED', 'Invalid cursor', [{ field: 'cursor', in: 'query', message: 'Not a cursor from this list' }])
  }
  return { updatedAt, id }
}
