/**
 * `POST /documents/ingest`: accepts a document for "indexing" (202), records it, and — when a callback is
 * configured — reports `indexing` then `ready` (or `failed`) to the gateway, best effort, as the real
 * algorithm service does. A title containing `[[sim status=failed]]` makes the final status `failed`.
 */
import { extractDirectives, SimulatorInputError } from './directives.ts'
import { errorResponse, json, readJsonObject, sleep } from './http.ts'
import type { IngestCallback, SimulatorState } from './state.ts'

const MAX_RECORDED = 1000
const REQUIRED_STRINGS = ['document_id', 'tenant_id'] as const
const OPTIONAL_STRINGS = ['title', 'content_type', 'download_url'] as const

function checkIngest(body: Record<string, unknown>): void {
  for (const key of REQUIRED_STRINGS) {
    if (typeof body[key] !== 'string' || body[key] === '') {
      throw new SimulatorInputError(`${key} must be a non-empty string`, 'VALIDATION_FAILED')
    }
  }
  for (const key of OPTIONAL_STRINGS) {
    if (body[key] != null && typeof body[key] !== 'string') {
      throw new SimulatorInputError(`${key} must be a string`, 'VALIDATION_FAILED')
    }
  }
  if (body.size != null && (typeof body.size !== 'number' || body.size < 0)) {
    throw new SimulatorInputError('size must be a non-negative number', 'VALIDATION_FAILED')
  }
}

async function postStatus(cb: IngestCallback, id: string, status: Record<string, unknown>, signal: AbortSignal) {
  const url = `${cb.baseUrl.replace(/\/+$/, '')}/api/v2/documents/${encodeURIComponent(id)}/status`
  const res = await fetch(url, {
    method: 'POST',
    headers: { Authorization: `Bearer ${cb.apiKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(status),
    signal: AbortSignal.any([signal, AbortSignal.timeout(5000)]),
  })
  await res.body?.cancel()
  if (!res.ok) throw new Error(`status callback answered ${res.status}`)
}

function finalStatus(title: unknown): Record<string, unknown> {
  if (typeof title !== 'string') return { status: 'ready' }
  try {
    if (extractDirectives(title).params.status === 'failed') {
      return { status: 'failed', error: 'simulated indexing failure' }
    }
  } catch {
    // a malformed directive in a title is just part of the title
  }
  return { status: 'ready' }
}

/** Best effort: a failed callback is logged and dropped, never retried (the gateway owns retries). */
async function reportBack(state: SimulatorState, cb: IngestCallback, body: Record<string, unknown>) {
  const id = body.document_id as string
  const signal = state.shutdown.signal
  const delay = cb.readyDelayMs ?? 20
  try {
    // A pause before each report, so the gateway has handled the 202 before hearing about progress.
    if (!(await sleep(delay, signal))) return
    await postStatus(cb, id, { status: 'indexing' }, signal)
    if (!(await sleep(delay, signal))) return
    await postStatus(cb, id, finalStatus(body.title), signal)
  } catch (err) {
    if (!signal.aborted) state.logger.warn({ document_id: id, err: String(err) }, 'simulator: ingest callback failed')
  }
}

export async function handleIngest(req: Request, state: SimulatorState): Promise<Response> {
  let body: Record<string, unknown>
  try {
    body = await readJsonObject(req)
    checkIngest(body)
  } catch (err) {
    if (err instanceof SimulatorInputError) return errorResponse(400, err.code, err.message)
    throw err
  }
  state.stats.ingests.push(body)
  // Bounded so a long-running dev gateway does not grow forever; tests look at the latest few.
  if (state.stats.ingests.length > MAX_RECORDED) state.stats.ingests.shift()
  const cb = state.callback
  if (cb) void reportBack(state, cb, body)
  return json(202, { accepted: true, document_id: body.document_id })
}
