/**
 * Trying a write again through an outage of the server it goes to (Postgres restarting, Redis away): waits
 * (250 ms, doubling to 8 s) and tries `work` again while it fails in a way `retriable` accepts, for `forMs`;
 * once `signal` aborts (shutdown), once more at once. Rejects with the last error.
 */
export async function tryAgainWhile<T>(work: () => Promise<T>, opts: { retriable: (err: unknown) => boolean; signal: AbortSignal; forMs: number }): Promise<T> {
  const { retriable, signal } = opts
  const giveUpAt = Date.now() + opts.forMs
  for (let waitMs = 250; ; waitMs = Math.min(waitMs * 2, 8_000)) {
    await abortableSleep(waitMs, signal)
    try {
      return await work()
    } catch (err) {
      if (!retriable(err) || signal.aborted || Date.now() >= giveUpAt) throw err
    }
  }
}

/** resolves after `ms`, or at once when `signal` aborts */
function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}

/**
 * Retries running in the background that shutdown cuts short: each gets the same signal; `stop` aborts it (each
 * tries once more at once, as `tryAgainWhile` does) and resolves when all have settled.
 */
export class BackgroundRetries {
  private readonly pending = new Set<Promise<unknown>>()
  private readonly stopping = new AbortController()

  start<T>(retry: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const p = retry(this.stopping.signal)
    this.pending.add(p)
    void p.then(
      () => this.pending.delete(p),
      () => this.pending.delete(p),
    )
    return p
  }

  async stop(): Promise<void> {
    this.stopping.abort()
    await Promise.allSettled([...this.pending])
  }
}
