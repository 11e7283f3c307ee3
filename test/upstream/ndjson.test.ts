import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startSimulator, type Simulator } from '../../src/simulator/server.ts'
import { LINE_TOO_LONG, UpstreamError } from '../../src/upstream/errors.ts'
import { readNdjsonBatches } from '../../src/upstream/ndjson.ts'
import { ask, chunked, collect, failure, readAll, readNdjson } from './helpers.ts'

const values = (items: Awaited<ReturnType<typeof readAll>>) => items.map((i) => (i.kind === 'line' ? i.value : i))

describe('readNdjson on chosen chunk boundaries', () => {
  test('lines split across chunks come out whole, numbered from 1', async () => {
    const items = await readAll(chunked('{"a":1}\n{"b"', ':2}', '\n{"c":3}\n'))
    expect(items).toEqual([
      { kind: 'line', value: { a: 1 }, text: '{"a":1}', lineNumber: 1 },
      { kind: 'line', value: { b: 2 }, text: '{"b":2}', lineNumber: 2 },
      { kind: 'line', value: { c: 3 }, text: '{"c":3}', lineNumber: 3 },
    ])
  })

  test('a multi-byte character split across chunks is decoded intact', async () => {
    const bytes = new TextEncoder().encode('{"t":"café 👋 中"}\n')
    const cuts = [9, 10, 14, 15, 16, 19] // inside é, inside the emoji, inside 中
    const pieces = cuts.map((c, i) => bytes.subarray(i === 0 ? 0 : cuts[i - 1], c))
    pieces.push(bytes.subarray(cuts.at(-1)))
    expect(values(await readAll(chunked(...pieces)))).toEqual([{ t: 'café 👋 中' }])
  })

  test('one byte per chunk still works', async () => {
    const bytes = new TextEncoder().encode('{"x":"ü"}\n\n{"y":2}')
    const pieces = Array.from(bytes, (b) => Uint8Array.of(b))
    expect(values(await readAll(chunked(...pieces)))).toEqual([{ x: 'ü' }, { y: 2 }])
  })

  test('blank lines are skipped and not numbered; CRLF is accepted', async () => {
    const items = await readAll(chunked('\n\n{"a":1}\r\n  \r\n\t\n{"b":2}\n\n'))
    expect(items.map((i) => i.lineNumber)).toEqual([1, 2])
    expect(values(items)).toEqual([{ a: 1 }, { b: 2 }])
  })

  test('invalid JSON and non-objects are reported, numbered, and reading goes on', async () => {
    const items = await readAll(chunked('not json\n[1,2]\n42\nnull\n"s"\n{"ok":true}\n{"trunc":\n'))
    expect(items).toEqual([
      { kind: 'invalid', lineNumber: 1, reason: 'json' },
      { kind: 'invalid', lineNumber: 2, reason: 'not_object' },
      { kind: 'invalid', lineNumber: 3, reason: 'not_object' },
      { kind: 'invalid', lineNumber: 4, reason: 'not_object' },
      { kind: 'invalid', lineNumber: 5, reason: 'not_object' },
      { kind: 'line', value: { ok: true }, text: '{"ok":true}', lineNumber: 6 },
      { kind: 'invalid', lineNumber: 7, reason: 'json' },
    ])
  })

  test('bytes that are not UTF-8 make an invalid line', async () => {
    const items = await readAll(chunked(Uint8Array.of(0x7b, 0xff, 0x7d, 0x0a), '{"a":1}\n'))
    expect(items.map((i) => i.kind)).toEqual(['invalid', 'line'])
  })

  test('bytes that are not UTF-8 in one line of a read: only that line is invalid, the rest of the read is read', async () => {
    const read = Uint8Array.of(...new TextEncoder().encode('{"a":1}\n'), 0x7b, 0xff, 0x7d, 0x0a, ...new TextEncoder().encode('{"b":"é"}\n'))
    const items = await readAll(chunked(read))
    expect(items.map((i) => [i.kind, i.lineNumber])).toEqual([
      ['line', 1],
      ['invalid', 2],
      ['line', 3],
    ])
    expect(values(items)[2]).toEqual({ b: 'é' })
  })

  test("each line's text is as sent, its spacing and escapes kept, without CR; a BOM before a line is dropped wherever the reads were cut", async () => {
    const body = '\uFEFF{ "a" : "\\u00e9" }\r\n\uFEFF{"b":2}\n'
    const whole = await readAll(chunked(body))
    expect(whole.map((i) => (i.kind === 'line' ? i.text : i))).toEqual(['{ "a" : "\\u00e9" }', '{"b":2}'])
    expect(values(whole)).toEqual([{ a: 'é' }, { b: 2 }])
    const bytes = new TextEncoder().encode(body)
    for (let cut = 1; cut < bytes.length; cut++) expect(await readAll(chunked(bytes.subarray(0, cut), bytes.subarray(cut)))).toEqual(whole)
  })

  test('batches: the lines of one read come together, split lines join the read that completes them', async () => {
    const batches: number[][] = []
    for await (const batch of readNdjsonBatches(chunked('{"a":1}\n{"b":2}\n{"c"', ':3}\n', '\n\n', '{"d":4}'), { maxLineBytes: 1024 })) {
      batches.push(batch.map((i) => i.lineNumber))
    }
    // a read with no complete line yields nothing; the last line without a newline comes alone at the end
    expect(batches).toEqual([[1, 2], [3], [4]])
  })

  test('a line past the limit: the lines before it in the same read are still handed out, then STREAM_ERROR', async () => {
    const seen: unknown[] = []
    const err = await failure((async () => {
      for await (const item of readNdjson(chunked(`{"a":1}\n{"b":2}\n{"big":"${'x'.repeat(2000)}"}\n`), { maxLineBytes: 1024 })) seen.push(item.lineNumber)
    })())
    expect(seen).toEqual([1, 2])
    expect(err).toMatchObject({ code: 'STREAM_ERROR' })
  })

  test('a final line without a newline is still read', async () => {
    expect(values(await readAll(chunked('{"a":1}\n{"b":', '2}')))).toEqual([{ a: 1 }, { b: 2 }])
  })

  test('an empty body gives nothing', async () => {
    expect(await readAll(chunked())).toEqual([])
  })

  test('a line of exactly maxLineBytes passes; one byte more is a STREAM_ERROR', async () => {
    const line = `{"x":"${'a'.repeat(92)}"}` // 100 bytes
    expect(await readAll(chunked(`${line}\n`), 100)).toHaveLength(1)
    expect(await readAll(chunked(line), 100)).toHaveLength(1)
    const err = await failure(readAll(chunked(`{"x":"${'a'.repeat(93)}"}\n`), 100))
    expect(err).toBeInstanceOf(UpstreamError)
    expect(err).toMatchObject({ code: 'STREAM_ERROR', message: LINE_TOO_LONG })
  })

  test('a line that never ends is refused after about maxLineBytes, not buffered', async () => {
    let pulled = 0
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 4096
        controller.enqueue(new Uint8Array(4096).fill(0x61))
      },
    })
    const err = await failure(readAll(endless, 64 * 1024))
    expect(err).toMatchObject({ code: 'STREAM_ERROR', message: LINE_TOO_LONG })
    expect(pulled).toBeLessThanOrEqual(64 * 1024 + 3 * 4096)
  })

  test('a reader error becomes STREAM_ERROR after the lines before it', async () => {
    let sent = false
    const broken = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent) return controller.error(new Error('ECONNRESET'))
        sent = true
        controller.enqueue(new TextEncoder().encode('{"a":1}\n{"b":'))
      },
    })
    const seen: unknown[] = []
    const err = await failure(
      (async () => {
        for await (const item of readNdjson(broken, { maxLineBytes: 1024 })) seen.push(item)
      })(),
    )
    expect(seen).toHaveLength(1)
    expect(err).toMatchObject({ code: 'STREAM_ERROR' })
    // the driver's words stay in `cause` for the logs; the message is what a client may read
    expect((err as Error).message).not.toContain('ECONNRESET')
    expect(((err as Error).cause as Error).message).toBe('ECONNRESET')
  })

  test('an abort while waiting for bytes throws its reason and cancels the body', async () => {
    let cancelled = false
    const silent = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"a":1}\n'))
      },
      cancel() {
        cancelled = true
      },
    })
    const ctrl = new AbortController()
    const gen = readNdjson(silent, { maxLineBytes: 1024, signal: ctrl.signal })
    expect((await gen.next()).value).toMatchObject({ value: { a: 1 } })
    const pending = gen.next()
    setTimeout(() => ctrl.abort(new Error('stop')), 20)
    expect(await failure(pending)).toMatchObject({ message: 'stop' })
    expect(cancelled).toBe(true)
  })

  test('leaving early cancels the body', async () => {
    let cancelled = false
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"a":1}\n{"b":2}\n'))
      },
      cancel() {
        cancelled = true
      },
    })
    for await (const _ of readNdjson(body, { maxLineBytes: 1024 })) break
    expect(cancelled).toBe(true)
  })
})

describe('readNdjson over a real socket (simulator)', () => {
  let sim: Simulator
  beforeAll(async () => {
    sim = await startSimulator({ port: 0 })
  })
  afterAll(() => sim.stop())

  const query = (directive: string) =>
    fetch(`${sim.url}/query`, { method: 'POST', body: JSON.stringify(ask(directive)) }).then((r) => r.body!)

  test('a long, fast answer arrives whole and in order', async () => {
    const items = await readAll(await query('chunks=2000 chunk_size=40'))
    expect(items).toHaveLength(2005)
    expect(items.at(-1)).toMatchObject({ kind: 'line', value: { type: 'generation_done' }, lineNumber: 2005 })
  })

  test('garbage between lines is reported as invalid', async () => {
    const items = await readAll(await query('mode=invalid_lines chunks=4'))
    expect(items.filter((i) => i.kind === 'invalid').length).toBeGreaterThan(0)
    expect(items.filter((i) => i.kind === 'line')).toHaveLength(9)
  })

  test('a connection reset mid-stream is a STREAM_ERROR after the lines sent', async () => {
    const seen: unknown[] = []
    const err = await failure(
      (async () => {
        for await (const item of readNdjson(await query('mode=drop_mid fail_after=3 delay_ms=5'), { maxLineBytes: 1 << 20 }))
          seen.push(item)
      })(),
    )
    expect(seen).toHaveLength(3)
    expect(err).toMatchObject({ code: 'STREAM_ERROR' })
  })

  test('the simulator\'s oversized line is refused', async () => {
    const err = await failure(readAll(await query('mode=oversized_line fail_after=2')))
    expect(err).toMatchObject({ code: 'STREAM_ERROR', message: LINE_TOO_LONG })
  })
})
