import { describe, expect, test } from 'bun:test'
import { channels, keys } from '../../src/store'

describe('store keys', () => {
  test('every key and channel starts with vh:', () => {
    const all = [
      keys.revokedJti('j'),
      keys.revokedSession('t', 's'),
      keys.voiceTicket('x'),
      keys.rateLimit('login', 'u', 0),
      keys.permissions('t', 'u'),
      keys.chatEvents('t', 'r'),
      keys.chatStream('t', 'r'),
      keys.liveConnections('t', 'u'),
      channels.invalidate(),
      channels.chat('t', 'r'),
      channels.voice('t', 's'),
    ]
    for (const k of all) expect(k.startsWith('vh:')).toBe(true)
    expect(new Set(all).size).toBe(all.length)
  })

  test('tenant-owned keys carry the tenant', () => {
    expect(keys.chatEvents('acme', 'req-1')).toBe('vh:t:acme:chat:req-1:events')
    expect(keys.chatEvents('other', 'req-1')).not.toBe(keys.chatEvents('acme', 'req-1'))
    expect(channels.voice('acme', 'sess')).toBe('vh:t:acme:ch:voice:sess')
  })

  test('ids containing the separator cannot collide with other keys', () => {
    // request ids may contain ':'; without encoding these two would be the same key
    expect(keys.chatEvents('a', 'b:c')).not.toBe(keys.chatEvents('a:b', 'c'))
    expect(keys.chatEvents('a', 'x:events')).toBe('vh:t:a:chat:x%3Aevents:events')
  })

  test('a part with a lone surrogate gets a key of its own instead of an error', () => {
    const lone = keys.chatEvents('a', '\ud800@x.com')
    expect(lone).toBe('vh:t:a:chat:%ud800%40x.com:events')
    // not the same key as the replacement character or as the other half of a pair
    expect(lone).not.toBe(keys.chatEvents('a', '\ufffd@x.com'))
    expect(keys.chatEvents('a', 'x\udc00')).not.toBe(lone)
    // a well-formed pair is encoded as UTF-8 as before
    expect(keys.chatEvents('a', '\ud83d\ude00')).toBe('vh:t:a:chat:%F0%9F%98%80:events')
  })

  test('an empty part is refused rather than silently sharing a key', () => {
    expect(() => keys.chatEvents('', 'r')).toThrow(RangeError)
    expect(() => keys.revokedJti('')).toThrow(RangeError)
  })
})
