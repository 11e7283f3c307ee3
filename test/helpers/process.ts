/** The gateway as a real process, the way an operator runs it. */
import { resolve } from 'node:path'

export const ENTRY = resolve(import.meta.dir, '../../src/index.ts')

export interface GatewayProcess {
  readonly proc: ReturnType<typeof Bun.spawn>
  readonly baseUrl: string
  /** JSON log lines seen so far on stdout */
  readonly logs: Array<Record<string, unknown>>
  stderr(): string
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
  waitUntilListening(timeoutMs?: number): Promise<void>
  stop(): Promise<number>
}

export function spawnGateway(opts: { env: Record<string, string>; cwd: string; port: number }): GatewayProcess {
  const proc = Bun.spawn([process.execPath, ENTRY], {
    cwd: opts.cwd,
    env: opts.env,
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const logs: Array<Record<string, unknown>> = []
  let errText = ''
  void (async () => {
    let buffered = ''
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
      buffered += new TextDecoder().decode(chunk)
      let nl: number
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        try {
          logs.push(JSON.parse(line))
        } catch {
          logs.push({ unparsed: line })
        }
      }
    }
  })()
  void (async () => {
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) errText += new TextDecoder().decode(chunk)
  })()

  async function waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const found = logs.find(predicate)
      if (found) return found
      if (proc.exitCode !== null) throw new Error(`gateway exited (${proc.exitCode}): ${errText}`)
      await Bun.sleep(25)
    }
    throw new Error(`log line not seen within ${timeoutMs} ms; stderr: ${errText}`)
  }

  return {
    proc,
    baseUrl: `http://127.0.0.1:${opts.port}`,
    logs,
    stderr: () => errText,
    waitForLog,
    async waitUntilListening(timeoutMs = 30_000) {
      await waitForLog((l) => l.msg === 'gateway listening', timeoutMs)
    },
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM')
      return proc.exited
    },
  }
}

/** PATH and HOME only: the environment of a newcomer's shell, with nothing configured. */
export function bareEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...extra }
}
