/**
 * What a `/query` stream says, as a lazy plan of steps (see step-stream.ts). Pure: the same request and
 * options always give the same lines, which is what lets tests predict a whole conversation.
 *
 * Seed order: retrieval_start, retrieval_progress, retrieval_result, generation_start, generation_chunk × N,
 * generation_done. Legacy (the algorithm service's own format): refs, content × N, end.
 */
import { AnswerChunker, estimateTokens, fakeReferences } from './content.ts'
import type { QueryOptions } from './directives.ts'
import type { Step } from './step-stream.ts'

export interface QueryInput {
  requestId: string
  /** The last user message with its directives removed. */
  question: string
  model: string
  conversationId: string | null
  /** Characters of every message, for the usage figures. */
  promptChars: number
}

type Line = Record<string, unknown>

function* seedLines(input: QueryInput, o: QueryOptions): Generator<Line> {
  const request_id = input.requestId
  const references = fakeReferences(input.question, o.references)
  yield { type: 'retrieval_start', request_id, conversation_id: input.conversationId, query: input.question }
  yield { type: 'retrieval_progress', request_id, stage: 'vector_search', progress: 0.5 }
  yield { type: 'retrieval_result', request_id, references, total_found: references.length }
  yield { type: 'generation_start', request_id, model: input.model }
  const chunker = new AnswerChunker(input.question, o.chunk_size)
  let textLength = 0
  for (let index = 0; index < o.chunks; index++) {
    const content = chunker.chunk(index)
    textLength += content.length
    yield { type: 'generation_chunk', request_id, index, content }
  }
  const prompt_tokens = estimateTokens(input.promptChars)
  yield {
    type: 'generation_done',
    request_id,
    finish_reason: 'stop',
    text_length: textLength,
    usage: { prompt_tokens, completion_tokens: o.chunks, total_tokens: prompt_tokens + o.chunks },
  }
}

function* legacyLines(input: QueryInput, o: QueryOptions): Generator<Line> {
  yield { type: 'refs', refs: fakeReferences(input.question, o.references) }
  const chunker = new AnswerChunker(input.question, o.chunk_size)
  for (let index = 0; index < o.chunks; index++) yield { type: 'content', content: chunker.chunk(index) }
  yield { type: 'end' }
}

/** One line a bit over 1 MiB, built once: readers that cap lines at 1 MiB must reject it. */
let oversized: string | undefined
function oversizedLine(): string {
  oversized ??= `${JSON.stringify({ type: 'generation_chunk', content: 'x'.repeat(1024 * 1024 + 16) })}\n`
  return oversized
}

/** Invalid JSON of two kinds (plain text, a truncated object), each followed by a blank line. */
function garbage(n: number): string {
  return n % 2 === 1 ? `<<not json ${n}>>\n\n` : `{"type":"generation_chunk","content":"trunc\n\n`
}

/**
 * Steps taken once `fail_after` lines are out: the silence, then the failure. Returns true when the failure
 * ends the stream.
 */
function* strike(input: QueryInput, o: QueryOptions): Generator<Step, boolean> {
  if (o.silence_ms > 0) yield { pause: o.silence_ms }
  switch (o.mode) {
    case 'error_event': {
      const error = 'simulated generation failure'
      const line =
        o.format === 'legacy'
          ? { type: 'error', error }
          : { type: 'error', request_id: input.requestId, code: o.error_code, error }
      yield `${JSON.stringify(line)}\n`
      return true
    }
    case 'drop_mid':
      yield { drop: true }
      return true
    case 'stall':
      yield { stall: true }
      return true
    case 'oversized_line':
      yield oversizedLine()
      return false
    default:
      return false
  }
}

export function* queryPlan(input: QueryInput, o: QueryOptions): Generator<Step> {
  if (o.first_byte_delay_ms > 0) yield { pause: o.first_byte_delay_ms }
  if (o.first_line_delay_ms > 0) {
    // A blank line makes Bun send the headers now; NDJSON readers skip it.
    yield '\n'
    yield { pause: o.first_line_delay_ms }
  }
  let sent = 0
  let struck = o.fail_after === 0
  if (struck && (yield* strike(input, o))) return
  const lines = o.format === 'legacy' ? legacyLines(input, o) : seedLines(input, o)
  for (const line of lines) {
    if (sent > 0) {
      if (o.delay_ms > 0) yield { pause: o.delay_ms }
      if (o.mode === 'invalid_lines') yield garbage(sent)
    }
    yield `${JSON.stringify(line)}\n`
    sent++
    if (sent === o.fail_after) {
      struck = true
      if (yield* strike(input, o)) return
    }
  }
  // fail_after past the last line means "at the end": a drop then still breaks the stream before its clean end.
  if (!struck) yield* strike(input, o)
}
