/**
 * A finished chat stream's replay log as one text (what the ending SETs in Redis, and what a re-POST or a resume
 * from the start is written): the feed's events joined one by one (each a slice of its read's text) against the
 * feed's reads joined (`EventFeed.textFrom(0)`), same process, alternating. Streams as the chat benchmark's
 * throughput scenario sends them: 200 chunks and 7 framing events, arriving in `--reads` upstream reads.
 *
 *   bun bench/chat-log.ts [--streams 2000] [--reads 3] [--rounds 9]
 */
import { parseArgs } from 'node:util'
import { EventFeed } from '../src/modules/chat/feed'
import { formatEventData } from '../src/modules/chat/sse'
import { machine } from './lib'

const { values: args } = parseArgs({ options: { streams: { type: 'string', default: '2000' }, reads: { type: 'string', default: '3' }, rounds: { type: 'string', default: '9' } } })
const STREAMS = Number(args.streams)
const READS = Number(args.reads)
const ROUNDS = Number(args.rounds)
const EVENTS = 207

function stream(): EventFeed {
  const feed = new EventFeed()
  feed.push(formatEventData(0, 'stream_start', '{"request_id":"req_01abcdef0123456789abcdef01234567","timestamp":1765000000}'))
  let id = 1
  const per = Math.ceil((EVENTS - 2) / READS)
  while (id < EVENTS - 1) {
    const texts: string[] = []
    for (let i = 0; i < per && id < EVENTS - 1; i++, id++) {
      texts.push(formatEventData(id, 'generation_chunk', `{"type":"generation_chunk","content":"Simulated answer ${id} ","request_id":"req_01abcdef0123456789abcdef01234567","line_number":${id},"timestamp":1765000000}`))
    }
    feed.pushAll(texts, texts.join(''))
  }
  feed.push(formatEventData(id, 'stream_end', '{"request_id":"req_01abcdef0123456789abcdef01234567","lines_processed":205}'))
  return feed
}

const feeds = Array.from({ length: STREAMS }, stream)
const ways = {
  'events joined': (f: EventFeed) => f.between(0, f.count).join(''),
  'textFrom(0)': (f: EventFeed) => f.textFrom(0),
}
const samples: Record<string, number[]> = { 'events joined': [], 'textFrom(0)': [] }
let sink = 0
for (let round = 0; round < ROUNDS + 2; round++) {
  for (const name of (round % 2 ? ['textFrom(0)', 'events joined'] : ['events joined', 'textFrom(0)']) as Array<keyof typeof ways>) {
    const t = performance.now()
    for (const f of feeds) sink += ways[name](f).length
    if (round >= 2) samples[name]!.push(((performance.now() - t) * 1000) / STREAMS)
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
console.log(`\n${machine()} — ${STREAMS} streams of ${EVENTS} events (${Math.round(sink / STREAMS / (ROUNDS + 2) / 2)} characters) in ${READS} reads, median of ${ROUNDS} rounds\n`)
for (const [name, xs] of Object.entries(samples)) console.log(`- ${name}: ${median(xs).toFixed(2)} µs per stream (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`)
console.log(`\nCommand: \`bun bench/chat-log.ts --streams ${STREAMS} --reads ${READS} --rounds ${ROUNDS}\``)
