/**
 * A circuit breaker for one upstream. Closed: requests flow, consecutive failures are counted. Open: the upstream
 * is skipped until the cool-down has passed. Half-open: exactly one trial request goes through; its verdict closes
 * the breaker again or reopens it for another cool-down.
 */
export type BreakerState = 'closed' | 'open' | 'half_open'

export interface BreakerOptions {
  /** Consecutive failures that open the breaker. @default 5 */
  failureThreshold?: number
  /** How long an open breaker stays open before one trial is allowed. @default 5000 */
  cooldownMs?: number
  /** Clock in ms; injectable so tests need not sleep through the cool-down. @default Date.now */
  now?: () => number
}

export interface Breaker {
  state(): BreakerState
  /** Whether a request may go to this upstream now (in half-open: only while no trial is in flight). */
  available(): boolean
  /** A request was sent; in half-open it becomes the one trial. */
  attempt(): void
  success(): void
  failure(): void
  /** The request ended with no verdict on the upstream (the caller cancelled): frees the trial slot. */
  abandon(): void
}

export function createBreaker(opts: BreakerOptions = {}): Breaker {
  const threshold = opts.failureThreshold ?? 5
  const cooldownMs = opts.cooldownMs ?? 5000
  const now = opts.now ?? Date.now
  let failures = 0
  let openedAt: number | undefined
  let trialInFlight = false

  function state(): BreakerState {
    if (openedAt === undefined) return 'closed'
    return now() - openedAt >= cooldownMs ? 'half_open' : 'open'
  }

  function open() {
    openedAt = now()
    trialInFlight = false
  }

  return {
    state,
    available() {
      const s = state()
      return s === 'closed' || (s === 'half_open' && !trialInFlight)
    },
    attempt() {
      if (state() === 'half_open') trialInFlight = true
    },
    success() {
      failures = 0
      openedAt = undefined
      trialInFlight = false
    },
    failure() {
      const s = state()
      // A failed trial reopens at once; a late failure from before the breaker opened must not extend it.
      if (s === 'half_open') return open()
      if (s === 'open') return
      if (++failures >= threshold) open()
    },
    abandon() {
      trialInFlight = false
    },
  }
}
