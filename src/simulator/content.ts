/**
 * The simulator's deterministic "model output": answer text, references, transcripts and a PCM tone.
 * Everything is a pure function of its inputs so that tests (the gateway's included) can predict what a
 * stream will carry — `simulatedAnswer(question, { chunks, chunk_size })` is the joined generation text.
 */

/** The sentence an answer cycles through: `Simulated answer to "<question>". ` */
export function answerSentence(question: string): string {
  return `Simulated answer to "${question}". `
}

/**
 * Cuts the endless repetition of `answerSentence(question)` into chunks of `chunkSize` code points
 * (code points, not UTF-16 units, so a chunk never splits a surrogate pair). Chunk i is the i-th slice.
 */
export class AnswerChunker {
  private readonly ring: string
  /** UTF-16 offset of each code point of `ring`, plus its length at the end. */
  private readonly offsets: Uint32Array
  private readonly period: number

  constructor(
    question: string,
    readonly chunkSize: number,
  ) {
    const sentence = answerSentence(question)
    this.period = [...sentence].length
    // Long enough that any chunk starting inside the first period fits without wrapping.
    this.ring = sentence.repeat(Math.ceil(chunkSize / this.period) + 1)
    const points = [...this.ring]
    this.offsets = new Uint32Array(points.length + 1)
    let at = 0
    for (let i = 0; i < points.length; i++) {
      this.offsets[i] = at
      at += (points[i] as string).length
    }
    this.offsets[points.length] = at
  }

  chunk(index: number): string {
    const start = (index * this.chunkSize) % this.period
    return this.ring.slice(this.offsets[start], this.offsets[start + this.chunkSize])
  }
}

/** The joined text of `chunks` generation chunks for this question (defaults as `/query`'s: 8 × 12). */
export function simulatedAnswer(question: string, opts: { chunks?: number; chunk_size?: number } = {}): string {
  const chunker = new AnswerChunker(question, opts.chunk_size ?? 12)
  let text = ''
  for (let i = 0; i < (opts.chunks ?? 8); i++) text += chunker.chunk(i)
  return text
}

export interface Reference {
  id: string
  title: string
  score: number
  snippet: string
}

/** FNV-1a, enough to give each question its own stable document ids. */
export function fnv1a(text: string): string {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0).toString(16).padStart(8, '0')
}

export function fakeReferences(question: string, count: number): Reference[] {
  const key = fnv1a(question)
  return Array.from({ length: count }, (_, i) => ({
    id: `sim_doc_${key}_${i + 1}`,
    title: `Simulated source ${i + 1}`,
    score: Math.round((0.95 - i * 0.07) * 100) / 100,
    snippet: `Simulated passage ${i + 1} relevant to "${question.slice(0, 80)}".`,
  }))
}

/** Rough token count for this many characters (4 a token), the usual heuristic; only has to be stable. */
export function estimateTokens(chars: number): number {
  return Math.ceil(chars / 4)
}

export function transcriptFor(configured: string, utterance: number): string {
  return configured || `simulated utterance ${utterance}`
}

/** The first `count` words of a transcript, as a partial ASR hypothesis would show them. */
export function partialTranscript(transcript: string, count: number): string {
  return transcript.split(/\s+/).slice(0, count).join(' ')
}

export const TONE_SAMPLE_RATE = 16_000
const TONE_HZ = 400 // 16000 / 400 = 40 samples per period, so frames repeat and can be cached
const TONE_PERIOD = TONE_SAMPLE_RATE / TONE_HZ
const TONE_AMPLITUDE = 8000
const toneCache = new Map<string, string>()

/**
 * Frame `frameIndex` (0-based) of a continuous 400 Hz PCM16LE tone, base64. Consecutive frames join without
 * a phase jump, so a client playing them hears a clean tone.
 */
export function toneFrameBase64(frameBytes: number, frameIndex: number): string {
  const samples = frameBytes >> 1
  const phase = (frameIndex * samples) % TONE_PERIOD
  const key = `${frameBytes}:${phase}`
  let cached = toneCache.get(key)
  if (cached === undefined) {
    const view = new DataView(new ArrayBuffer(samples * 2))
    for (let n = 0; n < samples; n++) {
      const value = Math.round(TONE_AMPLITUDE * Math.sin((2 * Math.PI * (phase + n)) / TONE_PERIOD))
      view.setInt16(n * 2, value, true)
    }
    cached = Buffer.from(view.buffer).toString('base64')
    // Bounded: at most 40 phases per frame size, frame sizes come from a handful of configs, big ones skipped.
    if (toneCache.size < 256 && frameBytes <= 65_536) toneCache.set(key, cached)
  }
  return cached
}
