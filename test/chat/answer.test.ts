import { describe, expect, test } from 'bun:test'
import type { NdjsonItem } from '../../src/upstream'
import { Answer, AnswerTooLarge } from '../../src/modules/chat/answer'

const line = (lineNumber: number, value: Record<string, unknown>): NdjsonItem => ({ kind: 'line', value, text: JSON.stringify(value), lineNumber })
const chunk = (n: number, content: string) => line(n, { type: 'generation_chunk', index: n, content })

/** the events `take` hands out, as one list of texts, and the joined texts it offered */
function collect() {
  const sent: string[] = []
  const joins: Array<string | undefined> = []
  return { sent, joins, to: (texts: string[], joined?: string) => (sent.push(...texts), joins.push(joined)) }
}

describe('Answer.take: one upstream read into events and the answer to store', () => {
  test('ids from the first id, legacy names, enrichment; invalid lines counted, not sent', () => {
    const a = new Answer('req_1', 1 << 20, 0, () => 7)
    const out = collect()
    a.take([line(1, { type: 'refs', refs: [{ id: 'd1' }] }), { kind: 'invalid', lineNumber: 2, reason: 'json' }, line(3, { type: 'content', content: 'Hi' })], 4, out.to)
    expect(out.sent).toHaveLength(2)
    expect(out.sent[0]).toStartWith('id: 4\nevent: retrieval_result\ndata: ')
    expect(out.sent[1]).toStartWith('id: 5\nevent: generation_chunk\ndata: ')
    expect(JSON.parse(out.sent[1]!.split('data: ')[1]!)).toMatchObject({ content: 'Hi', request_id: 'req_1', line_number: 3 })
    expect(out.joins).toEqual([out.sent.join('')])
    expect({ text: a.text, references: a.references, lines: a.lines, invalid: a.invalidLines, ttft: a.ttftMs }).toEqual({
      text: 'Hi',
      references: [{ id: 'd1' }],
      lines: 2,
      invalid: 1,
      ttft: 7,
    })
  })

  test('a read that passes the byte limit: the events that fit are sent and stored, the rest is not, then AnswerTooLarge', () => {
    const probe = collect()
    new Answer('req_2', 1 << 20, 0).take([chunk(1, 'x'.repeat(100))], 0, probe.to)
    const one = Buffer.byteLength(probe.sent[0]!)
    // room for exactly two such events (ids of one digit: the same size)
    const a = new Answer('req_2', 2 * one, 0)
    const out = collect()
    expect(() => a.take([chunk(1, 'x'.repeat(100)), chunk(2, 'y'.repeat(100)), chunk(3, 'z'.repeat(100))], 0, out.to)).toThrow(AnswerTooLarge)
    expect(out.sent).toHaveLength(2)
    expect(a.text).toBe('x'.repeat(100) + 'y'.repeat(100))
    expect({ lines: a.lines, bytes: a.bytes }).toEqual({ lines: 2, bytes: 2 * one })
  })

  test('an answer exactly at the limit is not cut, across reads; the next byte is', () => {
    const probe = collect()
    new Answer('req_3', 1 << 20, 0).take([chunk(1, 'é'.repeat(50))], 0, probe.to)
    const one = Buffer.byteLength(probe.sent[0]!) // counted in UTF-8 bytes, not characters
    const a = new Answer('req_3', 2 * one, 0)
    const out = collect()
    a.take([chunk(1, 'é'.repeat(50))], 0, out.to)
    a.take([chunk(2, 'é'.repeat(50))], 1, out.to)
    expect(a.bytes).toBe(2 * one)
    expect(() => a.take([chunk(3, 'é')], 2, out.to)).toThrow(AnswerTooLarge)
    expect(out.sent).toHaveLength(2)
    expect(a.text).toBe('é'.repeat(100))
  })

  test("the upstream's own JSON text gets the enrichment; whatever the text cannot simply take is serialised again", () => {
    const a = new Answer('req_4', 1 << 20, 0)
    const out = collect()
    const texts = [
      '{}',
      '{ "type" : "generation_chunk", "content": "caf\\u00e9" }  ',
      '{"type":"x","request_id":"req_4"}',
      '{"type":"x","request_id":"someone-else"}',
      '{"type":"x","line_number":99,"timestamp":1}',
      '{"type":"x",\r"n":1}',
      '{"type":"x","big":12345678901234567890}',
    ]
    a.take(texts.map((text, i) => ({ kind: 'line', value: JSON.parse(text), text, lineNumber: i + 1 })), 0, out.to)
    const data = out.sent.map((e) => {
      const lines = e.split('\n')
      expect(lines).toHaveLength(5) // id, event, data, blank, blank: no CR or LF inside the data line
      expect(e).not.toContain('\r')
      return lines[2]!.slice('data: '.length)
    })
    const ours = (i: number) => ({ request_id: 'req_4', line_number: i + 1, timestamp: expect.any(Number) })
    data.forEach((d, i) => expect(JSON.parse(d)).toEqual({ ...JSON.parse(texts[i]!), ...ours(i) }))
    // one request_id each, ours; the upstream's digits and escapes as it sent them
    for (const d of data) expect(d.split('"request_id"')).toHaveLength(2)
    expect(data[1]).toStartWith('{ "type" : "generation_chunk", "content": "caf\\u00e9"')
    expect(data[6]).toContain('12345678901234567890')
    expect(a.text).toBe('café')
  })
})
