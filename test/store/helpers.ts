/** Small helpers shared by the store suites. */
import { expect } from 'bun:test'
import { StoreUnavailableError, type StoreLogger } from '../../src/store'

/** A prefix no other run (or parallel CI job) on the same Redis uses. */
export function uniquePrefix(label: string): string {
  return `vhtest:${label}:${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}:`
}

/** Polls until check() returns true (or resolves without throwing); fails after timeoutMs. */
export async function waitFor(check: () => boolean | Promise<unknown>, timeoutMs: number, stepMs = 20): Promise<void> {
  const deadline = performance.now() + timeoutMs
  let last: unknown
  while (performance.now() < deadline) {
    try {
      if ((await check()) !== false) return
    } catch (err) {
      last = err
    }
    await Bun.sleep(stepMs)
  }
  throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`)
}

/** Asserts that p rejects with StoreUnavailableError, and within maxMs; returns how long it took. */
export async function expectUnavailable(p: Promise<unknown>, maxMs: number): Promise<number> {
  const started = performance.now()
  const err = await p.then(
    () => new Error('expected StoreUnavailableError, but the call succeeded'),
    (e: unknown) => e,
  )
  const elapsed = performance.now() - started
  expect(err).toBeInstanceOf(StoreUnavailableError)
  expect((err as StoreUnavailableError).code).toBe('STORE_UNAVAILABLE')
  expect(elapsed).toBeLessThan(maxMs)
  return elapsed
}

export interface LogEntry {
  level: 'warn' | 'info'
  obj: object
  msg?: string
}

export function captureLogger(): StoreLogger & { entries: LogEntry[] } {
  const entries: LogEntry[] = []
  return {
    entries,
    warn: (obj, msg) => void entries.push({ level: 'warn', obj, msg }),
    info: (obj, msg) => void entries.push({ level: 'info', obj, msg }),
  }
}
