/**
 * Chat streaming (issue 4): the gateway's `POST /api/v2/chat/stream` against the algorithm simulator read
 * directly and against a bare `Bun.serve` relay of the same protocol (bench/targets/bare-relay.ts), same run,
 * loopback. The simulator, the relay and the gateway each run in their own process; this process is the client.
 * The gateway and the relay are launched with the runtime settings of `npm start` (package.json); a second relay
 * on Bun's defaults shows what those are worth to a plain relay.
 *
 * Scenarios, each against the three targets in turn:
 * - paced: 500 concurrent streams, one line every 20 ms → time to first `generation_chunk`, zero lost or
 *   reordered events, target CPU µs per event, RSS growth per concurrent stream (VmRSS before vs peak);
 * - throughput: 200 concurrent streams × 200 unpaced chunks → generation_chunk events per second, CPU µs per event.
 *
 *   bun bench/chat.ts [--paced-streams 500] [--paced-chunks 50] [--delay-ms 20]
 *                     [--streams 200] [--chunks 200] [--rounds 3] [--warmup 5] [--warmup-max 60] [--no-embedded]
 *   BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… adds the gateway on Postgres + Redis
 *   BENCH_COMPARE_ROOT=<another checkout> adds that checkout's gateway, embedded and on Postgres + Redis (an A/B in one run);
 *   BENCH_COMPARE_DATABASE_URL gives it its own database (needed when the two differ in schema: one database has one)
 *
 * Both scenarios run `--rounds` times, the targets in rotating order; each target's median round is reported.
 *
 * Bun's fetch allows 256 requests in flight unless BUN_CONFIG_MAX_HTTP_REQUESTS is set before Bun starts, so
 * without it this script re-runs itself with BUN_CONFIG_MAX_HTTP_REQUESTS=4096 (the relay and the gateway get it too).
 * The gateway runs on its embedded defaults: PGlite in a temporary DATA_DIR and the in-memory store.
 */
import { parseArgs } from 'node:util'
import { startScriptEnv } from '../test/helpers/runtime-env'
import { benchRun, cpuMicros, jitMicros, jsThreadMicros, machine, percentile, procTimes, RAISED_QUOTAS, rssKb, serverCpu, cpuSince, settle, spawnTarget, startGateway, startSimulatorProcess, type Target } from './lib'

const MAX_HTTP_REQUESTS = '4096'
if (process.env.BUN_CONFIG_MAX_HTTP_REQUESTS !== MAX_HTTP_REQUESTS) {
  const child = Bun.spawn([process.execPath, ...process.argv.slice(1)], {
    env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: MAX_HTTP_REQUESTS },
    stdio: ['inherit', 'inherit', 'inherit'],
  })
  process.exit(await child.exited)
}

const { values: args } = parseArgs({
  options: {
    'paced-streams': { type: 'string', default: '500' },
    'paced-chunks': { type: 'string', default: '50' },
    'delay-ms': { type: 'string', default: '20' },
    streams: { type: 'string', default: '200' },
    chunks: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '5' },
    /** full-size warm-up runs per target at most: past --warmup they go on until its JIT threads are quiet */
    'warmup-max': { type: 'string', default: '60' },
    'no-embedded': { type: 'boolean', default: false },
    /** relay variants to add (bench/targets/relay-variants.ts), e.g. `pool,feed,pool+feed+elysia` */
    variants: { type: 'string', default: '' },
    /** the chat service with some of its dependencies (bench/targets/gateway-parts.ts), on Postgres + Redis, e.g. `none,db,store,db+store+metrics+auth` */
    'gateway-parts': { type: 'string', default: '' },
    /** which scenarios run */
    scenarios: { type: 'string', default: 'paced,throughput' },
  },
})
const PACED_STREAMS = Number(args['paced-streams'])
const PACED_CHUNKS = Number(args['paced-chunks'])
const DELAY_MS = Number(args['delay-ms'])
const STREAMS = Number(args.streams)
const CHUNKS = Number(args.chunks)
const ROUNDS = Number(args.rounds)
const VARIANTS = args.variants.split(',').filter(Boolean)
const GATEWAY_PARTS = args['gateway-parts'].split(',').filter(Boolean)
const SCENARIOS = new Set(args.scenarios.split(','))
/** full-size unpaced runs per target before measuring */
const WARMUP = Number(args.warmup)
const WARMUP_MAX = Math.max(WARMUP, Number(args['warmup-max']))
/** a full-size run during which the target's JIT threads work less than this is in steady state */
const JIT_QUIET_US = 2_000
const STREAM_TIMEOUT_MS = 60_000
/** lines of a seed /query stream besides its chunks: retrieval_start/progress/result, generation_start/done */
const EXTRA_LINES = 5

const scope = benchRun('vh-bench-chat-')
const { stopAll } = scope
const commonEnv = { BUN_CONFIG_MAX_HTTP_REQUESTS: MAX_HTTP_REQUESTS }
/** what `npm start` sets before Bun starts (the fetch limit, how long freed memory is kept for reuse) */
const runtimeEnv = { ...startScriptEnv(), ...commonEnv }
const RELAY = 'bare Bun.serve relay'
const DEFAULTS_RELAY = 'bare Bun.serve relay (Bun defaults)'

// ---- targets

interface Subject {
  name: string
  /** whose CPU and RSS are read: the simulator for the direct row */
  pid: number
  kind: 'ndjson' | 'sse'
  url: string
  headers: Record<string, string>
  body(message: string, i: number): string
}

let subjects: Subject[] = []
let simulator: Target
try {
  simulator = await startSimulatorProcess()
  scope.keep(simulator)
  // the yardstick runs with the runtime settings the gateway is launched with (npm start); a second copy on Bun's
  // defaults shows what those settings are worth to a plain relay
  const relays = [
    scope.keep(await spawnTarget(RELAY, 'bench/targets/bare-relay.ts', { ...runtimeEnv, ALGO_SERVICE_URL: simulator.url })),
    scope.keep(await spawnTarget(DEFAULTS_RELAY, 'bench/targets/bare-relay.ts', { ...commonEnv, ALGO_SERVICE_URL: simulator.url })),
  ]
  const variants: Target[] = []
  for (const v of VARIANTS) {
    variants.push(scope.keep(await spawnTarget(`relay + ${v}`, 'bench/targets/relay-variants.ts', { ...runtimeEnv, ALGO_SERVICE_URL: simulator.url, RELAY_VARIANT: v })))
  }
  const gateways: Array<{ target: Target; token: string }> = []
  // kept as each starts: one that fails to start stops those before it
  const started = (g: { target: Target; token: string }) => (scope.keep(g.target), g)
  if (!args['no-embedded']) gateways.push(started(await startGateway('gateway', { algoUrl: simulator.url, dataDir: scope.dataDir, quotas: RAISED_QUOTAS, env: commonEnv })))
  const compareRoot = process.env.BENCH_COMPARE_ROOT
  if (compareRoot && !args['no-embedded']) {
    const dataDir = `${scope.dataDir}/compare`
    gateways.push(started(await startGateway(`gateway from ${compareRoot}`, { algoUrl: simulator.url, dataDir, quotas: RAISED_QUOTAS, env: commonEnv, root: compareRoot })))
  }
  // The production shape, when the servers are here: Postgres and Redis instead of the embedded defaults.
  const deployed = { algoUrl: simulator.url, dataDir: scope.dataDir, quotas: RAISED_QUOTAS, env: commonEnv, databaseUrl: process.env.BENCH_DATABASE_URL, redisUrl: process.env.BENCH_REDIS_URL }
  if (deployed.databaseUrl && deployed.redisUrl) {
    gateways.push(started(await startGateway('gateway (Postgres + Redis)', deployed)))
    if (compareRoot) {
      const databaseUrl = process.env.BENCH_COMPARE_DATABASE_URL ?? deployed.databaseUrl
      gateways.push(started(await startGateway(`gateway (Postgres + Redis) from ${compareRoot}`, { ...deployed, databaseUrl, root: compareRoot })))
    }
    for (const p of GATEWAY_PARTS) {
      gateways.push(started(await startGateway(`gateway parts: ${p}`, { ...deployed, script: 'bench/targets/gateway-parts.ts', env: { ...commonEnv, GATEWAY_PARTS: p } })))
    }
  }

  const json = { 'content-type': 'application/json' }
  subjects = [
    {
      name: 'simulator direct',
      pid: simulator.pid,
      kind: 'ndjson',
      url: `${simulator.url}/query`,
      headers: json,
      body: (message, i) => JSON.stringify({ messages: [{ role: 'user', content: message }], request_id: `bench_${i}` }),
    },
    ...[...relays, ...variants].map((target): Subject => ({
      name: target.name,
      pid: target.pid,
      kind: 'sse',
      url: `${target.url}/api/v2/chat/stream`,
      headers: json,
      body: (message) => JSON.stringify({ message }),
    })),
    ...gateways.map(({ target, token }): Subject => ({
      name: target.name,
      pid: target.pid,
      kind: 'sse',
      url: `${target.url}/api/v2/chat/stream`,
      headers: { ...json, authorization: `Bearer ${token}` },
      body: (message) => JSON.stringify({ message }),
    })),
  ]
} catch (err) {
  await stopAll()
  throw err
}

// ---- one stream, read and checked

interface StreamResult {
  /** ms from the request to the first generation_chunk; NaN if none */
  ttfcMs: number
  chunks: number
  events: number
  lost: number
  reordered: number
  /** body reads the client made, and the bytes it read */
  reads: number
  bytes: number
  error?: string
}

function intAfter(text: string, key: string): number {
  const at = text.indexOf(key)
  return at === -1 ? Number.NaN : Number.parseInt(text.slice(at + key.length, at + key.length + 12), 10)
}

/**
 * Reads one stream to its end and checks it: SSE ids 0, 1, 2…; line_number increasing; chunk `index` 0, 1, 2…;
 * stream_start first and stream_end last; the expected count of chunks and events. Parsing stays minimal
 * (no JSON.parse) so that the client spends little of the shared CPU.
 */
async function readOne(s: Subject, message: string, i: number, chunks: number): Promise<StreamResult> {
  const expectedEvents = s.kind === 'sse' ? chunks + EXTRA_LINES + 2 : chunks + EXTRA_LINES
  const r: StreamResult = { ttfcMs: Number.NaN, chunks: 0, events: 0, lost: 0, reordered: 0, reads: 0, bytes: 0 }
  const t0 = performance.now()
  let nextId = 0
  let lastLine = 0
  let nextIndex = 0
  let firstEvent = ''
  let lastEvent = ''
  const onChunk = (text: string) => {
    if (r.chunks === 0) r.ttfcMs = performance.now() - t0
    if (intAfter(text, '"index":') !== nextIndex) r.reordered++
    nextIndex++
    r.chunks++
  }
  try {
    const res = await fetch(s.url, { method: 'POST', headers: s.headers, body: s.body(message, i), signal: AbortSignal.timeout(STREAM_TIMEOUT_MS) })
    if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`)
    const decoder = new TextDecoder()
    const sep = s.kind === 'sse' ? '\n\n' : '\n'
    let buf = ''
    for await (const bytes of res.body as AsyncIterable<Uint8Array>) {
      r.reads++
      r.bytes += bytes.length
      buf += decoder.decode(bytes, { stream: true })
      let start = 0
      for (let end = buf.indexOf(sep); end !== -1; end = buf.indexOf(sep, start)) {
        const block = buf.slice(start, end)
        start = end + sep.length
        if (block === '') continue
        if (s.kind === 'ndjson') {
          r.events++
          if (block.startsWith('{"type":"generation_chunk"')) onChunk(block)
          continue
        }
        if (block.startsWith(':')) continue // `: ping`
        // id: <n>\nevent: <name>\ndata: <json>
        const nl1 = block.indexOf('\n')
        const nl2 = block.indexOf('\n', nl1 + 1)
        const id = Number(block.slice(4, nl1))
        const event = block.slice(nl1 + 8, nl2)
        const data = block.slice(nl2 + 7)
        r.events++
        if (id !== nextId) r.reordered++
        nextId = id + 1
        if (firstEvent === '') firstEvent = event
        lastEvent = event
        if (event === 'stream_start' || event === 'stream_end') continue
        const line = intAfter(data, '"line_number":')
        if (!(line > lastLine)) r.reordered++
        lastLine = line
        if (event === 'generation_chunk') onChunk(data)
      }
      buf = buf.slice(start)
    }
    if (s.kind === 'sse' && (firstEvent !== 'stream_start' || lastEvent !== 'stream_end')) {
      r.error = `stream went ${firstEvent} … ${lastEvent}`
    }
  } catch (err) {
    r.error = String(err)
  }
  r.lost = Math.max(0, expectedEvents - r.events) + Math.max(0, chunks - r.chunks)
  if (r.events > expectedEvents) r.error ??= `${r.events} events, expected ${expectedEvents}`
  return r
}

// ---- one scenario against one target

interface Run {
  streams: number
  chunks: number
  wallS: number
  ttfc: number[]
  events: number
  lost: number
  reordered: number
  reads: number
  bytes: number
  errors: string[]
  targetCpuUs: number
  /** of targetCpuUs, in the kernel (page faults, madvise, socket calls) */
  targetSystemUs: number
  targetMinorFaults: number
  /** of targetCpuUs, the JavaScript thread's (the event loop) */
  targetJsThreadUs: number
  simulatorCpuUs: number
  clientCpuUs: number
  /** every Postgres and Redis server process on the host */
  serverCpuUs: number
  rssBeforeKb: number
  rssPeakKb: number
}

async function run(s: Subject, streams: number, chunks: number, delayMs: number): Promise<Run> {
  await settle([...new Set([simulator.pid, ...subjects.map((x) => x.pid)])])
  const message = `benchmark question [[sim chunks=${chunks}${delayMs > 0 ? ` delay_ms=${delayMs}` : ''}]]`
  const rssBeforeKb = await rssKb(s.pid)
  let rssPeakKb = rssBeforeKb
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      rssPeakKb = Math.max(rssPeakKb, await rssKb(s.pid))
      await Bun.sleep(10)
    }
  })()
  const [cpu0, js0, sim0, servers0] = await Promise.all([procTimes(s.pid), jsThreadMicros(s.pid), cpuMicros(simulator.pid), serverCpu()])
  const client0 = process.cpuUsage()
  const t0 = performance.now()
  const results = await Promise.all(Array.from({ length: streams }, (_, i) => readOne(s, message, i, chunks)))
  const wallS = (performance.now() - t0) / 1000
  const client = process.cpuUsage(client0)
  const [cpu1, js1, sim1, servers1] = await Promise.all([procTimes(s.pid), jsThreadMicros(s.pid), cpuMicros(simulator.pid), serverCpu()])
  sampling = false
  await sampler
  rssPeakKb = Math.max(rssPeakKb, await rssKb(s.pid))
  return {
    streams,
    chunks: results.reduce((n, r) => n + r.chunks, 0),
    wallS,
    ttfc: results.map((r) => r.ttfcMs).filter((x) => Number.isFinite(x)),
    events: results.reduce((n, r) => n + r.events, 0),
    lost: results.reduce((n, r) => n + r.lost, 0),
    reordered: results.reduce((n, r) => n + r.reordered, 0),
    reads: results.reduce((n, r) => n + r.reads, 0),
    bytes: results.reduce((n, r) => n + r.bytes, 0),
    errors: results.flatMap((r) => (r.error ? [r.error] : [])),
    targetCpuUs: cpu1.userUs + cpu1.systemUs - cpu0.userUs - cpu0.systemUs,
    targetSystemUs: cpu1.systemUs - cpu0.systemUs,
    targetMinorFaults: cpu1.minorFaults - cpu0.minorFaults,
    targetJsThreadUs: js1 - js0,
    simulatorCpuUs: sim1 - sim0,
    clientCpuUs: client.user + client.system,
    serverCpuUs: cpuSince(servers0, servers1),
    rssBeforeKb,
    rssPeakKb,
  }
}

// ---- the run

const median = (xs: number[]) => percentile(xs, 0.5)
const rotate = <T>(xs: T[], by: number) => [...xs.slice(by % xs.length), ...xs.slice(0, by % xs.length)]

const paced = new Map<string, Run[]>()
const throughput = new Map<string, Run[]>()
const add = (runs: Map<string, Run[]>, name: string, r: Run) => runs.set(name, [...(runs.get(name) ?? []), r])
const started = performance.now()
/** per target: how long its warm-up took */
const warmups = new Map<string, string>()
try {
  // Warm-up: connection pools, the gateway's token and tenant caches and its database, then the JIT — a
  // server's steady state, not its first seconds. JSC compiles a function's top tier only after thousands of
  // calls, and a per-stream function is called once a stream: after 5 bursts the gateway's JIT threads still
  // took ~16 ms of each measured one, so every target is warmed until two bursts in a row leave its JIT threads
  // quiet (one alone can fall between two compilations).
  for (const s of subjects) {
    let k = 0
    let jitUs = 0
    let quiet = 0
    for (; k < 3 + WARMUP_MAX; k++) {
      const jit0 = await jitMicros(s.pid)
      const w = k < 3 ? await run(s, 50, 20, 0) : await run(s, STREAMS, CHUNKS, 0)
      if (w.errors.length) throw new Error(`${s.name} warm-up failed: ${w.errors[0]}`)
      jitUs = cpuSince(jit0, await jitMicros(s.pid))
      quiet = jitUs < JIT_QUIET_US ? quiet + 1 : 0
      if (k + 1 >= 3 + WARMUP && quiet >= 2) break
    }
    warmups.set(s.name, `${Math.min(k + 1, 3 + WARMUP_MAX) - 3} bursts (JIT ${(jitUs / 1000).toFixed(1)} ms in the last)`)
  }
  // Paced first, so that the RSS baseline is not inflated by the heap the unpaced bursts leave behind.
  for (let round = 0; round < (SCENARIOS.has('paced') ? ROUNDS : 0); round++) {
    for (const s of rotate(subjects, round)) add(paced, s.name, await run(s, PACED_STREAMS, PACED_CHUNKS, DELAY_MS))
  }
  for (let round = 0; round < (SCENARIOS.has('throughput') ? ROUNDS : 0); round++) {
    for (const s of rotate(subjects, round)) add(throughput, s.name, await run(s, STREAMS, CHUNKS, 0))
  }
} finally {
  await stopAll()
}

const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—')
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '—')
const cpuPerEvent = (r: Run) => r.targetCpuUs / Math.max(1, r.events)

interface Row {
  target: string
  scenario: string
  r: Run
  chunksPerS: number
}
const rows: Row[] = []
for (const s of paced.size > 0 ? subjects : []) {
  // the median round by time-to-first-chunk p99
  const byTail = [...paced.get(s.name)!].sort((a, b) => percentile(a.ttfc, 0.99) - percentile(b.ttfc, 0.99))
  const p = byTail[Math.floor(byTail.length / 2)]!
  rows.push({ target: s.name, scenario: `paced ${PACED_CHUNKS} chunks, ${DELAY_MS} ms/line`, r: p, chunksPerS: p.chunks / p.wallS })
}
for (const s of throughput.size > 0 ? subjects : []) {
  const runs = throughput.get(s.name)!
  // the median round by chunks/s
  const byRate = [...runs].sort((a, b) => a.chunks / a.wallS - b.chunks / b.wallS)
  const r = byRate[Math.floor(byRate.length / 2)]!
  rows.push({ target: s.name, scenario: `throughput ${CHUNKS} chunks unpaced`, r, chunksPerS: r.chunks / r.wallS })
}

console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}`)
console.log(
  `Loopback; simulator, bare relay and gateway in their own processes; the client is this process. ` +
    `Each run starts once every process is idle. Median of ${ROUNDS} rounds in rotating order (paced: by TTFC p99; ` +
    'throughput: by chunks/s). "gateway" runs on its embedded defaults (PGlite on disk in a temp DATA_DIR, in-memory store). ' +
    `Run took ${((performance.now() - started) / 1000).toFixed(0)} s.\n`,
)
console.log(`Warm-up, full-size bursts until two in a row leave the target's JIT threads under ${JIT_QUIET_US / 1000} ms each: ${[...warmups].map(([n, w]) => `${n} ${w}`).join('; ')}.\n`)
console.log('| target | scenario | streams | chunks/s | TTFC p50 ms | TTFC p99 ms | lost/reordered | CPU µs/event | RSS growth KB/stream |')
console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|')
for (const { target, scenario, r, chunksPerS } of rows) {
  const direct = target === 'simulator direct'
  const rss = !direct && scenario.startsWith('paced') ? f1((r.rssPeakKb - r.rssBeforeKb) / r.streams) : '—'
  console.log(
    `| ${target} | ${scenario} | ${r.streams} | ${f0(chunksPerS)} | ${f1(median(r.ttfc))} | ${f1(percentile(r.ttfc, 0.99))} | ` +
      `${r.lost}/${r.reordered} | ${f1(cpuPerEvent(r))}${direct ? ' (sim)' : ''} | ${rss} |`,
  )
}
const rowOf = (target: string, kind: string) => rows.find((r) => r.target === target && r.scenario.startsWith(kind))
const growth = (r: Run) => (r.rssPeakKb - r.rssBeforeKb) / r.streams
/** the CPU every process of the run used: target, simulator, client, Postgres and Redis */
function hostCpuUs(r: Run, target: string): number {
  return (target === 'simulator direct' ? 0 : r.targetCpuUs) + r.simulatorCpuUs + r.clientCpuUs + r.serverCpuUs
}
console.log('\nAgainst the bare relay, same run (issue 4 targets in brackets; in parentheses the ratio taken round by round, median and range):\n')
const mark = (ok: boolean) => (ok ? 'met' : 'NOT met')
/** the ratio of a target's round to the yardstick's round of the same index (the rounds interleave in time) */
function perRound(runs: Map<string, Run[]>, name: string, yardstick: string, metric: (r: Run) => number, show: (x: number) => string): string {
  const mine = runs.get(name) ?? []
  const relays = runs.get(yardstick) ?? []
  const ratios = mine.map((r, i) => metric(r) / metric(relays[i]!)).filter(Number.isFinite).sort((a, b) => a - b)
  if (ratios.length < 2) return ''
  return ` (${show(median(ratios))}, ${show(ratios[0]!)}–${show(ratios.at(-1)!)})`
}
const pct = (x: number) => `${(x * 100).toFixed(0)}%`
const times = (x: number) => `×${x.toFixed(2)}`
/** the issue's targets for one target against one yardstick */
function verdicts(name: string, yardstick: string): string[] {
  const said: string[] = []
  const [tpRow, tpRelay] = [rowOf(name, 'throughput'), rowOf(yardstick, 'throughput')]
  if (tpRow && tpRelay) {
    const tp = tpRow.chunksPerS / tpRelay.chunksPerS
    said.push(`throughput ${pct(tp)}${perRound(throughput, name, yardstick, (r) => r.chunks / r.wallS, pct)} [≥ 80%: ${mark(tp >= 0.8)}]`)
  }
  const [pRow, pRelay] = [rowOf(name, 'paced'), rowOf(yardstick, 'paced')]
  if (pRow && pRelay) {
    const ttfc = percentile(pRow.r.ttfc, 0.99) / percentile(pRelay.r.ttfc, 0.99)
    const rss = growth(pRow.r) / growth(pRelay.r)
    const lost = pRow.r.lost + pRow.r.reordered
    said.push(
      `paced TTFC p99 ${times(ttfc)}${perRound(paced, name, yardstick, (r) => percentile(r.ttfc, 0.99), times)} [≤ 1.25: ${mark(ttfc <= 1.25)}]`,
      `RSS growth per stream ${times(rss)}${perRound(paced, name, yardstick, growth, times)} [≤ 1.25: ${mark(rss <= 1.25)}]`,
      `lost/reordered ${lost} [0: ${mark(lost === 0)}]`,
    )
  }
  return said
}
for (const s of subjects.filter((x) => x.name.startsWith('gateway') || x.name.startsWith('relay +'))) {
  console.log(`- ${s.name}: ${verdicts(s.name, RELAY).join('; ')}`)
  console.log(`  - against the relay on Bun's defaults: ${verdicts(s.name, DEFAULTS_RELAY).join('; ')}`)
  // With the cores as busy in both runs, a burst lasts as long as the host's CPU work takes: the ratio asked for
  // bounds what the gateway process may use once the other processes of its run (its Postgres and Redis too) are
  // counted, which says whether the target is within reach of any gateway doing more work than the relay.
  const [tpRow, tpRelay] = [rowOf(s.name, 'throughput'), rowOf(RELAY, 'throughput')]
  if (tpRow && tpRelay) {
    const relayHost = hostCpuUs(tpRelay.r, RELAY)
    const others = hostCpuUs(tpRow.r, s.name) - tpRow.r.targetCpuUs
    const budget = relayHost / 0.8 - others
    console.log(
      `  - CPU per burst: the relay's run ${(relayHost / 1e6).toFixed(3)} s (the relay ${(tpRelay.r.targetCpuUs / 1e6).toFixed(3)} s, ` +
        `${f1(relayHost / 1e6 / tpRelay.r.wallS)} cores busy); this run's simulator, client, Postgres and Redis ${(others / 1e6).toFixed(3)} s ` +
        `(${f1(hostCpuUs(tpRow.r, s.name) / 1e6 / tpRow.r.wallS)} cores busy). 80% of the relay's chunks/s on this host leaves the gateway process ` +
        `${(budget / 1e6).toFixed(3)} s per burst — ${budget < tpRelay.r.targetCpuUs ? 'less than' : 'more than'} the relay's own; it used ${(tpRow.r.targetCpuUs / 1e6).toFixed(3)} s`,
    )
  }
}
console.log('\nWho used the CPU (2 cores shared by all processes):\n')
console.log('| target | scenario | wall s | events | target CPU s | of it system s | of it the JS thread s | target minor faults | simulator CPU s | client CPU s | Postgres + Redis CPU s | cores busy | RSS before → peak MB | client reads/stream | bytes/event | errors |')
console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
for (const { target, scenario, r } of rows) {
  const own =
    target === 'simulator direct'
      ? '(= simulator) | — | — | —'
      : `${(r.targetCpuUs / 1e6).toFixed(3)} | ${(r.targetSystemUs / 1e6).toFixed(3)} | ${(r.targetJsThreadUs / 1e6).toFixed(3)} | ${f0(r.targetMinorFaults)}`
  console.log(
    `| ${target} | ${scenario} | ${r.wallS.toFixed(2)} | ${f0(r.events)} | ${own} | ${(r.simulatorCpuUs / 1e6).toFixed(3)} | ` +
      `${(r.clientCpuUs / 1e6).toFixed(3)} | ${(r.serverCpuUs / 1e6).toFixed(3)} | ${f1(hostCpuUs(r, target) / 1e6 / r.wallS)} | ${(r.rssBeforeKb / 1024).toFixed(0)} → ${(r.rssPeakKb / 1024).toFixed(0)} | ${f1(r.reads / r.streams)} | ${f0(r.bytes / Math.max(1, r.events))} | ${r.errors.length} |`,
  )
}
const args0 =
  `--paced-streams ${PACED_STREAMS} --paced-chunks ${PACED_CHUNKS} --delay-ms ${DELAY_MS} --streams ${STREAMS} --chunks ${CHUNKS} --rounds ${ROUNDS} --warmup ${WARMUP} --warmup-max ${WARMUP_MAX}` +
  (args['no-embedded'] ? ' --no-embedded' : '') +
  (VARIANTS.length ? ` --variants ${VARIANTS.join(',')}` : '') +
  (GATEWAY_PARTS.length ? ` --gateway-parts ${GATEWAY_PARTS.join(',')}` : '') +
  (args.scenarios !== 'paced,throughput' ? ` --scenarios ${args.scenarios}` : '')
const envPrefix =
  (process.env.BENCH_DATABASE_URL && process.env.BENCH_REDIS_URL
    ? `BENCH_DATABASE_URL=${process.env.BENCH_DATABASE_URL} BENCH_REDIS_URL=${process.env.BENCH_REDIS_URL} `
    : '') + (process.env.BENCH_COMPARE_ROOT ? `BENCH_COMPARE_ROOT=${process.env.BENCH_COMPARE_ROOT} ` : '')
console.log(`\nCommand: \`${envPrefix}bun bench/chat.ts ${args0}\` (re-runs itself with BUN_CONFIG_MAX_HTTP_REQUESTS=4096)`)
console.log(
  'chunks/s: generation_chunk events received / wall time. TTFC: request sent → first generation_chunk received ' +
    `(the simulator paces ${EXTRA_LINES - 1} lines before it, so ${(EXTRA_LINES - 1) * DELAY_MS} ms is the floor when paced). ` +
    'CPU µs/event: utime+stime of the target process / events it sent (simulator direct: the simulator per NDJSON line). ' +
    'The JS thread: the event loop\'s own CPU (the rest is fetch\'s HTTP thread, the collector, the JIT). ' +
    'RSS growth: (peak VmRSS during the paced streams − VmRSS before) / streams.',
)
const errors = rows.flatMap((r) => r.r.errors.map((e) => `${r.target} ${r.scenario}: ${e}`))
if (errors.length) {
  console.log(`\n${errors.length} stream errors, first ones:`)
  for (const e of [...new Set(errors)].slice(0, 5)) console.log(`- ${e}`)
  process.exitCode = 1
}
