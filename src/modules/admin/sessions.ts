/**
 * Live chat streams and voice sessions across every instance (contract §7: GET/DELETE /api/v2/admin/sessions).
 *
 * Nothing is added to a stream's path: each instance already keeps its live connections (LiveConnections)
 * for revocation. A question (list, or end one) is published to every instance; each answers from its own
 * registry on the asker's reply channel. PUBLISH says how many instances heard the question, so the asker
 * stops waiting as soon as they have all answered, or after QUERY_TIMEOUT_MS with what it has (`partial`).
 */
import { AppError } from '../../errors'
import { newId } from '../../lib/ids'
import { channels, jsonMessages, type Store } from '../../store'
import { authErrors } from '../auth/errors'
import type { LiveConnection, LiveConnections } from '../auth/live-connections'

const QUERY_TIMEOUT_MS = 1_000

export type SessionKind = LiveConnection['kind']

export interface LiveSessionView {
  id: string
  kind: SessionKind
  tenant_id: string
  user_id: string
  conversation_id: string | null
  /** the chat stream's request_id, or the voice session's id */
  ref: string
  started_at: string
  instance: string
}

/** what the asker may see: one tenant (null: all) and the kinds it may monitor */
export interface SessionScope {
  tenantId: string | null
  kinds: ReadonlySet<SessionKind>
}

type Question = { t: 'list'; tenant: string | null; kinds: SessionKind[] } | { t: 'end'; tenant: string | null; id: string }
type Query = Question & { q: string; from: string }
type Answer = { q: string; items?: LiveSessionView[]; ended?: boolean }

interface Pending {
  expected: number
  answers: Answer[]
  /** an end that succeeded needs no further answers */
  enough: (a: Answer) => boolean
  done: (answers: Answer[], partial: boolean) => void
  timer?: ReturnType<typeof setTimeout>
}

const notFound = () => new AppError(404, 'NOT_FOUND', 'Session not found')

function view(c: LiveConnection, instance: string): LiveSessionView {
  return {
    id: c.id,
    kind: c.kind,
    tenant_id: c.tenantId,
    user_id: c.userId,
    conversation_id: c.conversationId ?? null,
    ref: c.id.slice(c.kind.length + c.tenantId.length + 2),
    started_at: new Date(c.startedAt).toISOString(),
    instance,
  }
}

/** newest first; ties by id, so a cursor is a position in a total order */
const newestFirst = (a: LiveSessionView, b: LiveSessionView) => (a.started_at === b.started_at ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.started_at < b.started_at ? 1 : -1)

function encodeCursor(item: LiveSessionView): string {
  return Buffer.from(JSON.stringify([item.started_at, item.id])).toString('base64url')
}

function decodeCursor(cursor: string): [string, string] {
  try {
    const position = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as unknown
    if (Array.isArray(position) && position.length === 2 && position.every((p) => typeof p === 'string')) return position as [string, string]
  } catch {}
  throw new AppError(400, 'VALIDATION_FAILED', 'Invalid cursor', [{ field: 'cursor', in: 'query', message: 'not a cursor of this list' }])
}

export function createLiveSessions({ store, live, instance }: { store: Store; live: LiveConnections; instance: string }) {
  const pending = new Map<string, Pending>()

  function answer(q: Query): Answer {
    if (q.t === 'list') {
      const kinds = new Set(q.kinds)
      const items = live
        .list()
        .filter((c) => kinds.has(c.kind) && (q.tenant === null || c.tenantId === q.tenant))
        .map((c) => view(c, instance))
      return { q: q.q, items }
    }
    return { q: q.q, ended: live.end(q.id, q.tenant, 'admin_ended') }
  }

  function settle(id: string, partial: boolean): void {
    const p = pending.get(id)
    if (!p) return
    pending.delete(id)
    clearTimeout(p.timer)
    p.done(p.answers, partial)
  }

  const subscribed = Promise.all([
    store.subscribe(
      channels.liveQuery(),
      jsonMessages<Query>((q) => {
        if (typeof q?.q !== 'string' || typeof q.from !== 'string') return
        void store.publish(channels.liveReply(q.from), JSON.stringify(answer(q))).catch(() => {})
      }),
    ),
    store.subscribe(
      channels.liveReply(instance),
      jsonMessages<Answer>((a) => {
        const p = pending.get(a?.q)
        if (!p) return
        p.answers.push(a)
        if (p.enough(a) || p.answers.length >= p.expected) settle(a.q, false)
      }),
    ),
  ])
  // a failed subscription surfaces on the first question (503); it must not be an unhandled rejection
  subscribed.catch(() => {})

  /** asks every instance; resolves with their answers once all have answered, or at the timeout */
  async function ask(question: Question, enough: (a: Answer) => boolean): Promise<{ answers: Answer[]; partial: boolean }> {
    await subscribed
    const q = newId('q')
    const result = new Promise<{ answers: Answer[]; partial: boolean }>((resolve) => {
      pending.set(q, { expected: Number.POSITIVE_INFINITY, answers: [], enough, done: (answers, partial) => resolve({ answers, partial }) })
    })
    try {
      const heard = await store.publish(channels.liveQuery(), JSON.stringify({ ...question, q, from: instance }))
      const p = pending.get(q)
      if (p) {
        p.expected = heard
        if (p.answers.length >= heard) settle(q, false)
        else p.timer = setTimeout(() => settle(q, true), QUERY_TIMEOUT_MS)
      }
    } catch (err) {
      pending.delete(q)
      throw err
    }
    return result
  }

  return {
    async list(scope: SessionScope, page: { limit: number; cursor?: string }) {
      const after = page.cursor ? decodeCursor(page.cursor) : undefined
      const { answers, partial } = await ask({ t: 'list', tenant: scope.tenantId, kinds: [...scope.kinds] }, () => false)
      const all = answers.flatMap((a) => (Array.isArray(a.items) ? a.items : [])).sort(newestFirst)
      const rest = after ? all.filter((s) => s.started_at < after[0] || (s.started_at === after[0] && s.id > after[1])) : all
      const items = rest.slice(0, page.limit)
      return { items, next_cursor: rest.length > page.limit ? encodeCursor(items.at(-1)!) : null, partial }
    },

    /** ends the session wherever it runs; 404 when no instance holds it (in scope) */
    async end(scope: SessionScope, id: string) {
      const kind = id.slice(0, id.indexOf(':'))
      if (kind !== 'chat' && kind !== 'voice') throw notFound()
      if (!scope.kinds.has(kind)) throw authErrors.permissionDenied(`${kind}:monitor`)
      const { answers } = await ask({ t: 'end', tenant: scope.tenantId, id }, (a) => a.ended === true)
      if (!answers.some((a) => a.ended === true)) throw notFound()
      return { id, kind: kind as SessionKind, status: 'ended' as const }
    },
  }
}

export type LiveSessions = ReturnType<typeof createLiveSessions>
