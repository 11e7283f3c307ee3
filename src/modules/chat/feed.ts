/**
 * The events of one chat stream as its watchers see them: an append-only list of SSE texts (id = index) that
 * ends once. The instance running the stream appends to it as upstream lines arrive; an instance following a
 * stream held elsewhere fills it from the store. Any number of client connections watch it, each from its own
 * position, so a re-POST, a resume and the original request are the same code.
 *
 * A watcher is pushed to: an event is written to every caught-up connection in the turn it is appended, with no
 * promise or generator between the upstream read and the socket (Bun's direct stream buffers the turn's
 * writes and sends them as one).
 */

import { PING } from './sse'

/** one client connection's side of a feed */
interface Watcher {
  /** the first event it is written (a resume starts after the client's last) */
  from: number
  write(text: string): void
  close(): void
}

export class EventFeed {
  /** each event's text, by id, while the feed is open */
  private events: string[] = []
  /** the same texts in as few strings as they came in (a read's joined text is one): joined, the whole stream */
  private pieces: string[] = []
  /** an ended feed kept for replay, compacted: its whole text and where each event starts */
  private kept: { text: string; starts: Uint32Array } | undefined
  ended = false
  private readonly watching: Watcher[] = []

  /** client connections watching this feed now */
  get watchers(): number {
    return this.watching.length
  }

  /** events so far: the next event's id */
  get count(): number {
    return this.kept ? this.kept.starts.length : this.events.length
  }

  /** UTF-16 code units of all the events */
  get size(): number {
    if (this.kept) return this.kept.text.length
    let n = 0
    for (const piece of this.pieces) n += piece.length
    return n
  }

  /** the texts of events `from` to `to` (exclusive) */
  between(from: number, to: number): string[] {
    const { kept } = this
    if (!kept) return this.events.slice(from, to)
    const { text, starts } = kept
    const out: string[] = []
    for (let i = Math.max(0, from); i < Math.min(to, starts.length); i++) out.push(text.slice(starts[i], i + 1 < starts.length ? starts[i + 1] : text.length))
    return out
  }

  push(text: string): void {
    const id = this.events.push(text) - 1
    this.pieces.push(text)
    for (const w of this.watching) if (id >= w.from) w.write(text)
  }

  /**
   * appends the events of one upstream read: each watcher gets them as one write (`joined`: their texts joined, if
   * at hand). With `joined`, the events are kept as pieces of it: a freshly formatted text is a rope of its parts,
   * several strings apiece, held for as long as the stream can be replayed.
   */
  pushAll(texts: readonly string[], joined?: string): void {
    if (texts.length === 1) return this.push(texts[0]!)
    const from = this.events.length
    if (joined === undefined) {
      for (const text of texts) {
        this.events.push(text)
        this.pieces.push(text)
      }
    } else {
      for (let i = 0, at = 0; i < texts.length; i++) {
        const n = texts[i]!.length
        this.events.push(joined.slice(at, at + n))
        at += n
      }
      this.pieces.push(joined)
    }
    for (const w of this.watching) {
      if (w.from <= from) w.write((joined ??= texts.join('')))
      else if (w.from < this.events.length) w.write(this.textFrom(w.from))
    }
  }

  /** the events from `from` on as one text: from the start, joined from a few strings per read, not one per event */
  textFrom(from: number): string {
    const { kept } = this
    if (kept) return from <= 0 ? kept.text : from >= kept.starts.length ? '' : kept.text.slice(kept.starts[from])
    if (from <= 0) return this.pieces.length === 1 ? this.pieces[0]! : this.pieces.join('')
    return this.events.length - from === 1 ? this.events[from]! : this.events.slice(from).join('')
  }

  /**
   * An ended feed kept for replay holds one string and one array of offsets instead of a string per event (and
   * the parts of each): the collector marks what is kept for as long as it is kept, minutes of finished streams
   * (bench/RESULTS.md).
   */
  compact(): void {
    if (!this.ended || this.kept) return
    const starts = new Uint32Array(this.events.length)
    for (let i = 0, at = 0; i < this.events.length; i++) {
      starts[i] = at
      at += this.events[i]!.length
    }
    this.kept = { text: this.pieces.join(''), starts }
    this.events = []
    this.pieces = []
  }

  /** lets go of the events (a replay log given up); the feed's count starts again from 0 */
  clear(): void {
    this.events = []
    this.pieces = []
    this.kept = undefined
  }

  /** places events known to start at `from` (a batch from another instance), ignoring what is already here */
  fill(from: number, texts: readonly string[]): void {
    const skip = Math.max(0, this.count - from)
    if (from + skip !== this.count || skip >= texts.length) return
    this.pushAll(skip === 0 ? texts : texts.slice(skip))
  }

  /** the stream has been silent for a ping interval */
  ping(): void {
    for (const w of this.watching) w.write(PING)
  }

  finish(): void {
    if (this.ended) return
    this.ended = true
    for (const w of this.watching.splice(0)) w.close()
  }

  /** writes the events from `w.from` on, those here and those to come, until the feed ends or `detach` */
  attach(w: Watcher): void {
    if (this.count > w.from) w.write(this.textFrom(w.from))
    if (this.ended) w.close()
    else this.watching.push(w)
  }

  detach(w: Watcher): void {
    const i = this.watching.indexOf(w)
    if (i !== -1) this.watching.splice(i, 1)
  }
}

/**
 * One client connection watching a feed after event `after` (-1: from the start), as a response body: every
 * event once and in order, `: ping` while the stream is silent. Ends with the feed, or when the client leaves
 * (`signal` aborts, or Bun cancels the body). `hooks` hear when it starts and stops watching, once each.
 * Writes do not wait for a slow client: its unsent bytes wait in Bun's buffer, at most the stream's own size
 * (which the feed holds anyway, for replay).
 */
export function watchFeed(feed: EventFeed, after: number, signal: AbortSignal, hooks: { attached(): void; detached(): void }): ReadableStream<string> {
  /** written before Bun asked for the body */
  let early: string[] | undefined = []
  let controller: ReadableStreamDirectController | undefined
  let settle: (() => void) | undefined
  let closed = false
  const watcher: Watcher = {
    from: after + 1,
    write(text) {
      if (controller) controller.write(text)
      else early?.push(text)
    },
    close() {
      if (closed) return
      closed = true
      signal.removeEventListener('abort', leave)
      hooks.detached()
      if (controller) {
        controller.close()
        settle?.()
      }
    },
  }
  function leave(): void {
    feed.detach(watcher)
    early = undefined
    watcher.close()
  }
  hooks.attached()
  if (signal.aborted) leave()
  else {
    signal.addEventListener('abort', leave, { once: true })
    feed.attach(watcher)
  }
  return new ReadableStream({
    type: 'direct',
    pull(c) {
      controller = c
      if (early && early.length > 0) c.write(early.length === 1 ? early[0]! : early.join(''))
      early = undefined
      if (closed) {
        c.close()
        return
      }
      return new Promise<void>((resolve) => (settle = resolve))
    },
    cancel: leave,
  })
}
