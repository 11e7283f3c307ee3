import { describe, expect, test } from 'bun:test'
import { eventName, formatEvent, PING } from '../../src/modules/chat/sse'

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
