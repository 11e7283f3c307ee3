/** Small HTTP helpers shared by the simulator's endpoints. */
import { SimulatorInputError } from './directives.ts'

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  })
}

/** The simulator's error body mirrors the gateway's `{error, code}` so both read the same in logs. */
export function errorResponse(status: number, code: string, error: string, extra: Record<string, unknown> = {}) {
  return json(status, { error, code, ...extra })
}

/** Reads a JSON object body; malformed JSON or a non-object is a SimulatorInputError (→ 400). */
export async function readJsonObject(req: Request): Promise<Record<string, unknown>> {
  let value: unknown
  try {
    value = JSON.parse(await req.text())
  } catch {
    throw new SimulatorInputError('body is not valid JSON', 'INVALID_JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SimulatorInputError('body must be a JSON object', 'VALIDATION_FAILED')
  }
  return value as Record<string, unknown>
}

/** Sleeps, but ends early (and clears its timer) when the signal aborts; returns false if aborted. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false)
  if (ms <= 0) return Promise.resolve(true)
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer)
      resolve(false)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve(true)
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
