import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { simulatedAnswer, startSimulator, type Simulator } from '../../src/simulator/server.ts'
import { rejectionOf } from '../helpers/rejection'

let sim: Simulator

beforeAll(async () => {
  sim = await startSimulator()
})
afterAll(async () => {
  await sim.stop()
})

type Line = Record<string, any>

function query(content: string, extra: Record<string, unknown> = {}, init: RequestInit = {}) {
  return fetch(`${sim.url}/query`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content }], request_id: 'req-1', ...extra }),
    ...init,
  })
}

/** Reads a body to its end, keeping what arrived before a broken connection. */
async function collect(res: Response): Promise<{ raw: string; lines: Line[]; error?: unknown }> {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let raw = ''
  let error: unknown
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      raw += decoder.decode(value, { stream: true })
    }
  } catch (err) {
    error = err
  }
  const lines = raw
    .split('\n')
    .filter((l) => l.trim() !== '')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Line]
      } catch {
        return []
      }
    })
  return { raw, lines, error }
}

async function until(check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await Bun.sleep(5)
  }
}

const SEED_ORDER = ['retrieval_start', 'retrieval_progress', 'retrieval_result', 'generation_start']

describe('POST /query, normal stream', () => {
  test('streams the seed order as NDJSON with the request id echoed', async () => {
    const res = await query('What is VoiceHelper?')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/x-ndjson')
    const { raw, lines } = await collect(res)
    expect(raw.endsWith('\n')).toBe(true)
    expect(lines.map((l) => l.type)).toEqual([...SEED_ORDER, ...Array(8).fill('generation_chunk'), 'generation_done'])
    expect(lines.every((l) => l.request_id === 'req-1')).toBe(true)
  })

  test('answer text is deterministic and predictable from the question', async () => {
    const { lines } = await collect(await query('What is VoiceHelper?'))
    const text = lines
      .filter((l) => l.type === 'generation_chunk')
      .map((l) => l.content)
      .join('')
    expect(text).toBe(simulatedAnswer('What is VoiceHelper?'))
    expect(text.startsWith('Simulated answer to "What is VoiceHelper?". ')).toBe(true)
    const done = lines.at(-1)!
    expect(done.text_length).toBe(text.length)
    expect(done.usage).toEqual({ prompt_tokens: 5, completion_tokens: 8, total_tokens: 13 })
    const again = await collect(await query('What is VoiceHelper?'))
    expect(again.lines).toEqual(lines)
  })

  test('retrieval_result carries references with id, title, score and snippet', async () => {
    const { lines } = await collect(await query('refs please'))
    const refs = lines.find((l) => l.type === 'retrieval_result')!.references
    expect(refs).toHaveLength(3)
    for (const r of refs) expect(Object.keys(r).sort()).toEqual(['id', 'score', 'snippet', 'title'])
  })

  test('the directive in the last user message sets chunks and chunk_size, and is not part of the question', async () => {
    const { lines } = await collect(await query('hello [[sim chunks=3 chunk_size=5]]'))
    const chunks = lines.filter((l) => l.type === 'generation_chunk').map((l) => l.content)
    expect(chunks).toEqual(['Simul', 'ated ', 'answe'])
    expect(lines[0]!.query).toBe('hello')
  })

  test('only the last user message is read; earlier turns and assistant messages are ignored', async () => {
    const res = await fetch(`${sim.url}/query`, {
      method: 'POST',
      body: JSON.stringify({
        messages: [
          { role: 'user', content: 'old [[sim chunks=1]]' },
          { role: 'user', content: 'new question' },
          { role: 'assistant', content: '[[sim chunks=2]]' },
        ],
      }),
    })
    const { lines } = await collect(res)
    expect(lines.filter((l) => l.type === 'generation_chunk')).toHaveLength(8)
    expect(lines[0]!.query).toBe('new question')
  })

  test('a simulate object in the body works too and wins over the directive', async () => {
    const { lines } = await collect(await query('q [[sim chunks=2]]', { simulate: { chunks: 4 } }))
    expect(lines.filter((l) => l.type === 'generation_chunk')).toHaveLength(4)
  })

  test('without request_id the X-Request-ID header is echoed', async () => {
    const res = await fetch(`${sim.url}/query`, {
      method: 'POST',
      headers: { 'X-Request-ID': 'hdr-7' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }),
    })
    const { lines } = await collect(res)
    expect(lines[0]!.request_id).toBe('hdr-7')
  })

  test('Unicode questions are chunked by code point, never splitting a surrogate pair', async () => {
    const q = '语音助手 😀 是什么'
    const { lines } = await collect(await query(`${q} [[sim chunks=40 chunk_size=3]]`))
    const chunks: string[] = lines.filter((l) => l.type === 'generation_chunk').map((l) => l.content)
    expect(chunks.every((c) => [...c].length === 3)).toBe(true)
    expect(chunks.join('')).toBe(simulatedAnswer(q, { chunks: 40, chunk_size: 3 }))
  })

  test('delay_ms paces the lines', async () => {
    const t0 = performance.now()
    const { lines } = await collect(await query('slow [[sim chunks=4 delay_ms=25]]'))
    expect(lines).toHaveLength(9)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(8 * 25 - 5)
  })

  test('a long unpaced stream arrives complete', async () => {
    const { lines } = await collect(await query('big [[sim chunks=20000]]'))
    expect(lines).toHaveLength(20005)
    expect(lines.at(-1)!.type).toBe('generation_done')
  })
})

describe('POST /query, legacy format', () => {
  test('mode=legacy speaks the algorithm service own refs/content/end lines', async () => {
    const { lines } = await collect(await query('old style [[sim mode=legacy chunks=3]]'))
    expect(lines.map((l) => l.type)).toEqual(['refs', 'content', 'content', 'content', 'end'])
    expect(lines[0]!.refs).toHaveLength(3)
    expect(
      lines
        .slice(1, 4)
        .map((l) => l.content)
        .join(''),
    ).toBe(simulatedAnswer('old style', { chunks: 3 }))
  })

  test('format=legacy with error_event ends with {type:"error", error}', async () => {
    const { lines } = await collect(await query('x [[sim format=legacy mode=error_event fail_after=2]]'))
    expect(lines.map((l) => l.type)).toEqual(['refs', 'content', 'error'])
    expect(lines[2]).toEqual({ type: 'error', error: 'simulated generation failure' })
  })
})

describe('POST /query, failure modes', () => {
  for (const status of [500, 429, 503]) {
    test(`http_${status} answers ${status} with a JSON error and no stream`, async () => {
      const res = await query(`x [[sim mode=http_${status}]]`)
      expect(res.status).toBe(status)
      const body = await res.json()
      expect(body).toMatchObject({ code: `SIMULATED_HTTP_${status}`, request_id: 'req-1' })
      if (status !== 500) expect(res.headers.get('retry-after')).toBe('1')
    })
  }

  test('error_event emits an error line after fail_after lines and ends cleanly', async () => {
    const { lines, error } = await collect(await query('x [[sim mode=error_event fail_after=5 error_code=LLM_DOWN]]'))
    expect(error).toBeUndefined()
    expect(lines.map((l) => l.type)).toEqual([...SEED_ORDER, 'generation_chunk', 'error'])
    expect(lines.at(-1)).toMatchObject({ type: 'error', code: 'LLM_DOWN', request_id: 'req-1' })
  })

  test('drop_mid breaks the connection after fail_after lines: the reader sees an error, not an end', async () => {
    const { lines, error } = await collect(await query('x [[sim mode=drop_mid fail_after=6 chunks=50]]'))
    expect(error).toBeDefined()
    expect(lines).toHaveLength(6)
    expect(lines.some((l) => l.type === 'generation_done')).toBe(false)
  })

  test('drop_mid with paced lines delivers the lines before the drop', async () => {
    const { lines, error } = await collect(await query('x [[sim mode=drop_mid fail_after=3 delay_ms=5]]'))
    expect(error).toBeDefined()
    expect(lines.map((l) => l.type)).toEqual(SEED_ORDER.slice(0, 3))
  })

  test('invalid_lines interleaves garbage and blank lines between the valid ones', async () => {
    const { raw, lines } = await collect(await query('x [[sim mode=invalid_lines chunks=2]]'))
    const all = raw.split('\n').slice(0, -1)
    const blank = all.filter((l) => l === '').length
    const garbage = all.filter((l) => l !== '' && !isJson(l)).length
    expect(lines).toHaveLength(7)
    expect(garbage).toBe(6)
    expect(blank).toBe(6)
    expect(lines.map((l) => l.type)).toEqual([...SEED_ORDER, 'generation_chunk', 'generation_chunk', 'generation_done'])
  })

  test('oversized_line sends one line over 1 MiB after fail_after lines, then carries on', async () => {
    const { raw } = await collect(await query('x [[sim mode=oversized_line fail_after=4 chunks=2]]'))
    const all = raw.split('\n').filter(Boolean)
    expect(all).toHaveLength(4 + 1 + 3)
    expect(all[4]!.length).toBeGreaterThan(1024 * 1024)
    expect(JSON.parse(all.at(-1)!).type).toBe('generation_done')
  })

  test('stall stops after fail_after lines but keeps the connection open until the client leaves', async () => {
    const ac = new AbortController()
    const res = await query('x [[sim mode=stall fail_after=2]]', {}, { signal: ac.signal })
    const reader = res.body!.getReader()
    let got = ''
    while (got.split('\n').length < 3) got += new TextDecoder().decode((await reader.read()).value)
    const next = reader.read()
    const raced = await Promise.race([next.then(() => 'data'), Bun.sleep(300).then(() => 'quiet')])
    expect(raced).toBe('quiet')
    expect(sim.stats.queriesOpen).toBe(1)
    ac.abort()
    await next.catch(() => {})
    await until(() => sim.stats.queriesOpen === 0)
  })

  test('silence_ms pauses after fail_after lines, then the stream completes', async () => {
    const res = await query('x [[sim silence_ms=300 fail_after=4 chunks=2]]')
    const reader = res.body!.getReader()
    const arrivals: Array<[number, number]> = []
    const t0 = performance.now()
    let raw = ''
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      raw += new TextDecoder().decode(value)
      arrivals.push([raw.split('\n').length - 1, performance.now() - t0])
    }
    expect(raw.split('\n').filter(Boolean)).toHaveLength(7)
    const fifth = arrivals.find(([n]) => n >= 5)!
    const fourth = arrivals.find(([n]) => n >= 4)!
    expect(fifth[1] - fourth[1]).toBeGreaterThanOrEqual(280)
  })

  test('first_byte_delay_ms holds everything, headers included', async () => {
    const t0 = performance.now()
    const res = await query('x [[sim first_byte_delay_ms=250 chunks=1]]')
    expect(performance.now() - t0).toBeGreaterThanOrEqual(240)
    expect((await collect(res)).lines).toHaveLength(6)
  })

  test('first_line_delay_ms sends headers at once, then silence before the first line', async () => {
    const t0 = performance.now()
    const res = await query('x [[sim first_line_delay_ms=300 chunks=1]]')
    expect(performance.now() - t0).toBeLessThan(200)
    const { lines } = await collect(res)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290)
    expect(lines).toHaveLength(6)
  })
})

function isJson(l: string): boolean {
  try {
    JSON.parse(l)
    return true
  } catch {
    return false
  }
}

describe('POST /query, cancellation', () => {
  test('a client abort mid-stream closes the query and stops generation', async () => {
    const started = sim.stats.queriesStarted
    const ac = new AbortController()
    const res = await query('x [[sim chunks=100000 delay_ms=10]]', {}, { signal: ac.signal })
    const reader = res.body!.getReader()
    await reader.read()
    expect(sim.stats.queriesStarted).toBe(started + 1)
    expect(sim.stats.queriesOpen).toBe(1)
    ac.abort()
    await until(() => sim.stats.queriesOpen === 0, 1000)
    const generated = sim.stats.queryLinesGenerated
    await Bun.sleep(100)
    expect(sim.stats.queryLinesGenerated).toBe(generated)
  })

  test('an abort during first_byte_delay_ms (before headers) also closes the query', async () => {
    const ac = new AbortController()
    const pending = query('x [[sim first_byte_delay_ms=5000]]', {}, { signal: ac.signal }).catch(() => 'aborted')
    await until(() => sim.stats.queriesOpen === 1)
    ac.abort()
    expect(await pending).toBe('aborted')
    await until(() => sim.stats.queriesOpen === 0, 1000)
  })

  test('an unpaced stream the client stops reading is not generated to the end (backpressure)', async () => {
    const ac = new AbortController()
    const before = sim.stats.queryLinesGenerated
    const res = await query('x [[sim chunks=1000000]]', {}, { signal: ac.signal })
    await res.body!.getReader().read()
    await Bun.sleep(200)
    expect(sim.stats.queryLinesGenerated - before).toBeLessThan(500_000)
    ac.abort()
    await until(() => sim.stats.queriesOpen === 0, 1000)
  })
})

describe('POST /query, bad requests are 400, never 500', () => {
  const bad: Array<[string, string]> = [
    ['malformed JSON', '{"messages": ['],
    ['not an object', '[1, 2]'],
    ['no messages', '{}'],
    ['empty messages', '{"messages": []}'],
    ['message without content', '{"messages": [{"role": "user"}]}'],
    ['no user message', '{"messages": [{"role": "system", "content": "x"}]}'],
    ['wrong type for request_id', '{"messages": [{"role": "user", "content": "x"}], "request_id": 5}'],
    ['unknown directive key', '{"messages": [{"role": "user", "content": "x [[sim chunkz=3]]"}]}'],
    ['out-of-range directive', '{"messages": [{"role": "user", "content": "x [[sim chunks=-1]]"}]}'],
    ['unknown mode', '{"messages": [{"role": "user", "content": "x [[sim mode=explode]]"}]}'],
    ['malformed directive token', '{"messages": [{"role": "user", "content": "x [[sim chunks 3]]"}]}'],
    ['simulate not an object', '{"messages": [{"role": "user", "content": "x"}], "simulate": 3}'],
  ]
  for (const [name, body] of bad) {
    test(name, async () => {
      const res = await fetch(`${sim.url}/query`, { method: 'POST', body })
      expect(res.status).toBe(400)
      const json = (await res.json()) as Record<string, unknown>
      expect(typeof json.error).toBe('string')
      expect(typeof json.code).toBe('string')
    })
  }
})

describe('routing and lifecycle', () => {
  test('GET /health says it is the simulator', async () => {
    const res = await fetch(`${sim.url}/health`)
    expect(await res.json()).toEqual({ status: 'healthy', simulator: true })
  })

  test('unknown route is 404, wrong method 405', async () => {
    expect((await fetch(`${sim.url}/nope`)).status).toBe(404)
    const res = await fetch(`${sim.url}/query`)
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toBe('POST')
  })

  test('stop() ends open streams', async () => {
    const own = await startSimulator()
    const res = await fetch(`${own.url}/query`, {
      method: 'POST',
      body: JSON.stringify({ messages: [{ role: 'user', content: 'x [[sim mode=stall fail_after=1]]' }] }),
    })
    const reader = res.body!.getReader()
    await reader.read()
    expect(own.stats.queriesOpen).toBe(1)
    await own.stop()
    expect(own.stats.queriesOpen).toBe(0)
    expect(await rejectionOf(reader.read())).toBeDefined()
  })

  // Bun checks idle timeouts on a 4 s tick, so 5 s of silence is what it takes to see the cut without the exemption.
  test('a silent stream outlives the server idle timeout (streams are exempt from it)', async () => {
    const own = await startSimulator({ idleTimeoutS: 1 })
    try {
      const res = await fetch(`${own.url}/query`, {
        method: 'POST',
        body: JSON.stringify({
          messages: [{ role: 'user', content: 'x [[sim silence_ms=5000 fail_after=1 chunks=1]]' }],
        }),
      })
      const { lines, error } = await collect(res)
      expect(error).toBeUndefined()
      expect(lines.at(-1)!.type).toBe('generation_done')
    } finally {
      await own.stop()
    }
  }, 15_000)

  test('server-wide query defaults apply when the request says nothing', async () => {
    const own = await startSimulator({ query: { chunks: 2, mode: 'legacy' } })
    try {
      const res = await fetch(`${own.url}/query`, {
        method: 'POST',
        body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }),
      })
      expect((await collect(res)).lines.map((l) => l.type)).toEqual(['refs', 'content', 'content', 'end'])
    } finally {
      await own.stop()
    }
  })
})
