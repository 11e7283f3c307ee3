/**
 * Readiness: every dependency checked in parallel, each bounded by a timeout, so /ready answers within
 * about one timeout even when a dependency hangs.
 */
export type CheckResult = { status: 'up' | 'down'; latency_ms: number; error?: string }
export type Check = () => Promise<void>

export async function runChecks(
  checks: Record<string, Check>,
  timeoutMs: number,
): Promise<Record<string, CheckResult>> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => [name, await timed(check, timeoutMs)] as const),
  )
  return Object.fromEntries(entries)
}

async function timed(check: Check, timeoutMs: number): Promise<CheckResult> {
  const started = performance.now()
  let timer: Timer | undefined
  try {
    await Promise.race([
      check(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
      }),
    ])
    return { status: 'up', latency_ms: elapsed(started) }
  } catch (err) {
    return { status: 'down', latency_ms: elapsed(started), error: summarize(err) }
  } finally {
    clearTimeout(timer)
  }
}

const elapsed = (since: number) => Math.round((performance.now() - since) * 10) / 10

/** A short reason for operators; driver messages can carry hosts and users, so only the first line is kept. */
function summarize(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  return (message.split('\n')[0] ?? 'unavailable').slice(0, 200)
}
