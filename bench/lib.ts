/** Shared pieces of the benchmarks: spawning targets in their own processes and driving wrk. */
import { resolve } from 'node:path'

export const ROOT = resolve(import.meta.dir, '..')

export async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const { port } = s
  s.stop(true)
  return port
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
): Promise<Target> {
  const port = await freePort()
  const proc = Bun.spawn([process.execPath, resolve(ROOT, script)], {
    cwd: ROOT,
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
    async stop() {
      proc.kill('SIGTERM')
      await Promise.race([proc.exited, Bun.sleep(5000)])
      if (proc.exitCode === null) proc.kill('SIGKILL')
    },
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
