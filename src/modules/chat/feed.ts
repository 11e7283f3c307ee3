/**
 * The events of one chat stream as its watchers see them: an append-only list of SSE texts (id = index) that
 * ends once. The instance running the stream appends to it as upstream lines arrive; an instance following a
 * stream held elsewhere fills it from the store. Any number of client connections read it, each from its own
 * position, so a re-POST, a resume and the original request are the same code.
 */

import { PING } from './sse'

export class EventFeed {
  readonly events: string[] = []
  ended = false
  /** bumped when a ping is due: the stream has been silent for a ping interval */
  pings = 0
  /** client connections reading this feed now */
  watchers = 0
  private waiting: PromiseWithResolvers<void> | undefined

  /** settles at the next append, ping or end (one promise shared by every waiting watcher) */
  changed(): Promise<void> {
    this.waiting ??= Promise.withResolvers<void>()
    return this.waiting.promise
  }

  /**
   * Wakes the waiting watchers once per turn of the event loop, after every event of that turn is in: the
   * lines of one upstream read then go to each client as one write instead of one write per line.
   */
  protected wake(): void {
    if (!this.waiting || this.wakeScheduled) return
    this.wakeScheduled = true
    setImmediate(this.wakeNow)
  }

  private wakeScheduled = false
  private readonly wakeNow = () => {
    this.wakeScheduled = false
    const w = this.waiting
    this.waiting = undefined
    w?.resolve()
  }

  push(text: string): void {
    this.events.push(text)
    this.wake()
  }

  /** places events known to start at `from` (a batch from another instance), ignoring what is already here */
  fill(from: number, texts: readonly string[]): void {
    let added = false
    for (let i = Math.max(0, this.events.length - from); i < texts.length && from + i === this.events.length; i++) {
      this.events.push(texts[i]!)
      added = true
    }
    if (added) this.wake()
  }

  ping(): void {
    this.pings++
    this.wake()
  }

  finish(): void {
    if (this.ended) return
    this.ended = true
    this.wake()
  }
}

/**
 * One client connection reading a feed after event `after` (-1: from the start): every event is written once
 * and in order, several at once when the client is behind; `: ping` when the feed pings while the client is
 * caught up. Ends with the feed, or as soon as `signal` aborts (the client left).
 */
export async function* watchFeed(feed: EventFeed, after: number, signal: AbortSignal, hooks: { attached(): void; detached(): void }): AsyncGenerator<string> {
  let next = after + 1
  let pings = feed.pings
  let onAbort: (() => void) | undefined
  const gone = new Promise<void>((resolve) => {
    onAbort = () => resolve()
    if (signal.aborted) resolve()
    else signal.addEventListener('abort', onAbort, { once: true })
  })
  feed.watchers++
  hooks.attached()
  try {
    while (!signal.aborted) {
      const n = feed.events.length
      if (n > next) {
        const text = n - next === 1 ? feed.events[next]! : feed.events.slice(next, n).join('')
        next = n
        yield text
        continue
      }
      if (feed.ended) return
      if (feed.pings !== pings) {
        pings = feed.pings
        yield PING
        continue
      }
      await Promise.race([feed.changed(), gone])
    }
  } finally {
    signal.removeEventListener('abort', onAbort!)
    feed.watchers--
    hooks.detached()
  }
}
