import { describe, expect, test } from 'bun:test'
import { createBreaker } from '../../src/upstream/breaker.ts'

function clocked(opts: { failureThreshold?: number; cooldownMs?: number } = {}) {
  const clock = { t: 1_000_000 }
  return { clock, breaker: createBreaker({ ...opts, now: () => clock.t }) }
}

describe('circuit breaker', () => {
  test('opens after N consecutive failures, not before', () => {
    const { breaker } = clocked({ failureThreshold: 3 })
    breaker.failure()
    breaker.failure()
    expect(breaker.state()).toBe('closed')
    breaker.failure()
    expect(breaker.state()).toBe('open')
    expect(breaker.available()).toBe(false)
  })

  test('a success resets the count', () => {
    const { breaker } = clocked({ failureThreshold: 2 })
    breaker.failure()
    breaker.success()
    breaker.failure()
    expect(breaker.state()).toBe('closed')
  })

  test('half-open after the cool-down allows exactly one trial', () => {
    const { clock, breaker } = clocked({ failureThreshold: 1, cooldownMs: 5000 })
    breaker.failure()
    clock.t += 4999
    expect(breaker.state()).toBe('open')
    clock.t += 1
    expect(breaker.state()).toBe('half_open')
    expect(breaker.available()).toBe(true)
    breaker.attempt()
    expect(breaker.available()).toBe(false)
  })

  test('a successful trial closes; a failed one reopens for a full cool-down', () => {
    const { clock, breaker } = clocked({ failureThreshold: 1, cooldownMs: 100 })
    breaker.failure()
    clock.t += 100
    breaker.attempt()
    breaker.failure()
    expect(breaker.state()).toBe('open')
    clock.t += 99
    expect(breaker.available()).toBe(false)
    clock.t += 1
    breaker.attempt()
    breaker.success()
    expect(breaker.state()).toBe('closed')
    expect(breaker.available()).toBe(true)
  })

  test('an abandoned trial frees the slot without a verdict', () => {
    const { clock, breaker } = clocked({ failureThreshold: 1, cooldownMs: 100 })
    breaker.failure()
    clock.t += 100
    breaker.attempt()
    breaker.abandon()
    expect(breaker.state()).toBe('half_open')
    expect(breaker.available()).toBe(true)
  })

  test('defaults: 5 failures, 5 s', () => {
    const { clock, breaker } = clocked()
    for (let i = 0; i < 4; i++) breaker.failure()
    expect(breaker.state()).toBe('closed')
    breaker.failure()
    clock.t += 4999
    expect(breaker.state()).toBe('open')
    clock.t += 1
    expect(breaker.state()).toBe('half_open')
  })
})
