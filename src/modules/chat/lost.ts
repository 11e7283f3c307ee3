/**
 * Answers for questions whose stream was lost: its holder died (SIGKILL, OOM, power) before it stored the
 * answer, so the conversation holds a question with nothing after it. Every `sweepMs` each instance looks at
 * the questions without an answer and writes a `failed` assistant message for each one that is live nowhere:
 *
 * - its claim says live, and the holder instance's presence has lapsed on two looks at least one sweep apart
 *   (one look could catch a holder whose event loop or Redis link stalled for five seconds);
 * - or, with the in-process store (one instance), it was asked before this process started: its holder was a
 *   previous run of this process.
 *
 * The answer's text is what the stream had relayed as far as the store's replay log holds it (a stream another
 * instance followed), else empty. Its id is derived from the question's, so two instances sweeping at once
 * write it once. Questions are read by id range (ids are time-ordered): each sweep starts at the oldest question
 * it could not decide (a long answer still running somewhere), or where the last one ended.
 */
import { type DatabaseHandle, rawQuery } from '../../db'
import type { Metrics } from '../../observability/metrics'
import { storableJson } from '../conversations/writer'
import { keys, type Presence, type Store } from '../../store'
import { chunkText } from './answer'
import { type Claim, parseClaim } from './service'
import { splitEvents } from './sse'

/** questions looked at per sweep (the rest the next time) */
const SWEEP_BATCH = 500
/** how far back the first sweep after a start looks */
const FIRST_LOOKBACK_MS = 24 * 3_600_000

interface Logger {
  warn(o: object, msg?: string): void
}

export interface LostAnswerDeps {
  db: DatabaseHandle
  store: Store
  presence: Pick<Presence, 'gone'>
  logger: Logger
  metrics?: Pick<Metrics, 'chatStreamEndings'>
  /** @default 10000 */
  sweepMs?: number
  /** a question this young is left to a later sweep: its stream has barely started. @default 2000 */
  minAgeMs?: number
  /** @default Date.now */
  now?: () => number
}

interface Question {
  id: string
  tenant_id: string
  conversation_id: string
  user_id: string
  request_id: string
}

/** the smallest message id of millisecond `ms` (ids are `msg_<uuidv7 hex>`; the first 12 digits are the time) */
export function idAt(ms: number): string {
  return `msg_${Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0')}`
}

/**
 * The lost answer's id: a well-formed `msg_<uuidv7>` one millisecond after its question (so it sorts right after
 * it in the conversation), with the rest taken from a hash of the question's id.
 */
export function lostAnswerId(questionId: string): string {
  const ms = Number.parseInt(questionId.slice(4, 16), 16) + 1
  const hash = new Bun.CryptoHasher('sha256').update(`lost:${questionId}`).digest('hex')
  const variant = ((Number.parseInt(hash[3]!, 16) & 0x3) | 0x8).toString(16)
  return `msg_${ms.toString(16).padStart(12, '0')}7${hash.slice(0, 3)}${variant}${hash.slice(4, 19)}`
}

/** the text and references a stream had relayed, from its replay log */
export function relayedAnswer(log: string | null): { content: string; references: unknown[] | null } {
  let content = ''
  let references: unknown[] | null = null
  for (const event of splitEvents(log ?? '')) {
    const name = /^event: (.*)$/m.exec(event)?.[1]
    if (name !== 'generation_chunk' && name !== 'retrieval_result') continue
    const data = /^data: (.*)$/m.exec(event)?.[1]
    let line: Record<string, unknown>
    try {
      line = JSON.parse(data ?? '') as Record<string, unknown>
    } catch {
      continue
    }
    if (name === 'generation_chunk') content += chunkText(line)
    else {
      const refs = line.references ?? line.refs
      if (Array.isArray(refs)) references = refs
    }
  }
  return { content, references }
}

/** the questions of an id range without an answer after them (one index probe each: test/db/message-index.test.ts) */
export const UNANSWERED = `
    select q.id, q.tenant_id, q.conversation_id, q.user_id, q.request_id
    from messages q
    where q.id >= $1 and q.id < $2 and q.role = 'user' and q.request_id is not null
      and not exists (
        select 1 from messages a
        where a.conversation_id = q.conversation_id and a.id > q.id and a.tenant_id = q.tenant_id
          and a.role = 'assistant' and a.request_id = q.request_id)
    order by q.id
    limit ${SWEEP_BATCH}`

/** inserts the answers not yet there (the same id from two sweepers: once) and counts them in their conversations */
const WRITE_LOST = `
    with v as (
      select * from json_to_recordset($1::text::json) as x(
        id text, tenant_id text, conversation_id text, user_id text, request_id text, content text, "references" jsonb)
    ),
    ins as (
      insert into messages (id, tenant_id, conversation_id, user_id, role, content, modality, status, "references", request_id, created_at)
      select v.id, v.tenant_id, v.conversation_id, v.user_id, 'assistant', v.content, 'text', 'failed', v."references", v.request_id, now()
      from v join conversations c on c.tenant_id = v.tenant_id and c.id = v.conversation_id
      on conflict (id) do nothing
      returning tenant_id, conversation_id
    )
    update conversations c
    set message_count = c.message_count + b.n, last_message_at = now(), updated_at = now()
    from (select tenant_id, conversation_id, count(*) as n from ins group by tenant_id, conversation_id) b
    where c.tenant_id = b.tenant_id and c.id = b.conversation_id
    returning b.n`

export function createLostAnswerSweeper(deps: LostAnswerDeps) {
  const { db, store, presence, logger, metrics } = deps
  const sweepMs = deps.sweepMs ?? 10_000
  const minAgeMs = deps.minAgeMs ?? 2_000
  const now = deps.now ?? Date.now
  const startedAt = now()
  const inProcess = store.kind === 'memory'
  /** where the next sweep starts */
  let from = idAt(startedAt - FIRST_LOOKBACK_MS)
  /** where the sweep goes back to once it has paged to the end: the oldest question it could not decide */
  let resumeAt: string | undefined
  /** questions whose holder was seen gone: since when */
  const suspects = new Map<string, number>()
  let running: Promise<number> | undefined
  let closed = false

  async function sweepOnce(): Promise<number> {
    const to = idAt(now() - minAgeMs)
    const rows = await rawQuery<Question>(db, UNANSWERED, [from, to])
    if (rows.length === 0) {
      from = resumeAt ?? to
      resumeAt = undefined
      return 0
    }
    const claims = (await store.mGet(rows.map((q) => keys.chatStream(q.tenant_id, q.request_id)))).map(parseClaim)
    const holders = claims.flatMap((c) => (c?.state === 'live' && c.inst ? [c.inst] : []))
    const gone = await presence.gone(holders)
    const lost: Question[] = []
    const at = now()
    rows.forEach((q, i) => {
      const claim: Claim | undefined = claims[i]
      if (claim?.state === 'live') {
        if (claim.inst && gone.has(claim.inst)) {
          const seen = suspects.get(q.id)
          if (inProcess || (seen !== undefined && at - seen >= sweepMs)) return void lost.push(q)
          if (seen === undefined) suspects.set(q.id, at)
        } else suspects.delete(q.id)
        resumeAt ??= q.id // still running, or not yet seen gone twice: look again
      } else if (!claim && inProcess && q.id < idAt(startedAt)) lost.push(q)
      // otherwise decided: an ended claim (its holder stored, or failed to store, the answer), or no claim behind a shared store (aged out)
    })
    for (const q of lost) suspects.delete(q.id)
    for (const [id, seen] of suspects) if (at - seen > 6 * sweepMs) suspects.delete(id)
    if (rows.length === SWEEP_BATCH) from = rows.at(-1)!.id
    else {
      from = resumeAt ?? to
      resumeAt = undefined
    }
    if (lost.length === 0) return 0
    const logs = inProcess ? lost.map(() => null) : await store.mGet(lost.map((q) => keys.chatEvents(q.tenant_id, q.request_id)))
    const answers = lost.map((q, i) => ({ ...q, id: lostAnswerId(q.id), ...relayedAnswer(logs[i] ?? null) }))
    const counted = await rawQuery<{ n: number | string }>(db, WRITE_LOST, [storableJson(answers)])
    const written = counted.reduce((n, r) => n + Number(r.n), 0)
    if (written > 0) {
      metrics?.chatStreamEndings.inc({ reason: 'instance_lost' }, written)
      logger.warn({ answers: written }, 'chat streams of a stopped instance: their answers stored as failed')
    }
    return written
  }

  /** one sweep (never two at once); resolves with how many answers it wrote */
  function sweep(): Promise<number> {
    running ??= sweepOnce().finally(() => (running = undefined))
    return running
  }

  const timer = setInterval(() => {
    if (!closed) sweep().catch((err: unknown) => logger.warn({ err }, 'could not sweep lost chat streams'))
  }, sweepMs)
  timer.unref()

  return {
    sweep,
    async close(): Promise<void> {
      closed = true
      clearInterval(timer)
      await running?.catch(() => {})
    },
  }
}

export type LostAnswerSweeper = ReturnType<typeof createLostAnswerSweeper>
