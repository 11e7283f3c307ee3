/**
 * The one error vocabulary, through the whole app: every failure class comes out as
 * {error, code, request_id, details?} with X-Request-ID, and nothing internal leaks.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { t } from 'elysia'
import { createTestApp, jsonRequest, type TestApp } from '../helpers/app'

let gw: TestApp
let app: ReturnType<typeof mount>

// Routes added only for this test exercise the global handlers the way feature modules will.
function mount(base: TestApp['app']) {
  return base
    .post('/test/echo', ({ body }) => body, {
      body: t.Object({ name: t.String({ minLength: 1 }), count: t.Optional(t.Integer({ minimum: 0 })) }),
    })
    .post('/test/optional', ({ body }) => ({ got: body }), { body: t.Object({ title: t.Optional(t.String()) }) })
    .get('/test/items/:id', ({ params }) => ({ id: params.id }))
    .get('/test/list', ({ query }) => query, { query: t.Object({ limit: t.Optional(t.Integer({ minimum: 1, maximum: 100 })) }) })
    .get('/test/crash', () => {
      throw new Error('connect ECONNREFUSED 10.1.2.3:5432 password=hunter2')
    })
}

beforeAll(async () => {
  gw = await createTestApp()
  app = mount(gw.app)
})
afterAll(() => gw.close())

const call = (path: string, init?: RequestInit) => app.handle(new Request(`http://localhost${path}`, init))

async function expectError(res: Response, status: number, code: string) {
  expect(res.status).toBe(status)
  expect(res.headers.get('content-type')).toContain('application/json')
  const body = (await res.json()) as Record<string, unknown>
  expect(body.code).toBe(code)
  expect(typeof body.error).toBe('string')
  expect(body.request_id).toBe(res.headers.get('x-request-id')!)
  return body
}

async function countOf(method: string, endpoint: string, status: number): Promise<number> {
  const text = await (await call('/metrics')).text()
  const line = text.split('\n').find((l) => l.startsWith(`http_requests_total{method="${method}",endpoint="${endpoint}",status="${status}"}`))
  return line ? Number(line.split(' ').at(-1)) : 0
}

describe('error bodies', () => {
  test('validation names the field and why', async () => {
    const body = await expectError(await call('/test/echo', jsonRequest('POST', { name: 5 })), 400, 'VALIDATION_FAILED')
    expect(body.details).toContainEqual(expect.objectContaining({ field: 'name', in: 'body' }))
  })

  test('a nested wrong type and a missing field are both validation failures', async () => {
    const body = await expectError(
      await call('/test/echo', jsonRequest('POST', { count: -1 })),
      400,
      'VALIDATION_FAILED',
    )
    const fields = (body.details as Array<{ field: string }>).map((d) => d.field)
    expect(fields).toContain('name')
  })

  test('a query number out of range names the parameter', async () => {
    for (const q of ['limit=0', 'limit=101', 'limit=ten']) {
      const body = await expectError(await call(`/test/list?${q}`), 400, 'VALIDATION_FAILED')
      expect(body.details).toContainEqual(expect.objectContaining({ field: 'limit', in: 'query' }))
    }
  })

  test('an empty body is a validation failure, not a parse error', async () => {
    await expectError(await call('/test/echo', jsonRequest('POST', '')), 400, 'VALIDATION_FAILED')
  })

  test('malformed JSON is INVALID_JSON', async () => {
    await expectError(await call('/test/echo', jsonRequest('POST', '{"name": "x",')), 400, 'INVALID_JSON')
  })

  test('a body that is JSON but not an object is a validation failure, even where every field is optional', async () => {
    // Elysia 1.4 does not validate a body whose fields are all optional unless it is a non-empty object
    for (const path of ['/test/echo', '/test/optional']) {
      for (const raw of ['[]', '[{}]', '"text"', '1', 'true', 'null']) {
        const body = await expectError(await call(path, jsonRequest('POST', raw)), 400, 'VALIDATION_FAILED')
        expect(body.details).toEqual([{ field: 'body', in: 'body', message: expect.stringContaining('expected an object') }])
      }
    }
    expect(await (await call('/test/optional', jsonRequest('POST', '{}'))).json()).toEqual({ got: {} })
  })

  test('text Postgres refuses (an escaped NUL or lone surrogate, in a value or a key, at any depth) is refused naming where', async () => {
    for (const [raw, field] of [
      ['{"name": "a\\u0000b"}', 'name'],
      ['{"name": "x", "tags": [{"deep": ["ok", "lone \\udc00"]}]}', 'tags.0.deep.1'],
      ['{"name": "x", "k\\u0000": 1}', 'k\u0000'],
    ] as const) {
      const body = await expectError(await call('/test/echo', jsonRequest('POST', raw)), 400, 'VALIDATION_FAILED')
      expect(body.details).toEqual([{ field, in: 'body', message: expect.any(String) }])
    }
    // an escaped surrogate pair is a real character, and a literal backslash-u text is just text
    const ok = await call('/test/echo', jsonRequest('POST', '{"name": "\\ud83d\\ude00 \\\\u0000"}'))
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { name: string }).name).toBe('😀 \\u0000')
  })

  test('an unknown route is 404 NOT_FOUND', async () => {
    await expectError(await call('/api/v2/nope'), 404, 'NOT_FOUND')
  })

  test('a known path with the wrong method is 405 with Allow', async () => {
    const res = await call('/test/items/42', { method: 'DELETE' })
    await expectError(res, 405, 'METHOD_NOT_ALLOWED')
    expect(res.headers.get('allow')).toBe('GET, HEAD')
    await expectError(await call('/health', { method: 'POST' }), 405, 'METHOD_NOT_ALLOWED')
  })

  test('a declared body over the limit is 413 before it is read', async () => {
    const limit = gw.deps.config.bodyLimitBytes
    const res = await call('/test/echo', jsonRequest('POST', JSON.stringify({ name: 'x'.repeat(limit + 10) })))
    const body = await expectError(res, 413, 'PAYLOAD_TOO_LARGE')
    expect(body.details).toEqual({ limit_bytes: limit })
  })

  /** a chunked body: `first`, then 64 KiB pieces until `bytes` are offered; `sent()` says how many were pulled */
  function chunkedBody(first: string, bytes: number) {
    const piece = new TextEncoder().encode('y'.repeat(64 * 1024))
    let sent = 0
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > bytes) return controller.close()
        const chunk = sent === 0 ? new TextEncoder().encode(first) : piece
        sent += chunk.byteLength
        controller.enqueue(chunk)
      },
    })
    return { stream, sent: () => sent }
  }

  test('a chunked body over the limit is 413 too', async () => {
    const { stream } = chunkedBody('{"name":"', gw.deps.config.bodyLimitBytes * 2)
    const res = await call('/test/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream })
    await expectError(res, 413, 'PAYLOAD_TOO_LARGE')
  })

  test('an unsupported media type is 415', async () => {
    const res = await call('/test/echo', {
      method: 'POST',
      headers: { 'content-type': 'application/xml' },
      body: '<name>x</name>',
    })
    await expectError(res, 415, 'UNSUPPORTED_MEDIA_TYPE')
    const form = await call('/test/echo', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=x',
    })
    await expectError(form, 415, 'UNSUPPORTED_MEDIA_TYPE')
  })

  test('multipart/form-data is 415 (no route takes files), declared or chunked, and is not read past the limit', async () => {
    const form = new FormData()
    form.set('name', 'x')
    await expectError(await call('/test/echo', { method: 'POST', body: form }), 415, 'UNSUPPORTED_MEDIA_TYPE')
    const limit = gw.deps.config.bodyLimitBytes
    const { stream, sent } = chunkedBody('--x\r\nContent-Disposition: form-data; name="name"\r\n\r\n', limit * 8)
    const res = await call('/test/echo', { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: stream })
    await expectError(res, 415, 'UNSUPPORTED_MEDIA_TYPE')
    expect(sent()).toBeLessThan(limit * 4)
  })

  test('a value nested thousands deep is a 400, not a 500', async () => {
    for (const [open, close] of [['[', ']'], ['{"a":', '}']] as const) {
      const body = `{"name":${open.repeat(5000)}1${close.repeat(5000)}}`
      const res = await call('/test/echo', jsonRequest('POST', body))
      await expectError(res, 400, 'VALIDATION_FAILED')
    }
  })

  test('an unexpected failure is 500 INTERNAL_ERROR with no internals, and logged with its cause', async () => {
    const res = await call('/test/crash')
    const body = await expectError(res, 500, 'INTERNAL_ERROR')
    const text = JSON.stringify(body)
    expect(text).not.toContain('ECONNREFUSED')
    expect(text).not.toContain('hunter2')
    expect(text).not.toContain('at ')
    const logged = gw.logs.find((l) => l.msg === 'request failed' && l.request_id === body.request_id)
    expect(logged).toBeDefined()
    expect(JSON.stringify(logged)).toContain('ECONNREFUSED')
  })

  test('each error response is counted once, under its route template', async () => {
    const before = await countOf('POST', '/test/echo', 400)
    await call('/test/echo', jsonRequest('POST', { name: 7 }))
    await call('/test/items/1', { method: 'PUT' })
    expect(await countOf('POST', '/test/echo', 400)).toBe(before + 1)
    expect(await countOf('PUT', 'unmatched', 405)).toBeGreaterThanOrEqual(1)
  })

  test('a valid request still works through all of this', async () => {
    const res = await call('/test/echo', jsonRequest('POST', { name: 'ok', count: 2 }))
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ name: 'ok', count: 2 })
  })
})

describe('X-Request-ID', () => {
  test('is on every response, generated when absent', async () => {
    const ok = await call('/health')
    const missing = await call('/nope')
    expect(ok.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    expect(missing.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    expect(ok.headers.get('x-request-id')).not.toBe(missing.headers.get('x-request-id'))
  })

  test("echoes a sane client id and replaces one that is not", async () => {
    const echoed = await call('/health', { headers: { 'x-request-id': 'client-abc.123:x_y' } })
    expect(echoed.headers.get('x-request-id')).toBe('client-abc.123:x_y')
    for (const bad of ['a'.repeat(129), 'has space', '<script>', 'line\u00e9']) {
      const res = await call('/nope', { headers: { 'x-request-id': bad } })
      expect(res.headers.get('x-request-id')).not.toBe(bad)
      expect(((await res.json()) as { request_id: string }).request_id).toBe(res.headers.get('x-request-id')!)
    }
  })

  test('access log lines carry the request id and never the Authorization header', async () => {
    await call('/api/v2/nope', { headers: { authorization: 'Bearer secret-token-value', 'x-request-id': 'log-check-1' } })
    await Bun.sleep(10)
    const line = gw.logs.find((l) => l.request_id === 'log-check-1')
    expect(line).toMatchObject({ msg: 'request', status: 404, route: 'unmatched' })
    expect(JSON.stringify(gw.logs)).not.toContain('secret-token-value')
  })
})
