import { describe, expect, test } from 'bun:test'
import { eventName, formatEvent, PING, splitEvents } from '../../src/modules/chat/sse'

describe('eventName', () => {
  test.each([
    [{ type: 'generation_chunk' }, 'generation_chunk'],
    [{ type: 'tool.call_2' }, 'tool.call_2'],
    [{ type: 'refs' }, 'retrieval_result'],
    [{ type: 'content' }, 'generation_chunk'],
    [{ type: 'end' }, 'generation_done'],
    [{ type: 'Error' }, 'message'],
    [{ type: 'bad\nevent: x' }, 'message'],
    [{ type: 'a'.repeat(65) }, 'message'],
    [{ type: 'constructor' }, 'constructor'],
    [{ type: 'toString' }, 'message'],
    [{ type: 42 }, 'message'],
    [{}, 'message'],
  ])('%o → %s', (line, name) => expect(eventName(line)).toBe(name))
})

test('formatEvent writes id, event, one data line; a ping is a comment', () => {
  expect(formatEvent(3, 'x', { a: 'l1\nl2' })).toBe('id: 3\nevent: x\ndata: {"a":"l1\\nl2"}\n\n')
  expect(PING).toBe(': ping\n\n')
})

test('a log of events written back to back splits into the same events; a torn tail is dropped', () => {
  const events = [formatEvent(0, 'stream_start', { a: 'x\n\ny' }), formatEvent(1, 'generation_chunk', { content: '\n\n' }), formatEvent(2, 'stream_end', {})]
  expect(splitEvents(events.join(''))).toEqual(events)
  expect(splitEvents(events.join('') + 'id: 3\nevent: x')).toEqual(events)
  expect(splitEvents('')).toEqual([])
})
