/**
 * NDJSON reader for the algorithm service's `/query` stream: one item per non-blank line, the items of one
 * network read handed out together.
 *
 * Lines are cut on raw bytes (Uint8Array.indexOf) and decoded whole, so a multi-byte character split across
 * chunks never needs a streaming decoder, and a partial line is kept as a list of chunk views (no copy until
 * the line is complete). A partial line is never allowed to grow past `maxLineBytes`: an upstream that never
 * sends a newline cannot make the gateway buffer without bound.
 */
import { LINE_TOO_LONG, UpstreamError } from './errors.ts'

export type NdjsonItem =
  | { kind: 'line'; value: Record<string, unknown>; lineNumber: number }
  | { kind: 'invalid'; lineNumber: number; reason: 'json' | 'not_object' }

export interface NdjsonOptions {
  /** Longest accepted line in bytes, newline excluded (the contract says 1 MiB). */
  maxLineBytes: number
  /** Aborting stops the read, cancels the body and makes the generator throw `signal.reason`. */
  signal?: AbortSignal
}

const NEWLINE = 0x0a
const CR = 0x0d
// fatal: bytes that are not UTF-8 make an `invalid` item instead of a line full of U+FFFD.
const decoder = new TextDecoder('utf-8', { fatal: true })

/** A line that is only spaces, tabs or CR (JSON whitespace) is blank. Lines are short; this stays cheap. */
function isBlank(text: string): boolean {
  return text.charCodeAt(0) !== 0x7b /* { */ && text.trim() === ''
}

function parseLine(bytes: Uint8Array, lineNumber: number): NdjsonItem | undefined {
  const end = bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.length - 1 : bytes.length
  let text: string
  try {
    text = decoder.decode(bytes.subarray(0, end))
  } catch {
    return { kind: 'invalid', lineNumber, reason: 'json' }
  }
  if (isBlank(text)) return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { kind: 'invalid', lineNumber, reason: 'json' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { kind: 'invalid', lineNumber, reason: 'not_object' }
  }
  return { kind: 'line', value: value as Record<string, unknown>, lineNumber }
}

/** The bytes of a line that began in earlier chunks: kept as views, joined once the newline arrives. */
class PartialLine {
  private parts: Uint8Array[] = []
  length = 0

  push(part: Uint8Array) {
    if (part.length === 0) return
    // A small view would pin its whole chunk; copy it so what is kept stays close to the line's own size.
    this.parts.push(part.byteLength * 2 < part.buffer.byteLength ? part.slice() : part)
    this.length += part.length
  }

  /** The whole line: `tail` appended to what was kept; the buffer is left empty. */
  take(tail: Uint8Array): Uint8Array {
    if (this.parts.length === 0) return tail
    this.push(tail)
    const out = Bun.concatArrayBuffers(this.parts, Infinity, true)
    this.parts = []
    this.length = 0
    return out
  }
}

/**
 * The items of each read from the body, together: a relay handles the lines of one network read in one turn
 * instead of resuming a generator per line.
 */
export async function* readNdjsonBatches(
  body: ReadableStream<Uint8Array>,
  opts: NdjsonOptions,
): AsyncGenerator<NdjsonItem[]> {
  const { maxLineBytes, signal } = opts
  const reader = body.getReader()
  // Cancelling the reader ends a pending read(), so an abort is noticed even while the upstream is silent.
  const onAbort = () => void reader.cancel(signal?.reason).catch(() => {})
  signal?.addEventListener('abort', onAbort, { once: true })
  const partial = new PartialLine()
  let lineNumber = 0
  let finished = false
  const tooLong = () => new UpstreamError('STREAM_ERROR', LINE_TOO_LONG)

  try {
    if (signal?.aborted) throw signal.reason
    while (true) {
      let chunk: Awaited<ReturnType<typeof reader.read>>
      try {
        chunk = await reader.read()
      } catch (err) {
        if (signal?.aborted) throw signal.reason
        // the driver's own words stay in `cause` (logs); clients get the contract's message only
        throw new UpstreamError('STREAM_ERROR', 'The algorithm service broke off the stream', {
          cause: err,
        })
      }
      if (signal?.aborted) throw signal.reason
      if (chunk.done) break
      const bytes = chunk.value
      const batch: NdjsonItem[] = []
      let start = 0
      while (start < bytes.length) {
        const nl = bytes.indexOf(NEWLINE, start)
        const end = nl === -1 ? bytes.length : nl
        if (partial.length + (end - start) > maxLineBytes) {
          // the lines before it in this read are still handed out
          if (batch.length > 0) yield batch
          throw tooLong()
        }
        if (nl === -1) {
          partial.push(bytes.subarray(start))
          break
        }
        const item = parseLine(partial.take(bytes.subarray(start, nl)), lineNumber + 1)
        start = nl + 1
        if (!item) continue
        lineNumber = item.lineNumber
        batch.push(item)
      }
      if (batch.length > 0) yield batch
      // aborted while the batch was being handled: read no further
      if (signal?.aborted) throw signal.reason
    }
    // The last line may lack its newline; it still counts.
    const item = parseLine(partial.take(new Uint8Array(0)), lineNumber + 1)
    if (item) yield [item]
    finished = true
  } finally {
    signal?.removeEventListener('abort', onAbort)
    // Left early (error, consumer stopped): tell the body we will not read on, so the connection closes.
    if (!finished) await reader.cancel().catch(() => {})
    reader.releaseLock()
  }
}
