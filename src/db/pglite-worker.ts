/**
 * The embedded PGlite's own thread (started by pglite-thread.ts). PGlite runs Postgres in WebAssembly on the
 * thread that calls it: on the gateway's event loop every statement — a writer batch, a vacuum, a sweep of lost
 * streams — would stop every stream for as long as it runs. Here it runs beside the event loop instead.
 *
 * Requests are `{ id, op, ... }`; each is answered once with `{ id, ok: true, value }` or `{ id, ok: false, error }`.
 * A transaction is PGlite's own `transaction()`, held open between `begin` and `end`; PGlite queues every other
 * statement behind it, as it does in one thread.
 */
import { PGlite, type QueryOptions, type Results, type Transaction } from '@electric-sql/pglite'

export type Request =
  | { id: number; op: 'open'; dataDir?: string }
  | { id: number; op: 'query'; tx?: number; text: string; params?: unknown[]; rowMode?: 'array' | 'object'; textTypes?: number[] }
  | { id: number; op: 'exec'; tx?: number; text: string }
  | { id: number; op: 'begin' }
  | { id: number; op: 'end'; tx: number; commit: boolean }
  | { id: number; op: 'close' }

export type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: SerializedError }

/** an error's message, name and primitive fields (PGlite's DatabaseError: code, detail, constraint, table...) */
export type SerializedError = Record<string, string | number | boolean | undefined> & { message: string; name: string }

declare const self: Worker

let pg: PGlite | undefined
let nextTx = 1
const open = new Map<number, { tx: Transaction; end(commit: boolean): void; done: Promise<void> }>()
/** thrown inside a held transaction to make PGlite roll it back */
const ROLLBACK = Symbol('rollback')

/** identity parsers for the type OIDs the caller reads as text (Drizzle does so for dates and intervals) */
const identities = new Map<string, QueryOptions['parsers']>()
function asText(oids: number[]): QueryOptions['parsers'] {
  const key = oids.join(',')
  let parsers = identities.get(key)
  if (!parsers) identities.set(key, (parsers = Object.fromEntries(oids.map((oid) => [oid, (v: string) => v]))))
  return parsers
}

/** what a result has that the caller reads (the rest is PGlite's own) */
const plain = ({ rows, fields, affectedRows }: Results) => ({ rows, fields, affectedRows })

function on(tx: number | undefined): PGlite | Transaction {
  if (!pg) throw new Error('the embedded database is not open')
  if (tx === undefined) return pg
  const held = open.get(tx)
  if (!held) throw new Error('transaction already ended')
  return held.tx
}

async function handle(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'open':
      pg = await PGlite.create(req.dataDir)
      return null
    case 'query': {
      const options: QueryOptions = { rowMode: req.rowMode }
      if (req.textTypes) options.parsers = asText(req.textTypes)
      return plain(await on(req.tx).query(req.text, req.params, options))
    }
    case 'exec':
      return (await on(req.tx).exec(req.text)).map(plain)
    case 'begin': {
      const db = on(undefined) as PGlite
      const id = nextTx++
      const began = Promise.withResolvers<number>()
      const ended = Promise.withResolvers<boolean>()
      const held = { tx: undefined as unknown as Transaction, end: ended.resolve, done: Promise.resolve() }
      held.done = db
        .transaction(async (tx) => {
          held.tx = tx
          open.set(id, held)
          began.resolve(id)
          if (!(await ended.promise)) throw ROLLBACK
        })
        .then(
          () => {},
          (err: unknown) => {
            began.reject(err)
            if (err !== ROLLBACK) throw err
          },
        )
        .finally(() => open.delete(id))
      held.done.catch(() => {}) // a failed commit is reported to 'end'
      return began.promise
    }
    case 'end': {
      const held = open.get(req.tx)
      if (!held) throw new Error('transaction already ended')
      held.end(req.commit)
      await held.done
      return null
    }
    case 'close':
      for (const held of open.values()) held.end(false)
      await pg?.close()
      pg = undefined
      return null
  }
}

function serialize(err: unknown): SerializedError {
  const out: SerializedError = { message: String(err), name: 'Error' }
  if (err instanceof Error) {
    out.message = err.message
    out.name = err.name
    for (const [k, v] of Object.entries(err)) if (v === undefined || ['string', 'number', 'boolean'].includes(typeof v)) out[k] = v as string
  }
  return out
}

self.onmessage = (event: MessageEvent<Request>) => {
  const { id } = event.data
  handle(event.data).then(
    (value) => self.postMessage({ id, ok: true, value } satisfies Reply),
    (err: unknown) => self.postMessage({ id, ok: false, error: serialize(err) } satisfies Reply),
  )
}
