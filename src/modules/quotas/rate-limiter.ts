/**
 * Fixed-window rate limits shared by every gateway instance: one atomic store.incr per rule and window, so
 * N instances on one Redis enforce one limit, not N.
 *
 * When the store fails the limiter fails OPEN to local limits — never closed (a Redis outage must not turn
 * into a total outage) and never unlimited (one noisy caller must not get everything): each instance counts
 * in process with the same windows, at limit × localLimitFactor. The default factor 1 means every instance
 * enforces the whole limit on its own, so the fleet admits at most (instances × limit) during an outage;
 * a deployment that knows its replica count may pass 1/replicas instead.
 *
 * While the store is known to be down, calls do not wait on it: requests are decided locally and a
 * background ping (at most one every PROBE_INTERVAL_MS) notices its return. Transitions are logged once.
 *
 * Leases (rules with `lease: true`, the per-request quotas): instead of one store round trip per request, an
 * instance reserves a block of the window's count in one atomic INCRBY and serves requests from it locally.
 * The store's count covers every reservation, so the fleet never admits more than the limit; a block is sized
 * to about LEASE_HORIZON_MS of this instance's recent demand, never more than 1/LEASE_SHARE of what was left
 * in the window (so near the limit blocks shrink to single requests), and at most MAX_LEASE. When half a block
 * is gone the next one is reserved, so steady traffic never waits for the store. The price: tokens reserved by
 * one instance and not used by the window's end are not available to another — at most two blocks per instance
 * per window (the one serving and the one reserved ahead), i.e. a few per cent of a limit actually being reached.
 */
import { keys, StoreUnavailableError, type Store } from '../../store'
import { createLocalCounter } from './local-counter.ts'

export interface RateRule {
  /** names the limit (e.g. `user`, `tenant`, `login`); one scope is always used with one windowMs */
  scope: string
  /** whom it counts: user, tenant, key, IP */
  id: string
  /** requests per window; 0 = unlimited */
  limit: number
  windowMs: number
  /** reserve blocks of the count (see above) rather than counting each request in the store */
  lease?: boolean
}

export interface RateResult {
  allowed: boolean
  /** the limit applied: the local one when degraded; 0 = unlimited */
  limit: number
  /** requests left in this window; Infinity when unlimited */
  remaining: number
  /** ms until the window ends */
  resetMs: number
  /** whole seconds to wait, ≥ 1 when denied; 0 when allowed */
  retryAfterS: number
  scope: string
  /** true when decided by the in-process fallback */
  degraded: boolean
}

export interface RateLimiterLogger {
  warn(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
}

export interface RateLimiterOptions {
  store: Store
  logger?: RateLimiterLogger
  /**
   * Wall clock in epoch ms. Windows are aligned to it, so instances must agree on the time (NTP): a skewed
   * instance counts in the neighbouring window near a boundary. @default Date.now
   */
  now?: () => number
  /** local limit = max(1, floor(limit × factor)) while the store is away. @default 1 */
  localLimitFactor?: number
  /** most in-process counters held during an outage. @default 10_000 */
  localMaxKeys?: number
}

export interface RateLimiter {
  /** counts one request against rule */
  check(rule: RateRule): Promise<RateResult>
  /** all rules counted; the result that denies (or the one with least remaining) is returned */
  checkAll(rules: readonly RateRule[]): Promise<RateResult>
  /**
   * checkAll answered at once from this instance's leases, when it can be (every limited rule leased, each
   * lease holding a token or its window used up); undefined otherwise — then call checkAll.
   */
  tryLeased(rules: readonly RateRule[]): RateResult | undefined
  /** read a counter without incrementing (allowed = one more would be) */
  peek(rule: RateRule): Promise<RateResult>
  /** for login throttling: give back one count of the current window (an attempt counted ahead that succeeded) … */
  refund(rule: RateRule): Promise<void>
  /** … or reset it (the current window's counter) */
  reset(rule: RateRule): Promise<void>
}

/** Keys outlive their window a little, so an instance whose clock lags still finds the window's count. */
const TTL_MARGIN_MS = 1_000
/** while the store is down, how often a background ping checks whether it is back */
const PROBE_INTERVAL_MS = 250
/** errors other than StoreUnavailableError are bugs (a key of the wrong type): logged, but not per request */
const UNEXPECTED_LOG_INTERVAL_MS = 60_000
/** a lease covers about this much of the recent demand */
const LEASE_HORIZON_MS = 50
/** a lease never takes more than this fraction of what the window had left */
const LEASE_SHARE = 10
const MAX_LEASE = 1_000
const LEASE_SWEEP_INTERVAL_MS = 5_000

/** a block of a window's count reserved by this instance: the counts from..to (inclusive) are ours to hand out */
interface Lease {
  end: number
  /** the limit it was reserved under: a changed quota applies at once */
  limit: number
  from: number
  to: number
  fetching: Promise<void> | undefined
  waiters: number
  /** tokens handed out since the last reservation, and when that was (performance.now()) */
  served: number
  fetchedAt: number
  /** what the window had left at the last reservation */
  left: number
  /** the window is used up: leased counts only grow, so every further request is refused without asking */
  exhausted: boolean
  /** the size of the last block asked for */
  size: number
  /**
   * The block reserved ahead, while the current one ran low, so that steady traffic never waits for the store;
   * an empty one (from > to) says the window had nothing left.
   */
  next: { from: number; to: number } | undefined
}

interface Window {
  key: string
  end: number
  now: number
}

export function createRateLimiter(opts: RateLimiterOptions): RateLimiter {
  const { store, logger } = opts
  const clock = opts.now ?? Date.now
  const factor = opts.localLimitFactor ?? 1
  if (!Number.isFinite(factor) || factor <= 0) throw new RangeError(`localLimitFactor must be > 0, got ${factor}`)
  const local = createLocalCounter(opts.localMaxKeys)
  const health = createStoreHealth(store, logger)
  /** scope → its windowMs: two windows under one scope would share keys whenever their starts coincide */
  const scopeWindows = new Map<string, number>()

  function validate(rule: RateRule): void {
    if (!Number.isSafeInteger(rule.limit) || rule.limit < 0) {
      throw new RangeError(`limit must be an integer ≥ 0, got ${rule.limit}`)
    }
    if (!Number.isSafeInteger(rule.windowMs) || rule.windowMs <= 0) {
      throw new RangeError(`windowMs must be a positive integer, got ${rule.windowMs}`)
    }
    const bound = scopeWindows.get(rule.scope)
    if (bound === undefined) scopeWindows.set(rule.scope, rule.windowMs)
    else if (bound !== rule.windowMs) {
      throw new RangeError(`rate-limit scope "${rule.scope}" is used with windowMs ${bound} and ${rule.windowMs}`)
    }
  }

  /** the current window's store key per rule object (callers on the hot path pass the same objects), built once per window */
  const windowKeys = new WeakMap<RateRule, { start: number; key: string }>()

  function windowOf(rule: RateRule): Window {
    const now = clock()
    const start = Math.floor(now / rule.windowMs) * rule.windowMs
    let known = windowKeys.get(rule)
    if (known?.start !== start) {
      known = { start, key: keys.rateLimit(rule.scope, rule.id, start) }
      windowKeys.set(rule, known)
    }
    return { key: known.key, end: start + rule.windowMs, now }
  }

  function localLimit(limit: number): number {
    return Math.max(1, Math.floor(limit * factor))
  }

  /** used = requests counted so far, including this one for check(); peek asks whether one more fits */
  function decide(rule: RateRule, limit: number, used: number, w: Window, degraded: boolean, peek = false): RateResult {
    const allowed = peek ? used < limit : used <= limit
    const resetMs = Math.max(0, w.end - w.now)
    const retryAfterS = allowed ? 0 : Math.max(1, Math.ceil(resetMs / 1000))
    return { allowed, limit, remaining: Math.max(0, limit - used), resetMs, retryAfterS, scope: rule.scope, degraded }
  }

  function check(rule: RateRule): Promise<RateResult> {
    return checkAll([rule])
  }

  /** every limited rule counted in one atomic store step (one round trip); locally while the store is away */
  async function checkAll(rules: readonly RateRule[]): Promise<RateResult> {
    for (const rule of rules) validate(rule)
    const limited = rules.filter((r) => r.limit !== 0)
    if (limited.length === 0) return deciding(rules.map((r) => unlimited(r.scope))) ?? unlimited('')
    const windows = limited.map(windowOf)
    const shared = limited.every((r) => r.lease) ? await fromLeases(limited, windows) : await counted(limited, windows)
    const results =
      shared ?? limited.map((rule, i) => decide(rule, localLimit(rule.limit), local.incr(windows[i]!.key, windows[i]!.end, windows[i]!.now), windows[i]!, true))
    return deciding(results) ?? unlimited('')
  }

  function tryLeased(rules: readonly RateRule[]): RateResult | undefined {
    let limited = 0
    for (const rule of rules) {
      if (rule.limit === 0) continue
      if (!rule.lease) return undefined
      limited++
    }
    if (limited !== rules.length) return undefined // rare: leave mixed or unlimited sets to checkAll
    for (const rule of rules) validate(rule)
    const windows = rules.map(windowOf)
    const held = fromHeld(rules, windows, rules.map((r, i) => leaseOf(windows[i]!, r.limit)))
    return held && deciding(held)
  }

  /**
   * What the leases this instance holds decide without the store: a refusal when a window is used up, else one
   * token from each — or undefined when some lease is empty.
   */
  function fromHeld(limited: readonly RateRule[], windows: Window[], ls: Lease[]): RateResult[] | undefined {
    for (const l of ls) if (l.from > l.to && l.next) takeNext(l)
    const used = ls.findIndex((l) => l.exhausted)
    if (used !== -1) return refusedBy(used, limited, windows, ls)
    for (const l of ls) if (l.from > l.to) return undefined
    let low: number[] | undefined
    const results = ls.map((lease, i) => {
      const count = lease.from++
      lease.served++
      if (runningLow(lease)) (low ??= []).push(i)
      return decide(limited[i]!, limited[i]!.limit, count, windows[i]!, false)
    })
    if (low) void reserve(limited, windows, low, ls)
    return results
  }

  /** half of the last block is gone and nothing is on its way: reserve the next one now */
  function runningLow(lease: Lease): boolean {
    return lease.size >= 2 && !lease.fetching && !lease.next && (lease.to - lease.from + 1) * 2 <= lease.size
  }

  function takeNext(lease: Lease): void {
    const { from, to } = lease.next!
    lease.next = undefined
    lease.from = from
    lease.to = to
    if (from > to) lease.exhausted = true
  }

  /** one INCR per rule in one round trip; undefined while the store is away */
  async function counted(limited: readonly RateRule[], windows: Window[]): Promise<RateResult[] | undefined> {
    const counts = await health.attempt('incr', async () =>
      store.incrMany(limited.map((r, i) => ({ key: windows[i]!.key, by: 1, ttlMs: r.windowMs + TTL_MARGIN_MS }))),
    )
    return counts?.map((c, i) => decide(limited[i]!, limited[i]!.limit, c.value, windows[i]!, false))
  }

  // ---- leases
  const leases = new Map<string, Lease>()
  let lastSweep = performance.now()

  function leaseOf(w: Window, limit: number): Lease {
    let lease = leases.get(w.key)
    if (!lease) {
      if (performance.now() - lastSweep > LEASE_SWEEP_INTERVAL_MS) sweepLeases(w.now)
      lease = { end: w.end, limit, from: 1, to: 0, fetching: undefined, waiters: 0, served: 0, fetchedAt: 0, left: limit, exhausted: false, size: 0, next: undefined }
      leases.set(w.key, lease)
    } else if (lease.limit !== limit) {
      lease.limit = limit
      lease.to = Math.min(lease.to, limit)
      lease.exhausted = false
      if (lease.next && (lease.next.to = Math.min(lease.next.to, limit)) < lease.next.from) lease.next = undefined
    }
    return lease
  }

  function sweepLeases(now: number): void {
    lastSweep = performance.now()
    for (const [key, lease] of leases) if (lease.end <= now && !lease.fetching) leases.delete(key)
  }

  function want(lease: Lease): number {
    const elapsed = Math.max(1, performance.now() - lease.fetchedAt)
    const recent = lease.fetchedAt === 0 ? 1 : Math.ceil((lease.served * LEASE_HORIZON_MS) / elapsed)
    return Math.max(1, Math.min(MAX_LEASE, Math.floor(lease.left / LEASE_SHARE), Math.max(recent, 1 + lease.waiters)))
  }

  /** reserves blocks for the given leases in one round trip; false while the store is away */
  function reserve(limited: readonly RateRule[], windows: Window[], which: number[], ls: Lease[]): Promise<boolean> {
    const sizes = which.map((i) => want(ls[i]!))
    const done = health
      .attempt('incr', () =>
        store.incrMany(which.map((i, k) => ({ key: windows[i]!.key, by: sizes[k], ttlMs: limited[i]!.windowMs + TTL_MARGIN_MS }))),
      )
      .then((counts) => {
        if (!counts) return false
        which.forEach((i, k) => {
          const lease = ls[i]!
          const top = counts[k]!.value
          const limit = limited[i]!.limit
          // counts top-size+1 .. top are ours; those past the limit are nobody's
          const from = top - sizes[k]! + 1
          const to = Math.min(top, limit)
          lease.served = 0
          lease.fetchedAt = performance.now()
          lease.left = Math.max(0, limit - to)
          lease.size = sizes[k]!
          // an empty block (to < from) means the window is used up
          lease.next = to >= from ? { from, to } : { from: top + 1, to: top }
          // reserved ahead while the current block still serves: it waits its turn
          if (lease.from > lease.to) takeNext(lease)
        })
        return true
      })
      .finally(() => which.forEach((i) => (ls[i]!.fetching = undefined)))
    const settled = done.then(() => {})
    for (const i of which) ls[i]!.fetching = settled
    return done
  }

  /**
   * Takes one token from each rule's lease, reserving blocks when one is empty. Every pass either returns,
   * waits for a reservation in flight, or makes one that adds tokens (or finds the window used up), so the
   * loop ends: tokens are finite and each reservation's are taken by someone.
   */
  async function fromLeases(limited: readonly RateRule[], windows: Window[]): Promise<RateResult[] | undefined> {
    for (;;) {
      const ls = limited.map((r, i) => leaseOf(windows[i]!, r.limit))
      const held = fromHeld(limited, windows, ls)
      if (held) return held
      const empty = ls.flatMap((l, i) => (l.from > l.to ? [i] : []))
      const idle = empty.filter((i) => !ls[i]!.fetching)
      if (idle.length === 0) {
        for (const i of empty) ls[i]!.waiters++
        await Promise.all(empty.map((i) => ls[i]!.fetching))
        for (const i of empty) ls[i]!.waiters--
        continue
      }
      if (!(await reserve(limited, windows, idle, ls))) return undefined
      const denied = idle.find((i) => ls[i]!.exhausted)
      if (denied !== undefined) return refusedBy(denied, limited, windows, ls)
    }
  }

  /** refused by one used-up rule, without taking anything from the others */
  function refusedBy(denied: number, limited: readonly RateRule[], windows: Window[], ls: Lease[]): RateResult[] {
    return limited.map((rule, i) => decide(rule, rule.limit, i === denied ? rule.limit + 1 : Math.max(0, ls[i]!.from - 1), windows[i]!, false))
  }

  async function peek(rule: RateRule): Promise<RateResult> {
    validate(rule)
    if (rule.limit === 0) return unlimited(rule.scope)
    const w = windowOf(rule)
    const used = await health.attempt('get', async () => toCount(await store.get(w.key)))
    if (used !== undefined) return decide(rule, rule.limit, used, w, false, true)
    return decide(rule, localLimit(rule.limit), local.get(w.key, w.now), w, true, true)
  }

  async function refund(rule: RateRule): Promise<void> {
    validate(rule)
    if (rule.limit === 0) return
    const w = windowOf(rule)
    const given = await health.attempt('incr', () => store.incr(w.key, -1, rule.windowMs + TTL_MARGIN_MS))
    if (given === undefined) local.incr(w.key, w.end, w.now, -1)
  }

  async function reset(rule: RateRule): Promise<void> {
    validate(rule)
    if (rule.limit === 0) return
    const w = windowOf(rule)
    local.delete(w.key)
    leases.delete(w.key)
    await health.attempt('del', () => store.del(w.key))
  }

  return { check, checkAll, tryLeased, peek, refund, reset }
}

/** A denial wins (the one that ends last: the caller must wait that long anyway), else the least remaining. */
function deciding(results: RateResult[]): RateResult | undefined {
  let best: RateResult | undefined
  for (const r of results) {
    if (!best) best = r
    else if (!r.allowed && (best.allowed || r.resetMs > best.resetMs)) best = r
    else if (r.allowed && best.allowed && r.remaining < best.remaining) best = r
  }
  return best
}

function unlimited(scope: string): RateResult {
  return { allowed: true, limit: 0, remaining: Infinity, resetMs: 0, retryAfterS: 0, scope, degraded: false }
}

function toCount(value: string | null): number {
  const n = Number(value ?? 0)
  if (!Number.isSafeInteger(n)) throw new TypeError(`rate-limit counter holds ${JSON.stringify(value)}`)
  return n
}

/**
 * Whether the shared store is worth asking, with one log line per transition. attempt() runs a store call
 * and returns undefined when the caller must decide locally instead; it never throws.
 */
function createStoreHealth(store: Store, logger: RateLimiterLogger | undefined) {
  let down = false
  /** performance.now() of the last recovery: a call that started earlier and fails late is stale news */
  let upSince = -Infinity
  let probing = false
  let lastProbeAt = -Infinity
  let lastUnexpectedLogAt = -Infinity

  function probe(): void {
    if (probing || performance.now() - lastProbeAt < PROBE_INTERVAL_MS) return
    probing = true
    lastProbeAt = performance.now()
    store
      .ping()
      .then(recovered, () => {})
      .finally(() => (probing = false))
  }

  function recovered(): void {
    if (!down) return
    down = false
    upSince = performance.now()
    logger?.info({ store: store.kind }, 'rate limits: shared store is back; enforcing shared limits again')
  }

  function failed(op: string, err: unknown, startedAt: number): void {
    if (!(err instanceof StoreUnavailableError)) {
      if (performance.now() - lastUnexpectedLogAt < UNEXPECTED_LOG_INTERVAL_MS) return
      lastUnexpectedLogAt = performance.now()
      logger?.warn({ err, op }, 'rate limits: unexpected store error; decided locally')
      return
    }
    if (down || startedAt < upSince) return
    down = true
    lastProbeAt = performance.now() // give the store a moment before the first probe
    const msg = 'rate limits: shared store unavailable; enforcing local per-instance limits'
    logger?.warn({ err, op, store: store.kind }, msg)
  }

  return {
    async attempt<T>(op: string, call: () => Promise<T>): Promise<T | undefined> {
      if (down) {
        probe()
        return undefined
      }
      const startedAt = performance.now()
      try {
        return await call()
      } catch (err) {
        failed(op, err, startedAt)
        return undefined
      }
    },
  }
}
