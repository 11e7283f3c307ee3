/** The chat stream's event feed: what it keeps of each upstream read, and what a late watcher is written. */
import { describe, expect, test } from 'bun:test'
import { EventFeed, watchFeed } from '../../src/modules/chat/feed'
import { formatEvent } from '../../src/modules/chat/sse'

describe('EventFeed', () => {
  const read = (from: number) => [
    formatEvent(from, 'generation_chunk', { content: 'café 😀' }),
    formatEvent(from + 1, 'generation_chunk', { content: '' }),
    formatEvent(from + 2, 'generation_done', { usage: { total_tokens: 12 } }),
  ]

  test('a read pushed with its joined text is kept event by event, each exactly as formatted', () => {
    const feed = new EventFeed()
    const first = read(0)
    const second = read(3)
    feed.pushAll(first, first.join(''))
    feed.pushAll(second) // without the joined text (a batch from another instance)
    expect(feed.events).toEqual([...first, ...second])
  })

  test('a watcher attaching after event 1 is written the rest, in one write, then what comes', async () => {
    const feed = new EventFeed()
    const first = read(0)
    feed.pushAll(first, first.join(''))
    const ctrl = new AbortController()
    const body = watchFeed(feed, 1, ctrl.signal, { attached() {}, detached() {} })
    const next = read(3)
    feed.pushAll(next, next.join(''))
    feed.finish()
    expect(await new Response(body).text()).toBe(first[2]! + next.join(''))
  })
})
