import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startSimulator, type Simulator } from '../../src/simulator/server.ts'

let sim: Simulator
/** A stand-in for the gateway's status endpoint, recording what the simulator reports. */
let gateway: ReturnType<typeof Bun.serve>
const reports: Array<{ path: string; auth: string | null; body: Record<string, unknown> }> = []

beforeAll(async () => {
  gateway = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      reports.push({
        path: new URL(req.url).pathname,
        auth: req.headers.get('authorization'),
        body: (await req.json()) as Record<string, unknown>,
      })
      return Response.json({ ok: true })
    },
  })
  sim = await startSimulator({
    callback: { baseUrl: `http://127.0.0.1:${gateway.port}`, apiKey: 'vh_test', readyDelayMs: 5 },
  })
})
afterAll(async () => {
  await sim.stop()
  await gateway.stop(true)
})

function ingest(body: unknown) {
  return fetch(`${sim.url}/documents/ingest`, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

async function until(check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await Bun.sleep(5)
  }
}

const doc = {
  document_id: 'doc_1',
  tenant_id: 't1',
  title: 'Handbook',
  content_type: 'application/pdf',
  size: 1234,
  download_url: 'http://gateway/api/v2/documents/doc_1/content',
}

describe('POST /documents/ingest', () => {
  test('accepts with 202, records the body, and reports indexing then ready with the API key', async () => {
    const res = await ingest(doc)
    expect(res.status).toBe(202)
    expect(await res.json()).toEqual({ accepted: true, document_id: 'doc_1' })
    expect(sim.stats.ingests.at(-1)).toEqual(doc)
    await until(() => reports.filter((r) => r.path === '/api/v2/documents/doc_1/status').length === 2)
    const mine = reports.filter((r) => r.path === '/api/v2/documents/doc_1/status')
    expect(mine.map((r) => r.body.status)).toEqual(['indexing', 'ready'])
    expect(mine.every((r) => r.auth === 'Bearer vh_test')).toBe(true)
  })

  test('a title asking for failure ends in status failed', async () => {
    await ingest({ ...doc, document_id: 'doc_2', title: 'bad [[sim status=failed]]' })
    await until(() => reports.some((r) => r.path === '/api/v2/documents/doc_2/status' && r.body.status === 'failed'))
  })

  test('without a callback it only records', async () => {
    const own = await startSimulator()
    try {
      expect((await fetch(`${own.url}/documents/ingest`, { method: 'POST', body: JSON.stringify(doc) })).status).toBe(
        202,
      )
      expect(own.stats.ingests).toHaveLength(1)
    } finally {
      await own.stop()
    }
  })

  test('an unreachable callback is best effort: still 202, nothing thrown', async () => {
    const own = await startSimulator({ callback: { baseUrl: 'http://127.0.0.1:1', apiKey: 'k', readyDelayMs: 1 } })
    try {
      expect((await fetch(`${own.url}/documents/ingest`, { method: 'POST', body: JSON.stringify(doc) })).status).toBe(
        202,
      )
      await Bun.sleep(50)
    } finally {
      await own.stop()
    }
  })

  for (const [name, body] of [
    ['malformed JSON', '{"document_id":'],
    ['missing document_id', { ...doc, document_id: undefined }],
    ['missing tenant_id', { ...doc, tenant_id: '' }],
    ['size not a number', { ...doc, size: 'big' }],
    ['title not a string', { ...doc, title: 5 }],
  ] as const) {
    test(`${name} → 400`, async () => {
      const before = sim.stats.ingests.length
      const res = await ingest(body)
      expect(res.status).toBe(400)
      expect(sim.stats.ingests).toHaveLength(before)
    })
  }
})
