/** A throwaway redis-server on a free loopback port, which tests may kill, freeze and restart (empty, or durable: with its data). */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Subprocess } from 'bun'

export class RedisServer {
  private proc: Subprocess | undefined
  private dir: string | undefined

  private constructor(readonly port: number) {}

  static async onFreePort(): Promise<RedisServer> {
    const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    const port = probe.port
    probe.stop(true)
    return new RedisServer(port)
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** `durable`: an append-only file synced on every write, in a directory of its own: a kill loses nothing, and the next durable start loads it */
  async start(opts: { durable?: boolean } = {}): Promise<void> {
    if (this.proc) return
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '']
    if (opts.durable) {
      this.dir ??= mkdtempSync(join(tmpdir(), 'vh-redis-'))
      args.push('--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir)
    } else args.push('--appendonly', 'no')
    this.proc = Bun.spawn(['redis-server', ...args, '--daemonize', 'no'], { stdout: 'ignore', stderr: 'ignore' })
    const deadline = performance.now() + 5000
    while (!(await this.answersPing())) {
      if (performance.now() > deadline) throw new Error(`redis-server on ${this.port} did not start`)
      await Bun.sleep(20)
    }
  }

  /** SIGKILL: the connection drops without a goodbye, as when a Redis host dies. */
  async kill(): Promise<void> {
    const proc = this.proc
    this.proc = undefined
    if (!proc) return
    proc.kill('SIGKILL')
    await proc.exited
  }

  /** kills it and removes what a durable start wrote */
  async remove(): Promise<void> {
    await this.kill()
    if (this.dir) rmSync(this.dir, { recursive: true, force: true })
    this.dir = undefined
  }

  /** SIGSTOP/SIGCONT: the socket stays open but nothing answers, as with a hung server. */
  freeze(frozen: boolean): void {
    this.proc?.kill(frozen ? 'SIGSTOP' : 'SIGCONT')
  }

  private async answersPing(): Promise<boolean> {
    const { promise, resolve } = Promise.withResolvers<boolean>()
    const timer = setTimeout(() => resolve(false), 500)
    try {
      const socket = await Bun.connect({
        hostname: '127.0.0.1',
        port: this.port,
        socket: {
          data: (_s, data) => resolve(data.toString().startsWith('+PONG')),
          error: () => resolve(false),
          close: () => resolve(false),
        },
      })
      socket.write('PING\r\n')
      const ok = await promise
      socket.end()
      return ok
    } catch {
      return false
    } finally {
      clearTimeout(timer)
    }
  }
}
