/**
 * One stream's answer as its client receives it: each upstream read becomes SSE events (named, enriched, given
 * their ids), and what those events said is gathered for the stored message — text, references, usage, time to
 * the first chunk — counting only events that were sent. No I/O: the chat run relays what `take` returns.
 */
import type { NdjsonItem } from '../../upstream'
import { eventName, formatEvent, formatEventData, unixSeconds } from './sse'

/** the answer outgrew its byte limit: the events that fit were sent, the rest is not read */
export class AnswerTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the answer passed ${limit} bytes`)
    this.name = 'AnswerTooLarge'
  }
}

/** the chunk text of a generation_chunk line (`content`, or `delta`) */
export function chunkText(line: Record<string, unknown>): string {
  const text = line.content ?? line.delta
  return typeof text === 'string' ? text : ''
}

/**
 * The line's own JSON text with `request_id`, `line_number` and `timestamp` added — the same object as the parsed
 * line with them set, without serialising it again. Undefined when the text cannot simply be extended: the line
 * sets `line_number` or `timestamp`, or another `request_id`, itself (ours replace them), or a CR in its
 * whitespace would end the SSE data line.
 */
export function enrichedText(text: string, line: Record<string, unknown>, requestId: string, lineNumber: number, timestamp: number, requestIdJson = JSON.stringify(requestId)): string | undefined {
  if (Object.hasOwn(line, 'line_number') || Object.hasOwn(line, 'timestamp') || text.includes('\r')) return undefined
  let id = ''
  if (!Object.hasOwn(line, 'request_id')) id = `"request_id":${requestIdJson},`
  else if (line.request_id !== requestId) return undefined
  // JSON allows only whitespace after the closing brace, and a comma is needed unless the object is empty
  const close = text.lastIndexOf('}')
  let last = close - 1
  while (text.charCodeAt(last) <= 0x20) last--
  return `${text.slice(0, close)}${text.charCodeAt(last) === 0x7b ? '' : ','}${id}"line_number":${lineNumber},"timestamp":${timestamp}}`
}

/**
 * An upstream `error` line with the contract's `code` and `error`: what it sent is kept, what it left out is added
 * (the text from its `message`, or `content` in the legacy format).
 */
function asContractError(line: Record<string, unknown>): void {
  if (typeof line.code !== 'string' || line.code === '') line.code = 'ALGO_SERVICE_ERROR'
  if (typeof line.error !== 'string' || line.error === '') {
    const said = [line.message, line.content].find((t) => typeof t === 'string' && t !== '')
    line.error = (said as string | undefined) ?? 'The algorithm service reported an error'
  }
}

export class Answer {
  text = ''
  references: unknown[] | undefined
  usage: Record<string, unknown> | undefined
  /** ms from the stream's start to its first generation_chunk */
  ttftMs: number | undefined
  /** upstream lines sent as events */
  lines = 0
  /** upstream lines skipped: not JSON objects */
  invalidLines = 0
  /** the upstream sent an `error` line */
  failed = false
  /** UTF-8 bytes of the events sent */
  bytes = 0

  private readonly requestIdJson: string

  constructor(
    private readonly requestId: string,
    /** past this many bytes of events the answer is cut */
    private readonly maxBytes: number,
    private readonly startedAt: number,
    private readonly now: () => number = Date.now,
  ) {
    this.requestIdJson = JSON.stringify(requestId)
  }

  /**
   * The events of one upstream read, ids from `firstId`, with their texts joined (a watcher's one write).
   * Throws AnswerTooLarge past the limit, after `sent` got the events that fit.
   */
  take(batch: readonly NdjsonItem[], firstId: number, sent: (texts: string[], joined?: string) => void): void {
    const texts: string[] = []
    // each event's name and line, for the accounting once it is known which fit (parallel arrays: no object per event)
    const names: string[] = []
    const lines: Array<Record<string, unknown>> = []
    const timestamp = unixSeconds()
    for (const item of batch) {
      if (item.kind === 'invalid') {
        this.invalidLines++
        continue
      }
      const line = item.value
      const name = eventName(line)
      let data: string | undefined
      if (name === 'error') asContractError(line) // serialised again below, with the fields it lacked
      else data = enrichedText(item.text, line, this.requestId, item.lineNumber, timestamp, this.requestIdJson)
      if (data !== undefined) texts.push(formatEventData(firstId + texts.length, name, data))
      else {
        // the parsed line is ours: enriched in place
        line.request_id = this.requestId
        line.line_number = item.lineNumber
        line.timestamp = timestamp
        texts.push(formatEvent(firstId + texts.length, name, line))
      }
      names.push(name)
      lines.push(line)
    }
    if (texts.length === 0) return
    // counted once per read, on the text its watchers are written anyway: counting each event's fresh text
    // costs more than formatting it (bench/chat-lines.ts); event by event only past the limit, to cut there
    let joined: string | undefined = texts.length === 1 ? texts[0]! : texts.join('')
    const bytes = Buffer.byteLength(joined)
    let fit = texts.length
    if (this.bytes + bytes > this.maxBytes) {
      for (fit = 0; fit < texts.length; fit++) {
        const b = Buffer.byteLength(texts[fit]!)
        if (this.bytes + b > this.maxBytes) break
        this.bytes += b
      }
      joined = undefined
    } else this.bytes += bytes
    // what is stored is what was sent: only the events that fit count
    for (let i = 0; i < fit; i++) {
      const name = names[i]!
      const line = lines[i]!
      this.lines++
      if (name === 'generation_chunk') {
        this.ttftMs ??= this.now() - this.startedAt
        this.text += chunkText(line)
      } else if (name === 'retrieval_result') {
        const refs = line.references ?? line.refs
        if (Array.isArray(refs)) this.references = refs
      } else if (name === 'error') {
        this.failed = true
      }
      if (line.usage && typeof line.usage === 'object') this.usage = line.usage as Record<string, unknown>
    }
    if (fit === texts.length) return sent(texts, joined)
    if (fit > 0) sent(texts.slice(0, fit))
    throw new AnswerTooLarge(this.maxBytes)
  }
}
