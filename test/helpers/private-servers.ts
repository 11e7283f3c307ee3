/**
 * A private Postgres server on a free loopback port, for tests that stop and restart it (readiness,
 * failure handling) without disturbing the shared one other suites use. Redis: see ./redis-server.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { chmod } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface PrivateServer {
  readonly url: string
  readonly port: number
  start(): Promise<void>
  stop(): Promise<void>
  destroy(): Promise<void>
}

export async function freePort(): Promise<number> {
  const server = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const { port } = server
  server.stop(true)
  return port
}

async function waitFor(ready: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await ready()) return
    await Bun.sleep(50)
  }
  throw new Error(`${what} did not become ready within ${timeoutMs} ms`)
}

async function accepts(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } })
    socket.end()
    return true
  } catch {
    return false
  }
}

const PG_BIN = '/usr/lib/postgresql/15/bin'

/** postgres refuses to run as root, so the cluster belongs to the `postgres` user when we are root. */
function asPostgresUser(cmd: string[]): string[] {
  return process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', ...cmd] : cmd
}

export const privatePostgresAvailable = await Bun.file(`${PG_BIN}/initdb`).exists()

export async function startPrivatePostgres(): Promise<PrivateServer> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'vh-pg-'))
  await chmod(dir, 0o777)
  const data = join(dir, 'data')
  const run = async (cmd: string[]) => {
    const p = Bun.spawn(asPostgresUser(cmd), { stdout: 'pipe', stderr: 'pipe' })
    const code = await p.exited
    if (code !== 0) throw new Error(`${cmd[0]} failed (${code}): ${await new Response(p.stderr).text()}`)
  }
  await run([`${PG_BIN}/initdb`, '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'])
  const server: PrivateServer = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      await run([
        `${PG_BIN}/pg_ctl`, '-D', data, '-w', '-l', join(dir, 'log'),
        '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start',
      ])
      await waitFor(() => accepts(port), 10_000, 'private postgres')
    },
    async stop() {
      await run([`${PG_BIN}/pg_ctl`, '-D', data, '-m', 'immediate', '-w', 'stop'])
    },
    async destroy() {
      await server.stop().catch(() => {})
      rmSync(dir, { recursive: true, force: true })
    },
  }
  await server.start()
  return server
}
