/**
 * The embedded PGlite behind a worker thread (pglite-worker.ts), with the part of PGlite's interface Drizzle and
 * the gateway use: `query`, `exec`, `transaction`, `close`. Statements run beside the event loop, not on it.
 *
 * Written here rather than using `@electric-sql/pglite/worker`: that one is built for browser tabs (it elects a
 * leader through `navigator.locks`, which Bun does not have).
 */
import type { QueryOptions, Results } from '@electric-sql/pglite'
import type { Reply, Request, SerializedError } from './pglite-worker'

/** a request without its id, member by member of the union */
type WithoutId<R> = R extends unknown ? Omit<R, 'id'> : never
type Op = WithoutId<Request>

/** what a transaction's callback is given: statements that run inside it */
export interface PgliteThreadTransaction {
  query<T>(text: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>>
  exec(text: string): Promise<Results[]>
}

export class PgliteThread implements PgliteThreadTransaction {
  readonly #worker: Worker
  readonly #pending = new Map<number, PromiseWithResolvers<unknown>>()
  #nextId = 1
  #stopped: Error | undefined
  #closing: Promise<void> | undefined

  private constructor() {
    this.#worker = new Worker(new URL('./pglite-worker.ts', import.meta.url).href)
    this.#worker.unref()
    this.#worker.onmessage = (event: MessageEvent<Reply>) => this.#settle(event.data)
    this.#worker.onerror = (event: ErrorEvent) => this.#stop(new Error(`the embedded database's thread failed: ${event.message}`))
    this.#worker.addEventListener('close', () => this.#stop(new Error("the embedded database's thread stopped")))
  }

  /** PGlite on disk in `dataDir`, or in memory without one */
  static async create(dataDir?: string): Promise<PgliteThread> {
    const thread = new PgliteThread()
    try {
      await thread.#call({ op: 'open', dataDir })
    } catch (err) {
      thread.#worker.terminate()
      throw err
    }
    return thread
  }

  query<T>(text: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>> {
    return this.#query(undefined, text, params, options)
  }

  exec(text: string): Promise<Results[]> {
    return this.#exec(undefined, text)
  }

  /** commits when `work` resolves, rolls back when it throws; other statements wait for it, as in PGlite */
  async transaction<T>(work: (tx: PgliteThreadTransaction) => Promise<T>): Promise<T> {
    const tx = (await this.#call({ op: 'begin' })) as number
    let result: T
    try {
      result = await work({ query: (text, params, options) => this.#query(tx, text, params, options), exec: (text) => this.#exec(tx, text) })
    } catch (err) {
      await this.#call({ op: 'end', tx, commit: false }).catch(() => {})
      throw err
    }
    await this.#call({ op: 'end', tx, commit: true })
    return result
  }

  close(): Promise<void> {
    this.#closing ??= this.#call({ op: 'close' })
      .catch(() => {})
      .then(() => {
        this.#stop(new Error('the embedded database is closed'))
        this.#worker.terminate()
      })
    return this.#closing
  }

  /** `tx`: inside that transaction; undefined: on its own (after any transaction in progress) */
  #query<T>(tx: number | undefined, text: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>> {
    // parsers cannot cross threads; Drizzle's only ones keep dates and intervals as text, which the worker does
    // for the same type OIDs (other parsers are not supported)
    const textTypes = options?.parsers ? Object.keys(options.parsers).map(Number) : undefined
    return this.#call({ op: 'query', tx, text, params, rowMode: options?.rowMode, textTypes }) as Promise<Results<T>>
  }

  #exec(tx: number | undefined, text: string): Promise<Results[]> {
    return this.#call({ op: 'exec', tx, text }) as Promise<Results[]>
  }

  #call(op: Op): Promise<unknown> {
    if (this.#stopped) return Promise.reject(this.#stopped)
    const id = this.#nextId++
    const call = Promise.withResolvers<unknown>()
    if (this.#pending.size === 0) this.#worker.ref() // an awaited statement keeps the process alive
    this.#pending.set(id, call)
    this.#worker.postMessage({ id, ...op })
    return call.promise
  }

  #settle(reply: Reply) {
    const call = this.#pending.get(reply.id)
    if (!call) return
    this.#pending.delete(reply.id)
    if (this.#pending.size === 0) this.#worker.unref()
    if (reply.ok) call.resolve(reply.value)
    else call.reject(revive(reply.error))
  }

  #stop(reason: Error) {
    this.#stopped ??= reason
    for (const call of this.#pending.values()) call.reject(this.#stopped)
    this.#pending.clear()
    this.#worker.unref()
  }
}

function revive({ message, name, ...fields }: SerializedError): Error {
  const err = Object.assign(new Error(message), fields)
  err.name = name
  return err
}
