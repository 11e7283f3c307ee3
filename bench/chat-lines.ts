/**
 * The chat stream's per-line work in one process, without sockets: an upstream body of N NDJSON lines read in
 * ~16 KB pieces and turned into SSE events written to one watcher. Steadier than bench/chat.ts for a change of
 * a few per cent on the per-event path, which the loopback runs cannot resolve (their rounds move by ±10 points).
 *
 *   bun bench/chat-lines.ts [--lines 200] [--reps 3000] [--rounds 4] [--read-bytes 16000]
 *
 * `--read-bytes 1`: one line per read, as a paced upstream's lines arrive.
 *
 * Rows: the bare relay's line loop (bench/targets/bare-relay.ts, mirrored here); the gateway's (the NDJSON
 * reader, `Answer.take`, the event feed with one watcher); the same with the stream's bytes counted event by
 * event (as before the count moved to one per read), for the comparison.
 */
import { parseArgs } from 'node:util'
import { Answer, chunkText, enrichedText } from '../src/modules/chat/answer'
import { EventFeed, watchFeed } from '../src/modules/chat/feed'
import { eventName, formatEventData, unixSeconds } from '../src/modules/chat/sse'
import { readNdjsonBatches } from '../src/upstream'
import { machine } from './lib'

const { values: args } = parseArgs({
  options: {
    lines: { type: 'string', default: '200' },
    reps: { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '4' },
    'read-bytes': { type: 'string', default: '16000' },
  },
})
const LINES = Number(args.lines)
const REPS = Number(args.reps)
const ROUNDS = Number(args.rounds)
const READ_BYTES = Number(args['read-bytes'])

// the simulator's seed stream: retrieval_start, retrieval_result, LINES chunks, generation_done
const lines = [
  { type: 'retrieval_start', request_id: 'req_bench', conversation_id: 'conv_bench', query: 'benchmark question' },
  { type: 'retrieval_result', request_id: 'req_bench', references: [{ id: 'doc_1', title: 'A document', score: 0.9 }], total_found: 1 },
  ...Array.from({ length: LINES }, (_, index) => ({ type: 'generation_chunk', request_id: 'req_bench', index, content: `word${index} and a few more ` })),
  { type: 'generation_done', request_id: 'req_bench', finish_reason: 'stop', usage: { prompt_tokens: 5, completion_tokens: LINES, total_tokens: LINES + 5 } },
].map((l) => `${JSON.stringify(l)}\n`)
const reads: Uint8Array[] = []
for (let i = 0, piece = ''; i < lines.length; i++) {
  piece += lines[i]
  if (piece.length >= READ_BYTES || i === lines.length - 1) {
    reads.push(new TextEncoder().encode(piece))
    piece = ''
  }
}
const body = () =>
  new ReadableStream<Uint8Array>({
    start(c) {
      for (const r of reads) c.enqueue(r)
      c.close()
    },
  })

let sink = 0
/** a feed with one caught-up watcher (its writes are kept until the body is read, as before Bun pulls it) */
function watchedFeed() {
  const feed = new EventFeed()
  const ctrl = new AbortController()
  watchFeed(feed, -1, ctrl.signal, { attached() {}, detached() {} })
  return { feed, done: () => (feed.finish(), ctrl.abort()) }
}

const EVENT_NAME = /^[a-z][a-z0-9_.]{0,63}$/
const sse = (id: number, event: string, data: Record<string, unknown>) => `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`

async function relay(): Promise<void> {
  const decoder = new TextDecoder()
  const reader = body().getReader()
  let seq = 0
  let lineNumber = 0
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    const bytes = chunk.value
    for (let start = 0, nl = bytes.indexOf(10); nl !== -1; start = nl + 1, nl = bytes.indexOf(10, start)) {
      lineNumber++
      const value = JSON.parse(decoder.decode(bytes.subarray(start, nl))) as Record<string, unknown>
      const type = typeof value.type === 'string' && EVENT_NAME.test(value.type) ? value.type : 'message'
      sink += sse(seq++, type, { ...value, request_id: 'req_bench', line_number: lineNumber, timestamp: unixSeconds() }).length
    }
  }
}

async function gateway(): Promise<void> {
  const { feed, done } = watchedFeed()
  const answer = new Answer('req_bench', 16 * 1024 * 1024, 0)
  for await (const batch of readNdjsonBatches(body(), { maxLineBytes: 1 << 20 })) answer.take(batch, feed.count, (texts, joined) => feed.pushAll(texts, joined))
  sink += answer.text.length
  done()
}

/** the same with the byte count taken on every event's own text */
async function gatewayCountingEachEvent(): Promise<void> {
  const { feed, done } = watchedFeed()
  let text = ''
  let bytes = 0
  for await (const batch of readNdjsonBatches(body(), { maxLineBytes: 1 << 20 })) {
    const texts: string[] = []
    for (const item of batch) {
      if (item.kind === 'invalid') continue
      const line = item.value
      const name = eventName(line)
      const data = enrichedText(item.text, line, 'req_bench', item.lineNumber, unixSeconds())
      // the bench's lines all carry the same request_id and no fields of ours: the text is always extended
      const event = formatEventData(feed.count + texts.length, name, data!)
      bytes += Buffer.byteLength(event)
      if (name === 'generation_chunk') text += chunkText(line)
      texts.push(event)
    }
    feed.pushAll(texts)
  }
  sink += text.length + bytes
  done()
}

const subjects = { 'bare relay line loop': relay, 'gateway line path': gateway, 'gateway, bytes counted per event': gatewayCountingEachEvent }
const results = new Map<string, number[]>()
for (let round = 0; round < ROUNDS + 1; round++) {
  for (const [name, f] of Object.entries(subjects)) {
    Bun.gc(true)
    const t0 = performance.now()
    for (let i = 0; i < (round === 0 ? REPS / 10 : REPS); i++) await f()
    const nsPerLine = ((performance.now() - t0) * 1e6) / (round === 0 ? REPS / 10 : REPS) / lines.length
    if (round > 0) results.set(name, [...(results.get(name) ?? []), nsPerLine]) // round 0 warms up
  }
}
console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}; ${lines.length} lines per stream in ${reads.length} reads, ${REPS} streams per round, ${ROUNDS} rounds\n`)
// the rows of a round run one after another, so a round's ratios are steadier than the host across rounds
const relayRounds = results.get('bare relay line loop')!
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
console.log('| path | ns per line (median round) | against the relay, round by round: median (range) | every round, ns |')
console.log('|---|---:|---|---|')
for (const [name, xs] of results) {
  const ratios = xs.map((x, i) => x / relayRounds[i]!).sort((a, b) => a - b)
  console.log(`| ${name} | ${median(xs).toFixed(0)} | ×${median(ratios).toFixed(2)} (×${ratios[0]!.toFixed(2)}–×${ratios.at(-1)!.toFixed(2)}) | ${xs.map((x) => x.toFixed(0)).join(' ')} |`)
}
console.log(`\nCommand: \`bun bench/chat-lines.ts --lines ${LINES} --reps ${REPS} --rounds ${ROUNDS} --read-bytes ${READ_BYTES}\``)
if (sink === 0) console.log('(nothing produced)')
