import { describe, expect, test } from 'bun:test'
import { rateLimitHeaders, type RateResult } from '../../src/modules/quotas'

const base: RateResult = {
  allowed: true,
  limit: 10,
  remaining: 7,
  resetMs: 12_300,
  retryAfterS: 0,
  scope: 'user',
  degraded: false,
}

describe('rate-limit headers', () => {
  test('allowed: limit, remaining and reset as integer strings, no Retry-After', () => {
    expect(rateLimitHeaders(base)).toEqual({
      'RateLimit-Limit': '10',
      'RateLimit-Remaining': '7',
      'RateLimit-Reset': '13',
    })
  })

  test('denied: Retry-After too', () => {
    const h = rateLimitHeaders({ ...base, allowed: false, remaining: 0, resetMs: 400, retryAfterS: 1 })
    expect(h).toEqual({
      'RateLimit-Limit': '10',
      'RateLimit-Remaining': '0',
      'RateLimit-Reset': '1',
      'Retry-After': '1',
    })
  })

  test('every value is a non-negative integer; reset never negative, Retry-After at least 1', () => {
    const odd = rateLimitHeaders({ ...base, allowed: false, remaining: -3, resetMs: -50, retryAfterS: 0 })
    for (const v of Object.values(odd)) expect(v).toMatch(/^\d+$/)
    expect(odd['RateLimit-Reset']).toBe('0')
    expect(odd['RateLimit-Remaining']).toBe('0')
    expect(odd['Retry-After']).toBe('1')
  })

  test('unlimited: nothing to advertise', () => {
    expect(rateLimitHeaders({ ...base, limit: 0, remaining: Infinity, resetMs: 0 })).toEqual({})
  })
})
