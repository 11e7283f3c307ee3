/** A gateway listening on a real socket, and an SSE reader for its chat stream. */
import { createTestApp, type TestApp } from '../helpers/app'
import { makeTenant, makeUser, type TestUser } from '../helpers/identity'
import { eventually as waitFor } from '../helpers/wait'

export interface SseEvent {
  id?: number
  event?: string
  data?: Record<string, unknown>
  /** a comment line such as `: ping` */
  comment?: string
}

export async function listeningGateway(env: Record<string, string> = {}): Promise<{ gw: TestApp; base: string }> {
  const gw = await createTestApp(env)
  gw.app.listen({ port: 0, hostname: '127.0.0.1' })
  return { gw, base: `http://127.0.0.1:${gw.app.server!.port}` }
}

export async function chatUser(gw: TestApp): Promise<TestUser> {
  return makeUser(gw, { tenantId: await makeTenant(gw) })
}

/** reads SSE events one by one from a response body */
export class SseReader {
  private readonly reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> }
  private readonly decoder = new TextDecoder()
  private buffer = ''
  /** every byte read so far */
  raw = ''
  readonly seen: SseEvent[] = []

  constructor(res: Response) {
    this.reader = res.body!.getReader()
  }

  /** the next event or comment; undefined at the end of the stream */
  async next(): Promise<SseEvent | undefined> {
    while (true) {
      const end = this.buffer.indexOf('\n\n')
      if (end !== -1) {
        const block = this.buffer.slice(0, end)
        this.buffer = this.buffer.slice(end + 2)
        const e: SseEvent = {}
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) e.comment = line.slice(1).trim()
          else if (line.startsWith('id: ')) e.id = Number(line.slice(4))
          else if (line.startsWith('event: ')) e.event = line.slice(7)
          else if (line.startsWith('data: ')) e.data = JSON.parse(line.slice(6))
        }
        this.seen.push(e)
        return e
      }
      const { done, value } = await this.reader.read()
      if (done) return undefined
      const text = this.decoder.decode(value, { stream: true })
      this.raw += text
      this.buffer += text
    }
  }

  /** reads until an event with that name (returned) or the end (throws) */
  async until(name: string): Promise<SseEvent> {
    while (true) {
      const e = await this.next()
      if (!e) throw new Error(`stream ended before ${name}: ${this.seen.map((s) => s.event ?? `:${s.comment}`).join(',')}`)
      if (e.event === name) return e
    }
  }

  /** every remaining event */
  async rest(): Promise<SseEvent[]> {
    while (await this.next());
    return this.seen
  }

  cancel(): Promise<void> {
    return this.reader.cancel()
  }
}

export function chatRequest(user: TestUser, body: Record<string, unknown>, signal?: AbortSignal): RequestInit {
  return {
    method: 'POST',
    headers: { ...user.auth, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal,
  }
}

/** waits until `check` holds (3 s by default for chat) */
export const eventually = (check: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<void> => waitFor(check, timeoutMs)
