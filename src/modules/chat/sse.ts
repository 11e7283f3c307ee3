/**
 * What the chat stream says, independent of the framework: the events (one discriminated union), the name an
 * upstream line gets, and the SSE text of each. The route hands these to Elysia; tests can read them directly.
 */

/** one SSE event with its id, or the `: ping` comment sent while the upstream is silent */
export type ChatEvent = { kind: 'event'; id: number; event: string; data: Record<string, unknown> } | { kind: 'ping' }

const EVENT_NAME = /^[a-z][a-z0-9_.]{0,63}$/

/** the VoiceHelper algorithm service's own `/query` types, renamed to the seed's */
const LEGACY_NAMES: Record<string, string> = {
  refs: 'retrieval_result',
  content: 'generation_chunk',
  end: 'generation_done',
}

/** event name of an upstream line: its legacy rename, else its `type` when it is a safe name, else `message` */
export function eventName(line: Record<string, unknown>): string {
  const type = line.type
  if (typeof type !== 'string') return 'message'
  if (Object.hasOwn(LEGACY_NAMES, type)) return LEGACY_NAMES[type]!
  return EVENT_NAME.test(type) ? type : 'message'
}

/** the wire text of an event: `id: <n>\nevent: <name>\ndata: <json>\n\n` */
export function formatEvent(e: ChatEvent): string {
  if (e.kind === 'ping') return ': ping\n\n'
  return `id: ${e.id}\nevent: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`
}
