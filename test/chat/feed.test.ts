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
    expect(feed.between(0, feed.count)).toEqual([...first, ...second])
  })

  test('the whole stream as one text (the replay log the store keeps) is its events joined, from any position; clear lets all go', () => {
    const feed = new EventFeed()
    const first = read(0)
    feed.pushAll(first, first.join(''))
    feed.push(formatEvent(3, 'stream_end', { lines_processed: 3 }))
    feed.pushAll(read(4)) // a follower's batch, without the joined text
    const all = feed.between(0, feed.count).join('')
    expect(feed.textFrom(0)).toBe(all)
    expect(feed.size).toBe(all.length)
    for (const from of [1, 3, 6]) expect(feed.textFrom(from)).toBe(feed.between(from, feed.count).join(''))
    feed.clear()
    expect([feed.count, feed.size, feed.textFrom(0)]).toEqual([0, 0, ''])
  })

  test('an ended feed compacted for replay gives every event, every position and every watcher exactly what it gave before', async () => {
    const feed = new EventFeed()
    const first = read(0)
    feed.pushAll(first, first.join(''))
    feed.pushAll(read(3))
    feed.push(formatEvent(6, 'stream_end', { lines_processed: 6 }))
    feed.compact() // not ended yet: nothing changes
    feed.finish()
    const before = { count: feed.count, size: feed.size, events: feed.between(0, feed.count), from: [0, 1, 4, 6, 7].map((f) => feed.textFrom(f)) }
    feed.compact()
    expect({ count: feed.count, size: feed.size, events: feed.between(0, feed.count), from: [0, 1, 4, 6, 7].map((f) => feed.textFrom(f)) }).toEqual(before)
    expect(feed.between(2, 5)).toEqual(before.events.slice(2, 5))
    const body = watchFeed(feed, 3, new AbortController().signal, { attached() {}, detached() {} })
    expect(await new Response(body).text()).toBe(before.events.slice(4).join(''))
    feed.clear()
    expect([feed.count, feed.size, feed.textFrom(0)]).toEqual([0, 0, ''])
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
