/**
 * One session's socket to the algorithm service (`{algo}/voice/stream`). Bun's client WebSocket has no
 * `drain` event and never refuses a send, so backpressure is read from `bufferedAmount`: past the bound,
 * frames wait in a local queue that is flushed as the socket empties, and when the queue itself passes
 * the bound the oldest audio in it is dropped. Control messages are never dropped. A connection that
 * drops after it was open is re-opened once; a second failure, or a failed first connect, is final.
 */

export type UpstreamFailure = 'connect_failed' | 'dropped'

export interface UpstreamLinkOptions {
  /** ws:// or wss:// URL with the session's query */
  url: string
  headers?: Record<string, string>
  connectTimeoutMs: number
  /** bytes buffered in the socket before frames wait (and queued bytes before stale audio is dropped) */
  maxBufferedBytes: number
}

/** What the link tells its owner (an object with these methods, so an idle session holds no closures for them). */
export interface UpstreamEvents {
  upstreamOpened(): void
  /** the first message on every socket the link opens (the first and a reconnected one) */
  upstreamGreeting(): string
  upstreamEvent(raw: string): void
  /** the link gave up; called once */
  upstreamFailed(kind: UpstreamFailure): void
  /** audio frames dropped from the queue */
  upstreamDropped(frames: number): void
  /** a frame was handed to the socket `ms` after it was received */
  upstreamRelayed(ms: number): void
  /** the connection dropped and is being re-opened */
  upstreamReconnecting(): void
}

interface Queued {
  text: string
  audio: boolean
  at: number
}

const FLUSH_POLL_MS = 5

export class UpstreamLink {
  private ws: WebSocket | undefined
  private queue: Queued[] = []
  private queuedBytes = 0
  private open = false
  private reconnected = false
  private closed = false
  private everOpened = false
  private pollTimer: ReturnType<typeof setTimeout> | undefined

  constructor(
    private readonly o: UpstreamLinkOptions,
    private readonly events: UpstreamEvents,
  ) {
    this.connect()
  }

  get bufferedBytes(): number {
    return this.queuedBytes + (this.ws?.bufferedAmount ?? 0)
  }

  /** `at` is when the frame reached the gateway (performance.now()) */
  send(text: string, audio: boolean, at: number): void {
    if (this.closed) return
    const ws = this.ws
    if (this.open && this.queue.length === 0 && ws!.bufferedAmount < this.o.maxBufferedBytes) {
      ws!.send(text)
      this.events.upstreamRelayed(performance.now() - at)
      return
    }
    this.queue.push({ text, audio, at })
    this.queuedBytes += text.length
    if (this.queuedBytes > this.o.maxBufferedBytes) this.dropStaleAudio()
    if (this.open) this.schedulePoll()
  }

  close(code = 1000, reason = 'session ended'): void {
    if (this.closed) return
    this.closed = true
    this.open = false
    if (this.pollTimer !== undefined) clearTimeout(this.pollTimer)
    this.queue = []
    this.queuedBytes = 0
    const ws = this.ws
    this.ws = undefined
    try {
      ws?.close(code, reason)
    } catch {
      // already closing
    }
  }

  private dropStaleAudio(): void {
    let dropped = 0
    const kept: Queued[] = []
    let excess = this.queuedBytes - this.o.maxBufferedBytes
    for (const q of this.queue) {
      if (excess > 0 && q.audio) {
        excess -= q.text.length
        this.queuedBytes -= q.text.length
        dropped++
      } else kept.push(q)
    }
    this.queue = kept
    if (dropped > 0) this.events.upstreamDropped(dropped)
  }

  private flush(): void {
    const ws = this.ws
    if (!this.open || !ws) return
    let sent = 0
    while (sent < this.queue.length && ws.bufferedAmount < this.o.maxBufferedBytes) {
      const q = this.queue[sent++]!
      ws.send(q.text)
      this.queuedBytes -= q.text.length
      this.events.upstreamRelayed(performance.now() - q.at)
    }
    if (sent > 0) this.queue = sent === this.queue.length ? [] : this.queue.slice(sent)
    if (this.queue.length > 0) this.schedulePoll()
  }

  private schedulePoll(): void {
    if (this.pollTimer !== undefined) return
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined
      this.flush()
    }, FLUSH_POLL_MS)
  }

  private connect(): void {
    const ws = new WebSocket(this.o.url, { headers: this.o.headers } as unknown as string[])
    this.ws = ws
    const timer = setTimeout(() => {
      if (this.ws === ws && !this.open) this.fail(ws)
    }, this.o.connectTimeoutMs)
    ws.onopen = () => {
      clearTimeout(timer)
      if (this.ws !== ws) return
      this.open = true
      ws.send(this.events.upstreamGreeting())
      if (!this.everOpened) {
        this.everOpened = true
        this.events.upstreamOpened()
      }
      this.flush()
    }
    ws.onmessage = (e) => {
      if (this.ws === ws && typeof e.data === 'string') this.events.upstreamEvent(e.data)
    }
    ws.onclose = () => {
      clearTimeout(timer)
      if (this.ws !== ws || this.closed) return
      const wasOpen = this.open
      this.open = false
      if (wasOpen && !this.reconnected) {
        this.reconnected = true
        this.events.upstreamReconnecting()
        this.connect()
        return
      }
      this.fail(ws)
    }
    // an error is followed by close; nothing to do here, but an unhandled error event must not throw
    ws.onerror = () => {}
  }

  private fail(ws: WebSocket): void {
    const kind: UpstreamFailure = this.everOpened ? 'dropped' : 'connect_failed'
    this.close(1011, 'upstream failed')
    try {
      ws.close()
    } catch {
      // ignore
    }
    this.events.upstreamFailed(kind)
  }
}
