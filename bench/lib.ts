/** Shared pieces of the benchmarks: spawning targets in their own processes and driving wrk. */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { startScriptEnv } from '../test/helpers/runtime-env'

export const ROOT = resolve(import.meta.dir, '..')

export async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const { port } = s
  s.stop(true)
  return port
}

/** SIGTERM, then SIGKILL if it has not exited within 5 s */
/**
 * `bun <script>`; with BENCH_CPU_PROF=<dir> every target (simulator included) writes a CPU profile there when it
 * stops, sampled every BENCH_CPU_PROF_INTERVAL_US (Bun's default: 1000)
 */
function bunArgv(script: string): string[] {
  const dir = process.env.BENCH_CPU_PROF
  const interval = process.env.BENCH_CPU_PROF_INTERVAL_US
  return [process.execPath, ...(dir ? ['--cpu-prof', '--cpu-prof-dir', dir, ...(interval ? [`--cpu-prof-interval=${interval}`] : [])] : []), script]
}

async function stopProcess(proc: ReturnType<typeof Bun.spawn>): Promise<void> {
  proc.kill('SIGTERM')
  await Promise.race([proc.exited, Bun.sleep(5000)])
  if (proc.exitCode === null) proc.kill('SIGKILL')
}

/** One benchmark run's temp data dir and processes: `keep` remembers a target, `stopAll` stops them (last first) and removes the dir. */
export function benchRun(prefix: string) {
  const dataDir = mkdtempSync(join(tmpdir(), prefix))
  const stops: Array<() => Promise<void>> = []
  return {
    dataDir,
    keep<T extends { stop(): Promise<void> }>(target: T): T {
      stops.push(() => target.stop())
      return target
    },
    async stopAll(): Promise<void> {
      for (const stop of stops.reverse()) await stop().catch(() => {})
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

export interface Target {
  readonly name: string
  readonly url: string
  readonly pid: number
  stop(): Promise<void>
}

/** Starts `bun <script>` with env and waits until `readyPath` answers. */
export async function spawnTarget(
  name: string,
  script: string,
  env: Record<string, string>,
  readyPath = '/health',
  root = ROOT,
): Promise<Target> {
  const port = await freePort()
  const proc = Bun.spawn(bunArgv(resolve(root, script)), {
    cwd: root,
    env: { ...process.env, ...env, PORT: String(port) },
    stdout: 'ignore',
    stderr: 'inherit',
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60_000
  for (;;) {
    try {
      if ((await fetch(url + readyPath)).ok) break
    } catch {}
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`${name} did not start`)
    await Bun.sleep(100)
  }
  return {
    name,
    url,
    pid: proc.pid,
    stop: () => stopProcess(proc),
  }
}

export interface WrkResult {
  requestsPerSec: number
  p50Ms: number
  p99Ms: number
  errors: number
}

/** wrk (Debian package `wrk`) with latency percentiles; loopback only, bounded by duration. */
export async function wrk(url: string, opts: { connections: number; seconds: number; threads?: number; headers?: Record<string, string> }): Promise<WrkResult> {
  if (!Bun.which('wrk')) throw new Error('wrk is not installed: apt-get install -y wrk')
  const args = ['wrk', '--latency', `-t${opts.threads ?? 1}`, `-c${opts.connections}`, `-d${opts.seconds}s`]
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push('-H', `${k}: ${v}`)
  args.push(url)
  const proc = Bun.spawn(args, { stdout: 'pipe', stderr: 'pipe' })
  const out = await new Response(proc.stdout).text()
  await proc.exited
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1])
  const pct = (p: string) => toMs(new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out))
  const errorsMatch = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out)
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const errors =
    Number(errorsMatch?.[1] ?? 0) + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0)
  if (!Number.isFinite(rps)) throw new Error(`could not read wrk output:\n${out}`)
  return { requestsPerSec: rps, p50Ms: pct('50'), p99Ms: pct('99'), errors }
}

function toMs(m: RegExpExecArray | null): number {
  if (!m) return Number.NaN
  const v = Number(m[1])
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v
}

export function machine(): string {
  const cpu = /model name\s*:\s*(.+)/.exec(require('node:fs').readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU'
  return `${navigator.hardwareConcurrency} cores (${cpu.trim()}), Bun ${Bun.version}, ${process.platform}`
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
export const CLK_TCK = Number(Bun.spawnSync(['getconf', 'CLK_TCK']).stdout.toString().trim()) || 100

/** A process's user and system CPU so far in microseconds (resolution 1/CLK_TCK s) and its minor page faults, from /proc/<pid>/stat. */
export async function procTimes(pid: number): Promise<{ userUs: number; systemUs: number; minorFaults: number }> {
  const stat = await Bun.file(`/proc/${pid}/stat`).text()
  // fields after the ")" that closes the command name: state is the 1st there, minflt the 8th, utime the 12th, stime the 13th
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { userUs: (Number(fields[11]) / CLK_TCK) * 1e6, systemUs: (Number(fields[12]) / CLK_TCK) * 1e6, minorFaults: Number(fields[7]) }
}

/** utime + stime of a process in microseconds, from /proc/<pid>/stat (resolution 1/CLK_TCK s). */
export async function cpuMicros(pid: number): Promise<number> {
  const t = await procTimes(pid)
  return t.userUs + t.systemUs
}

/** the CPU time so far of a process or thread (its /proc directory) in microseconds, from its schedstat (nanoseconds) */
async function schedstatMicros(dir: string): Promise<number> {
  return Number((await Bun.file(`${dir}/schedstat`).text()).split(' ')[0]) / 1000
}

/**
 * CPU time so far of every Postgres and Redis server process on this host, by pid, in microseconds — from
 * /proc/<pid>/schedstat (nanoseconds; /proc/<pid>/stat's 10 ms ticks are too coarse for a dozen small backends).
 * Both are single-threaded per process (Redis's I/O threads are off by default).
 */
export async function serverCpu(): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  await Promise.all(
    readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(async (d) => {
        try {
          const comm = (await Bun.file(`/proc/${d}/comm`).text()).trim()
          if (comm !== 'postgres' && comm !== 'redis-server') return
          out.set(Number(d), await schedstatMicros(`/proc/${d}`))
        } catch {
          // exited meanwhile
        }
      }),
  )
  return out
}

/** the CPU used between two readings by id (`serverCpu`, `jitMicros`): one started in between counts from zero */
export function cpuSince(before: Map<number, number>, after: Map<number, number>): number {
  let us = 0
  for (const [pid, t] of after) us += t - (before.get(pid) ?? 0)
  return us
}

/**
 * CPU time so far of each of a Bun process's JIT compiler threads (JSC's `JITWorker`), by thread id, in
 * microseconds, from their schedstat; `cpuSince` takes the difference (a thread that exited meanwhile drops out
 * instead of making it negative)
 */
export async function jitMicros(pid: number): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (!(await Bun.file(`/proc/${pid}/task/${tid}/comm`).text()).startsWith('JITWorker')) continue
      out.set(Number(tid), await schedstatMicros(`/proc/${pid}/task/${tid}`))
    } catch {
      // the thread exited meanwhile
    }
  }
  return out
}

/**
 * CPU time so far of a Bun process's JavaScript thread (the event loop: the process's own first thread) in
 * microseconds, from its schedstat (nanoseconds). The rest of the process's CPU is other threads': fetch's HTTP
 * client, the collector's helpers, the JIT.
 */
export async function jsThreadMicros(pid: number): Promise<number> {
  return schedstatMicros(`/proc/${pid}/task/${pid}`)
}

/** Resident set size of a process in KiB, from /proc/<pid>/status (VmRSS). */
export async function rssKb(pid: number): Promise<number> {
  const status = await Bun.file(`/proc/${pid}/status`).text()
  return Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? Number.NaN)
}

/**
 * Starts the algorithm simulator in its own process (as `bun run simulator` does) on a free port and returns
 * its URL, read from the first log line (PORT=0 lets the OS pick the port).
 */
export async function startSimulatorProcess(env: Record<string, string> = {}): Promise<Target> {
  const proc = Bun.spawn(bunArgv(resolve(ROOT, 'src/simulator/main.ts')), {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: '0', HOST: '127.0.0.1' },
    stdout: 'pipe',
    stderr: 'inherit',
  })
  const reader = proc.stdout.getReader()
  const decoder = new TextDecoder()
  let out = ''
  while (!out.includes('\n')) {
    const { done, value } = await reader.read()
    if (done) throw new Error('simulator exited before announcing its URL')
    out += decoder.decode(value, { stream: true })
  }
  reader.releaseLock()
  void proc.stdout.pipeTo(new WritableStream()) // keep draining its logs
  const url = (JSON.parse(out.slice(0, out.indexOf('\n'))) as { url: string }).url
  return {
    name: 'simulator',
    url,
    pid: proc.pid,
    stop: () => stopProcess(proc),
  }
}

/** The p-quantile (0..1) of a sample, nearest-rank; NaN when empty. Sorts a copy. */
export function percentile(xs: ArrayLike<number>, p: number): number {
  if (xs.length === 0) return Number.NaN
  const sorted = Float64Array.from(xs).sort()
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!
}

/**
 * Waits (at most `maxMs`) until every listed process is idle (≤ 8% of a core over 250 ms), and so are this host's
 * Postgres and Redis servers together: a target finishing the previous run's work (database writes, GC, closing
 * sockets), or Postgres's own background work after it (autovacuum, checkpoints), must not steal the CPU of the
 * next one.
 */
export async function settle(pids: readonly number[], maxMs = 5000): Promise<void> {
  const deadline = Date.now() + maxMs
  while (Date.now() < deadline) {
    const [before, servers0] = await Promise.all([Promise.all(pids.map(cpuMicros)), serverCpu()])
    await Bun.sleep(250)
    const [after, servers1] = await Promise.all([Promise.all(pids.map(cpuMicros)), serverCpu()])
    if (after.every((us, i) => us - before[i]! <= 20_000) && cpuSince(servers0, servers1) <= 20_000) return
  }
}

const BIG = 2_000_000_000
/** the benchmark tenant's quotas when a benchmark measures the relay, not the limits: every one out of reach */
export const RAISED_QUOTAS: Record<string, number> = {
  requests_per_minute_per_user: BIG,
  requests_per_minute: BIG,
  concurrent_streams_per_user: BIG,
  concurrent_voice_sessions: BIG,
  concurrent_voice_sessions_per_user: BIG,
  daily_tokens: BIG,
}

/**
 * Logs in as the bootstrap admin and sets quotas of the `default` tenant (`PATCH /api/v2/admin/tenants/default`);
 * returns the access token.
 */
async function adminTokenWithQuotas(url: string, password: string, quotas: Record<string, number>): Promise<string> {
  const login = await fetch(`${url}/api/v2/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'admin@example.com', password }),
  })
  if (!login.ok) throw new Error(`login failed: ${login.status} ${await login.text()}`)
  const { access_token } = (await login.json()) as { access_token: string }
  let patch: Response
  // A shared Redis may still count a previous run's requests against the default quotas: wait them out.
  for (let attempt = 0; ; attempt++) {
    patch = await fetch(`${url}/api/v2/admin/tenants/default`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${access_token}` },
      body: JSON.stringify({ quotas }),
    })
    if (patch.status !== 429 || attempt === 15) break
    await Bun.sleep(1000 * Math.min(5, Number(patch.headers.get('retry-after') ?? 5) || 5))
  }
  if (!patch.ok) throw new Error(`setting quotas failed: ${patch.status} ${await patch.text()}`)
  return access_token
}

const BENCH_PASSWORD = 'bench-password-123'

/**
 * The gateway (`src/index.ts`) in its own process, with the settings of `npm start`, against `algoUrl`: on its
 * embedded defaults (PGlite in `dataDir`, in-process store) unless `databaseUrl` and `redisUrl` are given; logged in as the bootstrap admin
 * with the `default` tenant's `quotas` set. Returns the target and the admin's access token.
 */
export async function startGateway(
  name: string,
  opts: { algoUrl: string; dataDir: string; quotas: Record<string, number>; databaseUrl?: string; redisUrl?: string; env?: Record<string, string>; root?: string; script?: string },
): Promise<{ target: Target; token: string }> {
  const target = await spawnTarget(name, opts.script ?? 'src/index.ts', {
    // the settings `npm start` launches that checkout with
    ...startScriptEnv(opts.root),
    ...opts.env,
    ALGO_SERVICE_URL: opts.algoUrl,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    DATA_DIR: opts.dataDir,
    BOOTSTRAP_ADMIN_PASSWORD: BENCH_PASSWORD,
    JWT_SECRET: 'bench-secret-bench-secret-bench-secret-0123',
    DATABASE_URL: opts.databaseUrl ?? '',
    REDIS_URL: opts.redisUrl ?? '',
  }, '/health', opts.root)
  try {
    return { target, token: await adminTokenWithQuotas(target.url, BENCH_PASSWORD, opts.quotas) }
  } catch (err) {
    await target.stop()
    throw err
  }
}

/** CPU time the whole machine spent busy (all cores, every process), µs, from /proc/stat; for spotting foreign load. */
export async function machineBusyMicros(): Promise<number> {
  const line = (await Bun.file('/proc/stat').text()).split('\n', 1)[0]!
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number) as number[]
  void idle
  void iowait
  return ((user! + nice! + system! + irq! + softirq! + steal!) / CLK_TCK) * 1e6
}
