/**
 * What the chat stream says, independent of the framework: the name an upstream line gets, and the SSE text
 * of an event and of a ping. The route hands these to Elysia; tests can read them directly.
 */


/** contract §0: a body's `timestamp` is unix seconds (as the seed); `*_at` fields are RFC 3339 */
export const unixSeconds = () => Math.floor(Date.now() / 1000)

const EVENT_NAME = /^[a-z][a-z0-9_.]{0,63}$/

/** the VoiceHelper algorithm service's own `/query` types, renamed to the seed's */
const LEGACY_NAMES: Record<string, string> = {
  refs: 'retrieval_result',
  content: 'generation_chunk',
  end: 'generation_done',
}

/** the gateway's own framing: an upstream line cannot pose as the stream's start or end */
const RESERVED_NAMES = new Set(['stream_start', 'stream_end', 'stream_cancelled'])

/** event name of an upstream line: its legacy rename, else its `type` when it is a safe name and not ours, else `message` */
export function eventName(line: Record<string, unknown>): string {
  const type = line.type
  if (typeof type !== 'string') return 'message'
  if (Object.hasOwn(LEGACY_NAMES, type)) return LEGACY_NAMES[type]!
  return EVENT_NAME.test(type) && !RESERVED_NAMES.has(type) ? type : 'message'
}

/** the wire text of an event: `id: <n>\nevent: <name>\ndata: <json>\n\n` (JSON keeps newlines escaped: one data line) */
export function formatEvent(id: number, name: string, data: Record<string, unknown>): string {
  return formatEventData(id, name, JSON.stringify(data))
}

/** the same with the data already JSON (one line: no CR or LF in it) */
export function formatEventData(id: number, name: string, json: string): string {
  return `id: ${id}\nevent: ${name}\ndata: ${json}\n\n`
}

/** the comment sent while a stream is silent */
export const PING = ': ping\n\n'

/** the events of a log written as their texts back to back (an event's text holds no blank line but its end) */
export function splitEvents(log: string): string[] {
  const events: string[] = []
  for (let start = 0; start < log.length; ) {
    const end = log.indexOf('\n\n', start)
    if (end === -1) break // a torn tail is not an event
    events.push(log.slice(start, end + 2))
    start = end + 2
  }
  return events
}
