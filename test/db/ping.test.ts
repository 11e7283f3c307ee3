/**
 * ping() feeds /ready: it must answer "down" quickly and never hang, whatever state the server is in.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import net from 'node:net'
import { openDatabase } from '../../src/db'

// bunfig's [test] timeout is not applied by this Bun; PGlite start-up and argon2 can pass 5 s on a busy machine
setDefaultTimeout(20_000)

const dataDir = '/nonexistent'

async function elapsed(work: () => Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const t0 = performance.now()
  let error: unknown
  try {
    await work()
  } catch (err) {
    error = err
  }
  return { ms: performance.now() - t0, error }
}

describe('ping', () => {
  test('rejects quickly when nothing listens on the port', async () => {
    const h = await openDatabase({ url: 'postgres://postgres@127.0.0.1:1/nothing', dataDir })
    expect(h.kind).toBe('postgres')
    const { ms, error } = await elapsed(() => h.ping())
    expect(error).toBeInstanceOf(Error)
    expect(ms).toBeLessThan(1200)
    await h.close()
  })

  describe('against a server that accepts connections and never answers', () => {
    const sockets = new Set<net.Socket>()
    const silent = net.createServer((s) => {
      sockets.add(s)
      s.on('error', () => {})
    })
    const listening = new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    afterAll(async () => {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => silent.close(resolve))
    })

    test('rejects at the default 1 s and at a custom timeout instead of hanging', async () => {
      await listening
      const port = (silent.address() as net.AddressInfo).port
      const h = await openDatabase({ url: `postgres://postgres@127.0.0.1:${port}/silent`, dataDir })
      try {
        const byDefault = await elapsed(() => h.ping())
        expect((byDefault.error as Error).message).toContain('timed out after 1000 ms')
        expect(byDefault.ms).toBeGreaterThanOrEqual(950)
        expect(byDefault.ms).toBeLessThan(1200)

        const custom = await elapsed(() => h.ping(200))
        expect((custom.error as Error).message).toContain('timed out after 200 ms')
        expect(custom.ms).toBeLessThan(400)
      } finally {
        await h.close()
      }
    })
  })

  test('close is idempotent and a closed handle no longer answers', async () => {
    const h = await openDatabase({ url: 'memory://', dataDir })
    await h.ping()
    await Promise.all([h.close(), h.close()])
    await h.close()
    expect((await elapsed(() => h.ping())).error).toBeInstanceOf(Error)
  })

  test('refuses a url it does not understand without echoing it', async () => {
    const error = (await elapsed(() => openDatabase({ url: 'mysql://root:hunter2@db/x', dataDir })))
      .error as Error
    expect(error.message).toContain('postgres://')
    expect(error.message).not.toContain('hunter2')
  })
})
