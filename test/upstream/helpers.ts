/** Shared bits of the upstream tests: stream builders, a poller, and `/query` bodies carrying a directive. */
import { type NdjsonItem, type NdjsonOptions, readNdjsonBatches } from '../../src/upstream/ndjson.ts'

const encoder = new TextEncoder()

/** A body that delivers exactly these chunks, in this order (so chunk boundaries are the test's choice). */
export function chunked(...chunks: Array<string | Uint8Array>): ReadableStream<Uint8Array> {
  const queue = chunks.map((c) => (typeof c === 'string' ? encoder.encode(c) : c))
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = queue.shift()
      if (next) controller.enqueue(next)
      else controller.close()
    },
  })
}

/** the items of batches one at a time, as a test reads them */
export async function* items(batches: AsyncGenerator<NdjsonItem[]>): AsyncGenerator<NdjsonItem> {
  for await (const batch of batches) yield* batch
}

/** the NDJSON reader, one item at a time */
export const readNdjson = (body: ReadableStream<Uint8Array>, opts: NdjsonOptions) => items(readNdjsonBatches(body, opts))

export async function collect(gen: AsyncGenerator<NdjsonItem>): Promise<NdjsonItem[]> {
  const out: NdjsonItem[] = []
  for await (const item of gen) out.push(item)
  return out
}

export const readAll = (body: ReadableStream<Uint8Array>, maxLineBytes = 1024 * 1024) =>
  collect(readNdjson(body, { maxLineBytes }))

/** Polls until `cond` holds; fails with `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(5)
  }
}

/** A `/query` body whose user message steers the simulator, e.g. `ask('chunks=3 delay_ms=10')`. */
export function ask(directive = ''): Record<string, unknown> {
  const content = directive ? `What is VoiceHelper? [[sim ${directive}]]` : 'What is VoiceHelper?'
  return { messages: [{ role: 'user', content }], request_id: `req_${crypto.randomUUID()}` }
}

/** What a thrown value looks like, for `expect(...).toMatchObject` on errors and abort reasons. */
export { rejectionOf as failure } from '../helpers/rejection'
