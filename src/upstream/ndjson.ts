/**
 * NDJSON reader for the algorithm service's `/query` stream: one item per non-blank line, the items of one
 * network read handed out together.
 *
 * Lines are cut on raw bytes (Uint8Array.indexOf), and the complete lines of a read are decoded together, so a
 * multi-byte character split across chunks never needs a streaming decoder (a newline byte is never inside one),
 * and a partial line is kept as a list of chunk views (no copy until the line is complete). A partial line is
 * never allowed to grow past `maxLineBytes`: an upstream that never sends a newline cannot make the gateway
 * buffer without bound.
 */
import { LINE_TOO_LONG, UpstreamError } from './errors.ts'

export type NdjsonItem =
  /** `text`: the line as sent, without its newline (and CR) */
  | { kind: 'line'; value: Record<string, unknown>; text: string; lineNumber: number }
  | { kind: 'invalid'; lineNumber: number; reason: 'json' | 'not_object' }

export interface NdjsonOptions {
  /** Longest accepted line in bytes, newline excluded (the contract says 1 MiB). */
  maxLineBytes: number
  /** Aborting stops the read, cancels the body and makes the reader throw `signal.reason`. */
  signal?: AbortSignal
}

const NEWLINE = 0x0a
const CR = 0x0d
// fatal: bytes that are not UTF-8 make an `invalid` item instead of a line full of U+FFFD. A BOM is kept here
// and dropped per line (parseText), so a line's reading does not depend on where the reads were cut.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const BOM = 0xfeff

/** A line that is only spaces, tabs or CR (JSON whitespace) is blank. Lines are short; this stays cheap. */
function isBlank(text: string): boolean {
  return text.charCodeAt(0) !== 0x7b /* { */ && text.trim() === ''
}

function parseText(text: string, lineNumber: number): NdjsonItem | undefined {
  if (text.charCodeAt(text.length - 1) === CR) text = text.slice(0, -1)
  if (text.charCodeAt(0) === BOM) text = text.slice(1)
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
  return { kind: 'line', value: value as Record<string, unknown>, text, lineNumber }
}

function parseLine(bytes: Uint8Array, lineNumber: number): NdjsonItem | undefined {
  let text: string
  try {
    text = decoder.decode(bytes)
  } catch {
    return { kind: 'invalid', lineNumber, reason: 'json' }
  }
  return parseText(text, lineNumber)
}

/**
 * The items of the lines in `region` (whole lines, newline-separated, the last without its newline), numbered
 * after `lineNumber`, pushed to `out`; returns the last number given. One decode for the region; if it is not
 * UTF-8, line by line, so that only the lines that are not become invalid items.
 */
function parseRegion(region: Uint8Array, lineNumber: number, out: NdjsonItem[]): number {
  const add = (item: NdjsonItem | undefined) => {
    if (!item) return
    lineNumber = item.lineNumber
    out.push(item)
  }
  let text: string | undefined
  try {
    text = decoder.decode(region)
  } catch {
    for (let start = 0; start <= region.length; ) {
      const nl = region.indexOf(NEWLINE, start)
      const end = nl === -1 ? region.length : nl
      add(parseLine(region.subarray(start, end), lineNumber + 1))
      start = end + 1
    }
    return lineNumber
  }
  for (const line of text.split('\n')) add(parseText(line, lineNumber + 1))
  return lineNumber
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
 * Cuts a body's bytes into NDJSON items, read by read, without I/O: `push` gives the items of the lines a read
 * completes (the first continues the partial one), `end` the last line if it lacks its newline. A line past
 * `maxLineBytes` sets `failure` (STREAM_ERROR): the whole lines before it in that read are still given.
 */
class NdjsonDecoder {
  private readonly partial = new PartialLine()
  private lineNumber = 0
  /** set once a line outgrew the limit: nothing more is read */
  failure: UpstreamError | undefined

  constructor(private readonly maxLineBytes: number) {}

  push(bytes: Uint8Array): NdjsonItem[] {
    const batch: NdjsonItem[] = []
    if (this.failure) return batch
    const { partial } = this
    // the lines' lengths first; past the limit, the whole lines before it are still handed out
    let lastNewline = -1
    for (let start = 0; start < bytes.length; ) {
      const nl = bytes.indexOf(NEWLINE, start)
      const end = nl === -1 ? bytes.length : nl
      if ((start === 0 ? partial.length : 0) + (end - start) > this.maxLineBytes) {
        if (lastNewline !== -1) this.lineNumber = parseRegion(partial.take(bytes.subarray(0, lastNewline)), this.lineNumber, batch)
        this.failure = new UpstreamError('STREAM_ERROR', LINE_TOO_LONG)
        return batch
      }
      if (nl === -1) break
      lastNewline = nl
      start = nl + 1
    }
    if (lastNewline === -1) {
      partial.push(bytes)
      return batch
    }
    // a read that ends a line (the usual case) is decoded as it is: its last newline leaves an empty line
    const whole = lastNewline === bytes.length - 1
    this.lineNumber = parseRegion(partial.take(whole ? bytes : bytes.subarray(0, lastNewline)), this.lineNumber, batch)
    if (!whole) partial.push(bytes.subarray(lastNewline + 1))
    return batch
  }

  /** the body ended: its last line may lack its newline, it still counts */
  end(): NdjsonItem[] {
    const last: NdjsonItem[] = []
    if (this.partial.length > 0 && !this.failure) parseRegion(this.partial.take(new Uint8Array(0)), this.lineNumber, last)
    return last
  }
}

/** the body's default reader (its type names what `read()` gives) */
const defaultReader = (body: ReadableStream<Uint8Array>) => body.getReader()

/**
 * A body read as NDJSON, read by read: `read()` gives the items of the next network read that has any, the lines
 * of one read together (a relay handles them in one turn). One read at a time.
 */
export class NdjsonReader {
  private reader: ReturnType<typeof defaultReader> | undefined
  private readonly decoder: NdjsonDecoder
  private readonly signal: AbortSignal | undefined
  private bodyDone = false
  /** performance.now() of the last bytes read, blank lines (an upstream's keep-alive) too; -1 before any */
  lastBytesAt = -1
  // Cancelling the reader ends a pending read(), so an abort is noticed even while the upstream is silent.
  private readonly onAbort = () => void this.reader?.cancel(this.signal?.reason).catch(() => {})

  constructor(body: ReadableStream<Uint8Array>, opts: NdjsonOptions) {
    this.reader = defaultReader(body)
    this.decoder = new NdjsonDecoder(opts.maxLineBytes)
    this.signal = opts.signal
    this.signal?.addEventListener('abort', this.onAbort, { once: true })
  }

  /** the items of the next read that has any; undefined once the body ended. Throws STREAM_ERROR or the abort reason. */
  async read(): Promise<NdjsonItem[] | undefined> {
    const { decoder, signal } = this
    if (decoder.failure) throw decoder.failure
    while (!this.bodyDone) {
      if (signal?.aborted) throw signal.reason
      const reader = this.reader
      if (!reader) return undefined
      let chunk: Awaited<ReturnType<typeof reader.read>>
      try {
        chunk = await reader.read()
      } catch (err) {
        if (signal?.aborted) throw signal.reason
        // the driver's own words stay in `cause` (logs); clients get the contract's message only
        throw new UpstreamError('STREAM_ERROR', 'The algorithm service broke off the stream', { cause: err })
      }
      if (signal?.aborted) throw signal.reason
      this.lastBytesAt = performance.now()
      if (chunk.done) {
        this.bodyDone = true
        const last = decoder.end()
        if (last.length > 0) return last
        break
      }
      const batch = decoder.push(chunk.value)
      if (batch.length > 0) return batch
      if (decoder.failure) throw decoder.failure
    }
    return undefined
  }

  /** stops reading; unless the body was read to its end, it is cancelled (so its connection closes). Idempotent. */
  close(): void {
    const { reader } = this
    if (!reader) return
    this.reader = undefined
    this.signal?.removeEventListener('abort', this.onAbort)
    if (!this.bodyDone) void reader.cancel().catch(() => {})
    reader.releaseLock()
  }
}

/** The reader as an async generator: the items of each read from the body, together. */
export async function* readNdjsonBatches(body: ReadableStream<Uint8Array>, opts: NdjsonOptions): AsyncGenerator<NdjsonItem[]> {
  const reader = new NdjsonReader(body, opts)
  try {
    for (let batch = await reader.read(); batch; batch = await reader.read()) yield batch
  } finally {
    reader.close()
  }
}
