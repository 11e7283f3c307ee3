/**
 * Voice sessions (issue 5): the gateway's `/api/v2/voice/stream` against the simulator's `/voice/stream` reached
 * directly and against a bare `Bun.serve` WebSocket relay (bench/targets/bare-voice-relay.ts), same run, loopback.
 * The simulator, the relay and the gateway each run in their own process; this process is the client.
 *
 * Every session first sends `{"type":"config","simulate":{"ack":true,"partial_every":1000000}}`: the simulator
 * then answers each `audio_chunk` with `audio_ack {sequence}` and sends no `asr_partial` (the gateway forwards
 * `simulate` upstream with the config, the relay forwards text frames as they are). Then every session sends
 * one 640-byte frame (20 ms of 16 kHz PCM16) every 20 ms: binary to the relay and the gateway, which turn it
 * into the seed's `audio_chunk` JSON; the same JSON built by the client for the simulator reached directly.
 * Sessions are spread over PHASES send slots per 20 ms, one timer for all of them.
 *
 * Scenarios, each against the three targets in turn:
 * - latency: --sessions (100) for --seconds (30) → round trip per frame (send of frame n → its audio_ack n),
 *   p50/p99, dropped frames (never answered, or answered out of order), target CPU µs per frame;
 * - cpu: --cpu-sessions (500) for --cpu-seconds (10) → target CPU µs per frame, dropped frames;
 * - capacity: --idle-sessions (2000) held idle (each with its upstream socket) → target RSS per session.
 *
 *   [BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… (adds the gateway on Postgres + Redis)]
 *   bun bench/voice.ts [--seconds 30] [--sessions 100] [--cpu-sessions 500] [--cpu-seconds 10]
 *                      [--idle-sessions 2000] [--batch 100]
 *
 * The gateway runs on its embedded defaults (PGlite in a temporary DATA_DIR, in-memory store).
 */
import { parseArgs } from 'node:util'
import { startScriptEnv } from '../test/helpers/runtime-env'
import { benchRun, cpuMicros, machine, machineBusyMicros, percentile, rssKb, settle, spawnTarget, startGateway, startSimulatorProcess, type Target } from './lib'

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '30' },
    sessions: { type: 'string', default: '100' },
    'cpu-sessions': { type: 'string', default: '500' },
    'cpu-seconds': { type: 'string', default: '10' },
    'idle-sessions': { type: 'string', default: '2000' },
    batch: { type: 'string', default: '100' },
    /** capacity measured this many times per target, the last one reported (later rounds reuse grown heaps) */
    'capacity-rounds': { type: 'string', default: '1' },
    only: { type: 'string', default: 'latency,cpu,capacity' },
    /**
     * latency and cpu scenarios run this many times per target in rotating order; the round with the median
     * key figure (RTT p99, CPU µs/frame) is reported, so a burst of host load cannot land on one target alone
     */
    rounds: { type: 'string', default: '1' },
  },
})
const SECONDS = Number(args.seconds)
const SESSIONS = Number(args.sessions)
const CPU_SESSIONS = Number(args['cpu-sessions'])
const CPU_SECONDS = Number(args['cpu-seconds'])
const IDLE_SESSIONS = Number(args['idle-sessions'])
const BATCH = Number(args.batch)
const CAPACITY_ROUNDS = Number(args['capacity-rounds'])
const ONLY = new Set(args.only.split(','))
const ROUNDS = Math.max(1, Number(args.rounds))

const FRAME_MS = 20
const FRAME_BYTES = 640
const PHASES = 4
const OPEN_TIMEOUT_MS = 20_000
const DRAIN_TIMEOUT_MS = 5_000
const SIMULATE = JSON.stringify({ type: 'config', simulate: { ack: true, partial_every: 1_000_000 } })

const FRAME = new Uint8Array(FRAME_BYTES)
for (let i = 0; i < FRAME_BYTES; i++) FRAME[i] = (i * 37 + 11) & 0xff
const FRAME_B64 = Buffer.from(FRAME).toString('base64')

const scope = benchRun('vh-bench-voice-')
const { stopAll } = scope

// ---- targets

interface Subject {
  name: string
  /** whose CPU and RSS are read: the simulator for the direct row */
  pid: number
  kind: 'direct' | 'relay'
  url(i: number): string
  headers: Record<string, string>
  /** wait for session_initialized before the session counts as open */
  waitInit: boolean
}

let subjects: Subject[] = []
let simulator: Target
let runTag = 0
try {
  simulator = await startSimulatorProcess()
  scope.keep(simulator)
  const relay = await spawnTarget('bare voice relay', 'bench/targets/bare-voice-relay.ts', { ...startScriptEnv(), ALGO_SERVICE_URL: simulator.url }) // the gateway's runtime settings (npm start)
  scope.keep(relay)
  const quotas = {
    concurrent_voice_sessions: 0,
    concurrent_voice_sessions_per_user: 0,
    requests_per_minute_per_user: 100_000_000,
    requests_per_minute: 100_000_000,
  }
  const limitsOff = { VOICE_MAX_SESSIONS_PER_USER: '0', VOICE_MAX_SESSIONS_PER_TENANT: '0' }
  const { target: gateway, token } = await startGateway('gateway', { algoUrl: simulator.url, dataDir: scope.dataDir, quotas, env: limitsOff })
  scope.keep(gateway)
  const ws = (u: string) => u.replace(/^http/, 'ws')
  const gatewaySubject = (name: string, target: Target, bearer: string): Subject => ({
    name,
    pid: target.pid,
    kind: 'relay',
    url: () => `${ws(target.url)}/api/v2/voice/stream`,
    headers: { authorization: `Bearer ${bearer}` },
    waitInit: true,
  })
  subjects = [
    {
      name: 'simulator direct',
      pid: simulator.pid,
      kind: 'direct',
      url: (i) => `${ws(simulator.url)}/voice/stream?session_id=bench_${runTag}_${i}&conversation_id=conv_bench`,
      headers: {},
      waitInit: false,
    },
    { name: 'bare Bun.serve relay', pid: relay.pid, kind: 'relay', url: () => `${ws(relay.url)}/api/v2/voice/stream`, headers: {}, waitInit: true },
    gatewaySubject('gateway', gateway, token),
  ]
  // BENCH_DATABASE_URL + BENCH_REDIS_URL: also the gateway as deployed, on Postgres and Redis (a throwaway database)
  const databaseUrl = process.env.BENCH_DATABASE_URL
  const redisUrl = process.env.BENCH_REDIS_URL
  if (databaseUrl && redisUrl) {
    const { target: deployed, token: deployedToken } = await startGateway('gateway (Postgres + Redis)', {
      algoUrl: simulator.url,
      dataDir: scope.dataDir,
      quotas,
      env: limitsOff,
      databaseUrl,
      redisUrl,
    })
    scope.keep(deployed)
    subjects.push(gatewaySubject('gateway (Postgres + Redis)', deployed, deployedToken))
  }
} catch (err) {
  await stopAll()
  throw err
}

const allPids = () => [...new Set([simulator.pid, ...subjects.map((s) => s.pid)])]
const oursMicros = async () => (await Promise.all(allPids().map(cpuMicros))).reduce((a, b) => a + b, 0)

// ---- sessions

interface Session {
  ws: WebSocket
  /** the direct target: audio_chunk JSON up to `"sequence":` */
  prefix: string
  sent: number
  acked: number
  /** highest sequence answered so far; an answer not equal to it + 1 is out of order */
  lastAck: number
  outOfOrder: number
  sentAt: Float64Array
  closed: boolean
  error?: string
}

/** round trips of the current run, ms */
let rtts = new Float64Array(0)
let rttCount = 0

function openSession(s: Subject, i: number, capacity: number): Promise<Session> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(s.url(i), { headers: s.headers })
    ws.binaryType = 'arraybuffer'
    const sessionId = `bench_${runTag}_${i}`
    const session: Session = {
      ws,
      prefix: `{"type":"audio_chunk","session_id":"${sessionId}","conversation_id":"conv_bench","format":"pcm","sample_rate":16000,"channels":1,"sequence":`,
      sent: 0,
      acked: 0,
      lastAck: 0,
      outOfOrder: 0,
      sentAt: new Float64Array(capacity + 1),
      closed: false,
    }
    let ready = false
    const timer = setTimeout(() => {
      if (!ready) {
        ready = true
        ws.close()
        reject(new Error(`${s.name}: session ${i} not ready in ${OPEN_TIMEOUT_MS} ms`))
      }
    }, OPEN_TIMEOUT_MS)
    const becomeReady = () => {
      if (ready) return
      ready = true
      clearTimeout(timer)
      ws.send(SIMULATE)
      resolve(session)
    }
    ws.onopen = () => {
      if (!s.waitInit) becomeReady()
    }
    ws.onmessage = (e) => {
      const text = e.data as string
      if (typeof text !== 'string') return
      if (text.startsWith('{"type":"audio_ack"')) {
        const at = text.indexOf('"sequence":')
        const seq = Number.parseInt(text.slice(at + 11, at + 23), 10)
        const t = session.sentAt[seq]
        if (t !== undefined && t > 0 && rttCount < rtts.length) rtts[rttCount++] = performance.now() - t
        if (seq !== session.lastAck + 1) session.outOfOrder++
        if (seq > session.lastAck) session.lastAck = seq
        session.acked++
        return
      }
      if (text.startsWith('{"type":"session_initialized"')) return becomeReady()
      if (text.startsWith('{"type":"error"')) session.error ??= text.slice(0, 200)
    }
    ws.onclose = (e) => {
      session.closed = true
      if (!ready) {
        ready = true
        clearTimeout(timer)
        reject(new Error(`${s.name}: session ${i} closed before it was ready (${e.code} ${e.reason})`))
      }
    }
    ws.onerror = () => {}
  })
}

async function openSessions(s: Subject, count: number, capacity: number): Promise<Session[]> {
  runTag++
  const out: Session[] = []
  try {
    for (let b = 0; b < count; b += BATCH) {
      const batch = await Promise.all(Array.from({ length: Math.min(BATCH, count - b) }, (_, k) => openSession(s, b + k, capacity)))
      out.push(...batch)
    }
  } catch (err) {
    await closeSessions(out)
    throw err
  }
  return out
}

async function closeSessions(sessions: Session[]): Promise<void> {
  for (const x of sessions) {
    try {
      x.ws.close(1000)
    } catch {}
  }
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline && sessions.some((x) => !x.closed)) await Bun.sleep(50)
}

function sendFrame(s: Subject, x: Session): void {
  if (x.closed) return
  const seq = ++x.sent
  if (seq >= x.sentAt.length) return
  x.sentAt[seq] = performance.now()
  if (s.kind === 'direct') x.ws.send(`${x.prefix}${seq},"timestamp":${Date.now()},"audio_chunk":"${FRAME_B64}"}`)
  else x.ws.send(FRAME)
}

/** Sends one frame per session every FRAME_MS for `seconds`; sessions spread over PHASES slots; late slots catch up. */
function drive(s: Subject, sessions: Session[], seconds: number): Promise<{ maxLateMs: number }> {
  const start = performance.now() + 5
  const end = start + seconds * 1000
  const due = Array.from({ length: PHASES }, (_, g) => start + (g * FRAME_MS) / PHASES)
  let maxLateMs = 0
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now()
      let done = true
      for (let g = 0; g < PHASES; g++) {
        while (due[g]! <= now && due[g]! < end) {
          maxLateMs = Math.max(maxLateMs, now - due[g]!)
          for (let i = g; i < sessions.length; i += PHASES) sendFrame(s, sessions[i]!)
          due[g]! += FRAME_MS
        }
        if (due[g]! < end) done = false
      }
      if (done) {
        clearInterval(timer)
        resolve({ maxLateMs })
      }
    }, FRAME_MS / PHASES)
  })
}

// ---- one paced run against one target

interface Run {
  sessions: number
  seconds: number
  sent: number
  acked: number
  dropped: number
  outOfOrder: number
  rtt: Float64Array
  targetCpuUs: number
  simulatorCpuUs: number
  clientCpuUs: number
  /** machine busy time not spent by the client, the simulator, the relay or the gateway: foreign load */
  otherCpuUs: number
  maxLateMs: number
  wallS: number
  closedEarly: number
  errors: string[]
}

async function paced(s: Subject, sessions: number, seconds: number): Promise<Run> {
  const capacity = Math.ceil((seconds * 1000) / FRAME_MS) + 10
  const list = await openSessions(s, sessions, capacity)
  try {
    await settle(allPids())
    rtts = new Float64Array(sessions * capacity)
    rttCount = 0
    const [cpu0, sim0] = await Promise.all([cpuMicros(s.pid), cpuMicros(simulator.pid)])
    const ours0 = await oursMicros()
    const busy0 = await machineBusyMicros()
    const client0 = process.cpuUsage()
    const t0 = performance.now()
    const { maxLateMs } = await drive(s, list, seconds)
    const sentTotal = () => list.reduce((n, x) => n + Math.min(x.sent, capacity), 0)
    const ackedTotal = () => list.reduce((n, x) => n + x.acked, 0)
    const deadline = performance.now() + DRAIN_TIMEOUT_MS
    while (ackedTotal() < sentTotal() && performance.now() < deadline) await Bun.sleep(10)
    const wallS = (performance.now() - t0) / 1000
    const client = process.cpuUsage(client0)
    const [cpu1, sim1] = await Promise.all([cpuMicros(s.pid), cpuMicros(simulator.pid)])
    const busy1 = await machineBusyMicros()
    const ours1 = await oursMicros()
    const sent = sentTotal()
    const acked = ackedTotal()
    const outOfOrder = list.reduce((n, x) => n + x.outOfOrder, 0)
    return {
      sessions,
      seconds,
      sent,
      acked,
      dropped: sent - acked + outOfOrder,
      outOfOrder,
      rtt: rtts.slice(0, rttCount),
      targetCpuUs: cpu1 - cpu0,
      simulatorCpuUs: sim1 - sim0,
      clientCpuUs: client.user + client.system,
      otherCpuUs: Math.max(0, busy1 - busy0 - (ours1 - ours0) - (client.user + client.system)),
      maxLateMs,
      wallS,
      closedEarly: list.filter((x) => x.closed).length,
      errors: list.flatMap((x) => (x.error ? [x.error] : [])),
    }
  } finally {
    await closeSessions(list)
  }
}

// ---- capacity: idle sessions held

interface Capacity {
  sessions: number
  rssBeforeKb: number
  rssAfterKb: number
  simRssBeforeKb: number
  simRssAfterKb: number
  openS: number
}

async function capacity(s: Subject, count: number): Promise<Capacity> {
  await settle(allPids())
  const rssBeforeKb = await rssKb(s.pid)
  const simRssBeforeKb = await rssKb(simulator.pid)
  const t0 = performance.now()
  const list = await openSessions(s, count, 1)
  try {
    const openS = (performance.now() - t0) / 1000
    await settle(allPids())
    await Bun.sleep(1000)
    const rssAfterKb = await rssKb(s.pid)
    const simRssAfterKb = await rssKb(simulator.pid)
    if (list.some((x) => x.closed)) throw new Error(`${s.name}: ${list.filter((x) => x.closed).length} idle sessions closed early`)
    return { sessions: count, rssBeforeKb, rssAfterKb, simRssBeforeKb, simRssAfterKb, openS }
  } finally {
    await closeSessions(list)
  }
}

// ---- the run

/** ROUNDS rounds over every target, each round starting one target later; per target the median round by `key` */
async function rotating(into: Map<string, Run>, run: (s: Subject) => Promise<Run>, key: (r: Run) => number): Promise<void> {
  const all = new Map<string, Run[]>()
  for (let round = 0; round < ROUNDS; round++) {
    const k = round % subjects.length
    for (const s of [...subjects.slice(k), ...subjects.slice(0, k)]) all.set(s.name, [...(all.get(s.name) ?? []), await run(s)])
  }
  for (const s of subjects) {
    const sorted = [...all.get(s.name)!].sort((a, b) => key(a) - key(b))
    into.set(s.name, sorted[Math.floor((sorted.length - 1) / 2)]!)
  }
}

const latency = new Map<string, Run>()
const cpu = new Map<string, Run>()
const cap = new Map<string, Capacity>()
const started = performance.now()
const cpuPerFrame = (r: Run) => r.targetCpuUs / Math.max(1, r.acked)
try {
  // Warm-up: JIT, the gateway's token and tenant caches, its database.
  for (const s of subjects) {
    const w = await paced(s, 50, 3)
    if (w.errors.length || w.dropped) throw new Error(`${s.name} warm-up failed: dropped ${w.dropped}, ${w.errors[0] ?? ''}`)
  }
  // Capacity first, on the freshest heaps, so that the RSS baseline is not inflated by the paced runs' garbage.
  if (ONLY.has('capacity')) for (let k = 0; k < CAPACITY_ROUNDS; k++) for (const s of subjects) cap.set(s.name, await capacity(s, IDLE_SESSIONS))
  if (ONLY.has('latency')) await rotating(latency, (s) => paced(s, SESSIONS, SECONDS), (r) => percentile(r.rtt, 0.99))
  if (ONLY.has('cpu')) await rotating(cpu, (s) => paced(s, CPU_SESSIONS, CPU_SECONDS), (r) => cpuPerFrame(r))
} finally {
  await stopAll()
}

const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—')
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '—')
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '—')
const relayName = 'bare Bun.serve relay'
const mark = (ok: boolean) => (ok ? 'met' : 'NOT met')

console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}`)
console.log(
  'Loopback; simulator, bare relay and gateway in their own processes; the client is this process (one timer, ' +
    `${PHASES} send slots per ${FRAME_MS} ms). Each run starts once every process is idle. "gateway" runs on its embedded ` +
    `defaults (PGlite in a temp DATA_DIR, in-memory store). Run took ${((performance.now() - started) / 1000).toFixed(0)} s.` +
    (ROUNDS > 1 ? ` Latency and CPU rows: the median of ${ROUNDS} rounds per target, in rotating order.` : '') + '\n',
)
const runs: Array<[string, Map<string, Run>]> = [
  ['latency', latency],
  ['cpu', cpu],
]
if (latency.size || cpu.size) {
  console.log('| target | scenario | sessions | frames sent | RTT p50 ms | RTT p99 ms | RTT max ms | dropped (out of order) | target CPU µs/frame | sim CPU µs/frame | client CPU s | other procs CPU s | client max late ms |')
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const [scenario, m] of runs) {
    for (const [name, r] of m) {
      const direct = name === 'simulator direct'
      console.log(
        `| ${name} | ${r.sessions} × ${r.seconds} s | ${r.sessions} | ${f0(r.sent)} | ${f2(percentile(r.rtt, 0.5))} | ${f2(percentile(r.rtt, 0.99))} | ` +
          `${f1(percentile(r.rtt, 1))} | ${r.dropped} (${r.outOfOrder}) | ${f1(cpuPerFrame(r))}${direct ? ' (= sim)' : ''} | ${f1(r.simulatorCpuUs / Math.max(1, r.acked))} | ` +
          `${f2(r.clientCpuUs / 1e6)} | ${f2(r.otherCpuUs / 1e6)} | ${f1(r.maxLateMs)} |`,
      )
      void scenario
    }
  }
}
if (cap.size) {
  console.log('\n| target | idle sessions | open time s | target RSS before → after MB | KB per session | simulator KB per session |')
  console.log('|---|---:|---:|---:|---:|---:|')
  for (const [name, c] of cap) {
    console.log(
      `| ${name} | ${c.sessions} | ${f1(c.openS)} | ${f1(c.rssBeforeKb / 1024)} → ${f1(c.rssAfterKb / 1024)} | ${f1((c.rssAfterKb - c.rssBeforeKb) / c.sessions)} | ` +
        `${f1((c.simRssAfterKb - c.simRssBeforeKb) / c.sessions)} |`,
    )
  }
}
console.log('\nGateway against the bare relay, same run (issue 5 targets in brackets):\n')
for (const g of ['gateway', 'gateway (Postgres + Redis)']) {
  console.log(`${g}:`)
  if (latency.has(g) && latency.has(relayName)) {
    const r = latency.get(g)!
    const ratio = percentile(r.rtt, 0.99) / percentile(latency.get(relayName)!.rtt, 0.99)
    console.log(`- ${SESSIONS} sessions × ${SECONDS} s: RTT p99 ×${f2(ratio)} [≤ 1.25: ${mark(ratio <= 1.25)}]; dropped ${r.dropped} [0: ${mark(r.dropped === 0)}]`)
  }
  if (cpu.has(g) && cpu.has(relayName)) {
    const r = cpu.get(g)!
    const ratio = cpuPerFrame(r) / cpuPerFrame(cpu.get(relayName)!)
    console.log(`- ${CPU_SESSIONS} sessions × ${CPU_SECONDS} s: CPU µs/frame ×${f2(ratio)} [≤ 1.25: ${mark(ratio <= 1.25)}]; dropped ${r.dropped} [0: ${mark(r.dropped === 0)}]`)
  }
  if (cap.has(g)) {
    const c = cap.get(g)!
    const kb = (c.rssAfterKb - c.rssBeforeKb) / c.sessions
    const rel = cap.get(relayName)
    const relKb = rel ? (rel.rssAfterKb - rel.rssBeforeKb) / rel.sessions : Number.NaN
    console.log(`- ${IDLE_SESSIONS} idle sessions: RSS ${f1(kb)} KB/session [≤ 24 KB: ${mark(kb <= 24)}] (relay ${f1(relKb)} KB, ×${f2(kb / relKb)})`)
  }
}
const argv = `${ROUNDS !== 1 ? `--rounds ${ROUNDS} ` : ''}--seconds ${SECONDS} --sessions ${SESSIONS} --cpu-sessions ${CPU_SESSIONS} --cpu-seconds ${CPU_SECONDS} --idle-sessions ${IDLE_SESSIONS} --batch ${BATCH}${CAPACITY_ROUNDS !== 1 ? ` --capacity-rounds ${CAPACITY_ROUNDS}` : ''}`
console.log(`\nCommand: \`bun bench/voice.ts ${argv}${args.only !== 'latency,cpu,capacity' ? ` --only ${args.only}` : ''}\``)
console.log(
  'RTT: client sends frame n → receives the event carrying sequence n (audio_ack). Dropped: frames sent and never ' +
    `answered within ${DRAIN_TIMEOUT_MS / 1000} s of the end, plus answers out of order. CPU µs/frame: utime+stime of the target process over the run ` +
    '÷ frames answered (simulator direct: the simulator itself). KB per session: (VmRSS with the idle sessions open − before) ÷ sessions.',
)
const errors = [...latency, ...cpu].flatMap(([name, r]) => [
  ...r.errors.map((e) => `${name}: ${e}`),
  ...(r.closedEarly > 0 ? [`${name}: ${r.closedEarly} sessions closed during the run`] : []),
])
if (errors.length) {
  console.log(`\n${errors.length} errors, first ones:`)
  for (const e of [...new Set(errors)].slice(0, 5)) console.log(`- ${e}`)
  process.exitCode = 1
}
