import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, type TestApp } from './helpers/app'

let gw: TestApp
let app: ReturnType<typeof mount>
const mount = (base: TestApp['app']) => base.get('/test/items/:id', ({ params }) => ({ id: params.id }))
const call = (path: string, init?: RequestInit) => app.handle(new Request(`http://localhost${path}`, init))

beforeAll(async () => {
  gw = await createTestApp()
  app = mount(gw.app)
})
afterAll(() => gw.close())

describe('operational endpoints', () => {
  test('/health is alive with version and uptime', async () => {
    const res = await call('/health')
    expect(res.status).toBe(200)
    const body = (await res.json()) as Record<string, unknown>
    expect(body).toEqual({ status: 'healthy', version: gw.deps.config.version, uptime_s: expect.any(Number) })
  })

  test('/ready is 200 with every dependency up on embedded defaults', async () => {
    const res = await call('/ready')
    expect(res.status).toBe(200)
    const body = (await res.json()) as { status: string; checks: Record<string, { status: string }> }
    expect(body.status).toBe('ready')
    expect(Object.keys(body.checks).sort()).toEqual(['database', 'store', 'upstream'])
    for (const check of Object.values(body.checks)) expect(check.status).toBe('up')
  })

  test('/ready turns 503 while draining', async () => {
    gw.deps.lifecycle.draining = true
    try {
      const res = await call('/ready')
      expect(res.status).toBe(503)
      expect(await res.json()).toMatchObject({ status: 'not_ready', draining: true })
    } finally {
      gw.deps.lifecycle.draining = false
    }
  })

  test('/metrics counts requests by route template with the seed buckets', async () => {
    await call('/test/items/1')
    await call('/test/items/2')
    await call('/no/such/route/123')
    await Bun.sleep(10)
    const res = await call('/metrics')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('text/plain')
    const text = await res.text()
    expect(text).toContain('http_requests_total{method="GET",endpoint="/test/items/:id",status="200"} 2')
    expect(text).toContain('endpoint="unmatched",status="404"')
    expect(text).not.toContain('/test/items/1')
    expect(text).not.toContain('/no/such/route')
    for (const le of ['0.001', '0.01', '0.1', '0.5', '1', '2.5', '5', '10', '+Inf']) {
      expect(text).toContain(`http_request_duration_seconds_bucket{le="${le}",method="GET",endpoint="/test/items/:id"}`)
    }
    expect(text).toContain('process_cpu_seconds_total')
  })

  test('/swagger serves Swagger UI and /swagger/json an OpenAPI 3 document of the routes', async () => {
    const ui = await call('/swagger')
    expect(ui.status).toBe(200)
    expect(ui.headers.get('content-type')).toContain('text/html')
    expect((await ui.text()).toLowerCase()).toContain('swagger-ui')
    const doc = (await (await call('/swagger/json')).json()) as { openapi: string; paths: Record<string, unknown> }
    expect(doc.openapi).toStartWith('3.')
    for (const path of ['/health', '/ready', '/metrics']) expect(doc.paths).toHaveProperty(path)
  })

  test('CORS preflight is answered for the configured origins', async () => {
    const res = await call('/health', {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' },
    })
    expect(res.status).toBeLessThan(300)
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example')
  })
})
