/** A throwaway redis-server on a free loopback port, which tests may kill, freeze and restart. */
import type { Subprocess } from 'bun'

export class RedisServer {
  private proc: Subprocess | undefined

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

  async start(): Promise<void> {
    if (this.proc) return
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
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
