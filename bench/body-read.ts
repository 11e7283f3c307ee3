/**
 * Reading a small JSON request body in Bun.serve: iterating `request.body` (a ReadableStream, created by the
 * getter) against `request.text()`. src/http/body.ts reads a body with a declared Content-Length natively and
 * iterates only chunked ones (whose size it must bound while reading). Client and server share this process;
 * the client's part is the same in both rows.
 *
 *   bun bench/body-read.ts [--requests 4000] [--concurrency 100] [--rounds 4]
 */
import { parseArgs } from 'node:util'
import { machine, percentile } from './lib'

const { values: args } = parseArgs({
  options: { requests: { type: 'string', default: '4000' }, concurrency: { type: 'string', default: '100' }, rounds: { type: 'string', default: '4' } },
})
const REQUESTS = Number(args.requests)
const CONCURRENCY = Number(args.concurrency)
const ROUNDS = Number(args.rounds)

async function iterate(request: Request): Promise<string> {
  const chunks: Uint8Array[] = []
  for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) chunks.push(chunk)
  return new TextDecoder().decode(Buffer.concat(chunks))
}
const server = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(req) {
    const text = new URL(req.url).pathname === '/iterate' ? await iterate(req) : await req.text()
    return new Response(String(text.length))
  },
})
const body = JSON.stringify({ message: 'benchmark question [[sim chunks=1]]', request_id: 'req_0123456789', temperature: 0.7 })
const results = new Map<string, number[]>()
for (let round = 0; round <= ROUNDS; round++) {
  for (const path of ['/iterate', '/text']) {
    const c0 = process.cpuUsage()
    for (let sent = 0; sent < REQUESTS; sent += CONCURRENCY) {
      await Promise.all(
        Array.from({ length: CONCURRENCY }, () =>
          fetch(`http://127.0.0.1:${server.port}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } }).then((r) => r.text()),
        ),
      )
    }
    const c = process.cpuUsage(c0)
    if (round > 0) results.set(path, [...(results.get(path) ?? []), (c.user + c.system) / REQUESTS]) // round 0 warms up
  }
}
server.stop(true)
console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}; ${REQUESTS} POSTs of ${body.length} bytes per round, ${CONCURRENCY} at a time\n`)
console.log('| body read | CPU µs per request, client + server (median round) | every round |')
console.log('|---|---:|---|')
for (const [path, xs] of results) {
  console.log(`| ${path === '/text' ? 'request.text()' : 'for await over request.body'} | ${percentile(xs, 0.5).toFixed(1)} | ${xs.map((x) => x.toFixed(1)).join(' ')} |`)
}
console.log(`\nCommand: \`bun bench/body-read.ts --requests ${REQUESTS} --concurrency ${CONCURRENCY} --rounds ${ROUNDS}\``)
