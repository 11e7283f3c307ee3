/**
 * How fast the algorithm simulator streams `/query` NDJSON, so we know it is never the bottleneck of a gateway
 * benchmark. The simulator runs in its own process (as `bun run simulator` would); this process is the client,
 * reading unpaced streams with fetch over loopback. Reports lines/s (wall clock), the simulator process's CPU
 * seconds from /proc/<pid>/stat, and lines per simulator-CPU-second (the "one core" figure).
 *
 *   bun bench/simulator.ts [--streams 50] [--chunks 2000] [--rounds 20]
 */
import { parseArgs } from 'node:util'

const { values: args } = parseArgs({
  options: {
    streams: { type: 'string', default: '50' },
    chunks: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '20' },
  },
})
const STREAMS = Number(args.streams)
const CHUNKS = Number(args.chunks)
const ROUNDS = Number(args.rounds)
const SHORT_REQUESTS = 5000 // second scenario: many default-sized answers (13 lines each)
// Third scenario: paced streams, one write per line (the worst case per line). 250 stays under Bun's default
// 256 fetches in flight per process, so the client does not queue.
const PACED_STREAMS = 250
const PACED_CHUNKS = 100
const PACED_DELAY_MS = 10
const DEADLINE = Date.now() + 55_000 // the whole run stays under a minute

const CLK_TCK = Number(Bun.spawnSync(['getconf', 'CLK_TCK']).stdout.toString().trim()) || 100

/** utime + stime of a process, in seconds. Fields after the ")" of the command name: state is 3rd, utime 14th. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Bun.file(`/proc/${pid}/stat`).text()
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

async function startSimulatorProcess() {
  const proc = Bun.spawn(['bun', 'src/simulator/main.ts'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
    stdout: 'pipe',
    stderr: 'inherit',
  })
  // The first log line announces the URL (PORT=0 lets the OS pick a free port).
  const reader = proc.stdout.getReader()
  let out = ''
  while (!out.includes('\n')) {
    const { done, value } = await reader.read()
    if (done) throw new Error('simulator exited before announcing its URL')
    out += new TextDecoder().decode(value)
  }
  reader.releaseLock()
  void proc.stdout.pipeTo(new WritableStream()) // keep draining its logs
  const url = (JSON.parse(out.slice(0, out.indexOf('\n'))) as { url: string }).url
  return { proc, url }
}

/** Reads one unpaced stream to the end; returns its line count. */
async function readStream(url: string, content: string): Promise<number> {
  const res = await fetch(`${url}/query`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content }], request_id: 'bench' }),
  })
  if (!res.ok) throw new Error(`simulator answered ${res.status}`)
  let lines = 0
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++
  }
  return lines
}

async function longStreamsRound(url: string): Promise<number> {
  const content = `benchmark question [[sim chunks=${CHUNKS}]]`
  const counts = await Promise.all(Array.from({ length: STREAMS }, () => readStream(url, content)))
  for (const n of counts) if (n !== CHUNKS + 5) throw new Error(`a stream carried ${n} lines, expected ${CHUNKS + 5}`)
  return counts.reduce((a, b) => a + b, 0)
}

async function shortAnswers(url: string): Promise<number> {
  let next = 0
  let lines = 0
  async function worker() {
    while (next < SHORT_REQUESTS && Date.now() < DEADLINE) {
      next++
      const n = await readStream(url, 'short question') // not `lines += await …`: that reads `lines` too early
      lines += n
    }
  }
  await Promise.all(Array.from({ length: STREAMS }, worker))
  return lines
}

async function pacedStreams(url: string): Promise<number> {
  const content = `paced question [[sim chunks=${PACED_CHUNKS} delay_ms=${PACED_DELAY_MS}]]`
  const counts = await Promise.all(Array.from({ length: PACED_STREAMS }, () => readStream(url, content)))
  return counts.reduce((a, b) => a + b, 0)
}

interface Row {
  scenario: string
  lines: number
  requests: number
  wall: number
  simCpu: number
  clientCpu: number
}

async function measure(pid: number, scenario: string, requests: number, run: () => Promise<number>): Promise<Row> {
  const cpu0 = await cpuSeconds(pid)
  const client0 = process.cpuUsage()
  const t0 = performance.now()
  const lines = await run()
  const wall = (performance.now() - t0) / 1000
  const client = process.cpuUsage(client0)
  return {
    scenario,
    lines,
    requests,
    wall,
    simCpu: (await cpuSeconds(pid)) - cpu0,
    clientCpu: (client.user + client.system) / 1e6,
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US')

const { proc, url } = await startSimulatorProcess()
try {
  await longStreamsRound(url) // warm-up: JIT and connection pool
  let rounds = 0
  const long = await measure(proc.pid, `${STREAMS} concurrent × ${CHUNKS} chunks`, 0, async () => {
    let lines = 0
    for (; rounds < ROUNDS && Date.now() < DEADLINE; rounds++) lines += await longStreamsRound(url)
    return lines
  })
  long.requests = rounds * STREAMS
  long.scenario += ` × ${rounds} rounds`
  const short = await measure(proc.pid, `${SHORT_REQUESTS} default answers, ${STREAMS} at a time`, SHORT_REQUESTS, () =>
    shortAnswers(url),
  )
  const paced = await measure(
    proc.pid,
    `${PACED_STREAMS} concurrent × ${PACED_CHUNKS} chunks, delay_ms=${PACED_DELAY_MS}`,
    PACED_STREAMS,
    () => pacedStreams(url),
  )

  console.log(
    `\n## Algorithm simulator, unpaced /query NDJSON (Bun ${Bun.version}, ${navigator.hardwareConcurrency} CPUs)\n`,
  )
  console.log(
    '| scenario | requests | lines | wall s | lines/s | simulator CPU s | lines per simulator CPU s | client CPU s |',
  )
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|')
  for (const r of [long, short, paced]) {
    console.log(
      `| ${r.scenario} | ${fmt(r.requests)} | ${fmt(r.lines)} | ${r.wall.toFixed(2)} | ${fmt(r.lines / r.wall)} | ` +
        `${r.simCpu.toFixed(2)} | ${fmt(r.lines / Math.max(r.simCpu, 1 / CLK_TCK))} | ${r.clientCpu.toFixed(2)} |`,
    )
  }
  console.log(`\nCommand: \`bun bench/simulator.ts --streams ${STREAMS} --chunks ${CHUNKS} --rounds ${ROUNDS}\``)
  console.log(
    'Simulator and client are separate processes on loopback. Target: ≥ 20,000 lines per simulator CPU second ' +
      '(unpaced). The paced row is bounded by its delays, not by CPU.',
  )
} finally {
  proc.kill('SIGTERM')
  await proc.exited
}
