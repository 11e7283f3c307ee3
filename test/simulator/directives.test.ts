import { describe, expect, test } from 'bun:test'
import { answerSentence, simulatedAnswer, toneFrameBase64 } from '../../src/simulator/content.ts'
import {
  extractDirectives,
  QUERY_DEFAULTS,
  resolveQueryOptions,
  resolveVoiceOptions,
  SimulatorInputError,
  VOICE_DEFAULTS,
} from '../../src/simulator/directives.ts'

describe('directive parsing', () => {
  test('pulls key=value pairs out and leaves the question', () => {
    expect(extractDirectives('What is it? [[sim chunks=50 delay_ms=20 mode=drop_mid fail_after=5]]')).toEqual({
      params: { chunks: '50', delay_ms: '20', mode: 'drop_mid', fail_after: '5' },
      text: 'What is it?',
    })
  })

  test('several directives merge, later ones win; a bare key means true', () => {
    expect(extractDirectives('[[sim chunks=1]] hi [[sim chunks=2 ack]]').params).toEqual({ chunks: '2', ack: 'true' })
  })

  test('text without a directive is left alone', () => {
    expect(extractDirectives('  plain [[not sim]] ')).toEqual({ params: {}, text: 'plain [[not sim]]' })
  })

  test('malformed tokens are refused', () => {
    expect(() => extractDirectives('[[sim Chunks=1]]')).toThrow(SimulatorInputError)
  })
})

describe('option resolution', () => {
  test('defaults', () => {
    expect(resolveQueryOptions(QUERY_DEFAULTS, {}, undefined)).toEqual({ ...QUERY_DEFAULTS })
    expect(QUERY_DEFAULTS).toMatchObject({ chunks: 8, delay_ms: 0, chunk_size: 12, mode: 'normal', fail_after: 5 })
  })

  test('simulate wins over the directive; numbers may be strings or numbers', () => {
    const o = resolveQueryOptions(QUERY_DEFAULTS, { chunks: '3', delay_ms: '7' }, { chunks: 9 })
    expect(o.chunks).toBe(9)
    expect(o.delay_ms).toBe(7)
  })

  test('mode=legacy is shorthand for format=legacy', () => {
    expect(resolveQueryOptions(QUERY_DEFAULTS, { mode: 'legacy' }, undefined)).toMatchObject({
      mode: 'normal',
      format: 'legacy',
    })
  })

  test('bad values and unknown keys are refused', () => {
    const bad: Array<Record<string, string>> = [
      { chunks: '1.5' },
      { chunks: '' },
      { delay_ms: '-1' },
      { mode: 'x' },
      { what: '1' },
    ]
    for (const params of bad) {
      expect(() => resolveQueryOptions(QUERY_DEFAULTS, params, undefined)).toThrow(SimulatorInputError)
    }
  })

  test('voice URL parameters: known ones parsed, unknown ones (the gateway adds its own) ignored', () => {
    const o = resolveVoiceOptions(VOICE_DEFAULTS, new URLSearchParams('ack=1&tts_frames=2&session_id=s&traceparent=x'))
    expect(o).toMatchObject({ ack: true, tts_frames: 2, partial_every: 10 })
    expect(() => resolveVoiceOptions(VOICE_DEFAULTS, new URLSearchParams('tts_frame_bytes=641'))).toThrow(
      SimulatorInputError,
    )
  })
})

describe('deterministic content', () => {
  test('the answer cycles the sentence, cut into chunk_size pieces', () => {
    const sentence = answerSentence('hi')
    expect(sentence).toBe('Simulated answer to "hi". ')
    expect(simulatedAnswer('hi', { chunks: 10, chunk_size: 7 })).toBe(sentence.repeat(4).slice(0, 70))
  })

  test('the tone is continuous across frames of any size', () => {
    const whole = Buffer.from(toneFrameBase64(400, 0), 'base64')
    const parts = Buffer.concat([0, 1, 2, 3].map((i) => Buffer.from(toneFrameBase64(100, i), 'base64')))
    expect(parts.equals(whole)).toBe(true)
  })
})
