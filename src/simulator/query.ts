/**
 * `POST /query`: validates the gateway's request, picks the scenario, and streams its NDJSON plan.
 * HTTP failure modes answer before any stream; everything else is a 200 `application/x-ndjson` stream.
 */
import { extractDirectives, resolveQueryOptions, SimulatorInputError, type QueryOptions } from './directives.ts'
import { errorResponse, json, readJsonObject, sleep } from './http.ts'
import { queryPlan, type QueryInput } from './query-plan.ts'
import type { SimulatorState } from './state.ts'
import { createStepStream, type StepStream } from './step-stream.ts'

const HTTP_FAILURES: Partial<Record<QueryOptions['mode'], number>> = { http_500: 500, http_429: 429, http_503: 503 }

let generatedIds = 0

function optionalString(body: Record<string, unknown>, key: string): string | null {
  const value = body[key]
  if (value === undefined || value === null) return null
  if (typeof value !== 'string') throw new SimulatorInputError(`${key} must be a string`, 'VALIDATION_FAILED')
  return value
}

function checkMessages(value: unknown): Array<{ role: string; content: string }> {
  if (!Array.isArray(value) || value.length === 0) {
    throw new SimulatorInputError('messages must be a non-empty array', 'VALIDATION_FAILED')
  }
  for (const [i, m] of value.entries()) {
    if (typeof m !== 'object' || m === null || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new SimulatorInputError(`messages[${i}] must be {role: string, content: string}`, 'VALIDATION_FAILED')
    }
  }
  return value as Array<{ role: string; content: string }>
}

/** Body → what the plan needs, plus the options chosen by directive and `simulate`. */
export function parseQueryRequest(
  body: Record<string, unknown>,
  headerRequestId: string | null,
  defaults: QueryOptions,
): { input: QueryInput; options: QueryOptions } {
  const messages = checkMessages(body.messages)
  const lastUser = messages.findLast((m) => m.role === 'user')
  if (!lastUser) throw new SimulatorInputError('messages must contain a user message', 'VALIDATION_FAILED')
  for (const key of ['temperature', 'max_tokens']) {
    if (body[key] != null && typeof body[key] !== 'number') {
      throw new SimulatorInputError(`${key} must be a number`, 'VALIDATION_FAILED')
    }
  }
  const { params, text } = extractDirectives(lastUser.content)
  const options = resolveQueryOptions(defaults, params, body.simulate)
  const input: QueryInput = {
    requestId: optionalString(body, 'request_id') || headerRequestId || `sim_req_${++generatedIds}`,
    question: text,
    model: optionalString(body, 'model') ?? 'gpt-3.5-turbo',
    conversationId: optionalString(body, 'conversation_id'),
    promptChars: messages.reduce((n, m) => n + m.content.length, 0),
  }
  // Checked for type only: the simulator does not use them, but a gateway sending garbage should hear so.
  for (const key of ['stream_id', 'tenant_id', 'user_id']) optionalString(body, key)
  return { input, options }
}

async function httpFailure(req: Request, state: SimulatorState, status: number, o: QueryOptions, requestId: string) {
  state.stats.queriesOpen++
  try {
    const signal = AbortSignal.any([req.signal, state.shutdown.signal])
    await sleep(o.first_byte_delay_ms, signal)
  } finally {
    state.stats.queriesOpen--
  }
  const headers: Record<string, string> = status === 500 ? {} : { 'Retry-After': '1' }
  const body = { error: `simulated upstream HTTP ${status}`, code: `SIMULATED_HTTP_${status}`, request_id: requestId }
  return json(status, body, headers)
}

/** The one thing the handler needs from Bun's server: exempting a request from the idle timeout. */
export interface IdleTimeoutControl {
  timeout(request: Request, seconds: number): void
}

function openStream(
  req: Request,
  server: IdleTimeoutControl,
  state: SimulatorState,
  input: QueryInput,
  o: QueryOptions,
) {
  // Paced, silent and stalled streams would otherwise be cut by Bun's 10 s idle timeout.
  server.timeout(req, 0)
  const { stats } = state
  stats.queriesOpen++
  const stream: StepStream = createStepStream(queryPlan(input, o), {
    onText: () => stats.queryLinesGenerated++,
    onFinish: () => {
      stats.queriesOpen--
      state.streams.delete(stream)
    },
  })
  state.streams.add(stream)
  // Bun also cancels the body when the client leaves; the signal is a second, independent path.
  req.signal.addEventListener('abort', () => stream.terminate(), { once: true })
  return new Response(stream.body, {
    headers: {
      'Content-Type': 'application/x-ndjson',
      'Cache-Control': 'no-cache',
      'X-Request-ID': input.requestId,
    },
  })
}

export async function handleQuery(req: Request, server: IdleTimeoutControl, state: SimulatorState): Promise<Response> {
  let parsed: ReturnType<typeof parseQueryRequest>
  try {
    parsed = parseQueryRequest(await readJsonObject(req), req.headers.get('x-request-id'), state.queryDefaults)
  } catch (err) {
    if (err instanceof SimulatorInputError) return errorResponse(400, err.code, err.message)
    throw err
  }
  const { input, options } = parsed
  state.stats.queriesStarted++
  const status = HTTP_FAILURES[options.mode]
  if (status !== undefined) return httpFailure(req, state, status, options, input.requestId)
  return openStream(req, server, state, input, options)
}
