/**
 * Process entry: config → deps → app.listen(); SIGTERM drains before exit.
 */
import { createApp } from './app'
import { type Config, ConfigError, loadConfig } from './config'
import { DataDirInUse } from './db'
import { createDeps } from './deps'

async function main(): Promise<void> {
  let config: Config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`)
      process.exit(2)
    }
    throw err
  }
  const deps = await createDeps(config)
  const app = createApp(deps).listen({ port: config.port, hostname: config.host, idleTimeout: 75 })
  const server = app.server!
  deps.logger.info({ url: `http://${config.host}:${server.port}`, env: config.env, version: config.version }, 'gateway listening')

  let stopping = false
  async function drain(signal: string): Promise<void> {
    if (stopping) return
    stopping = true
    deps.lifecycle.draining = true
    deps.logger.info({ signal, grace_ms: config.shutdownGraceMs }, 'draining')
    const deadline = Date.now() + config.shutdownGraceMs
    // stop(false) stops accepting and resolves once in-flight requests have finished
    const stopped = server.stop(false)
    // chat streams may finish until a second before the deadline; the rest end with reason "shutdown"
    await deps.lifecycle.shutdown(deadline - Math.min(1000, config.shutdownGraceMs / 2))
    await Promise.race([stopped, Bun.sleep(Math.max(0, deadline - Date.now()))])
    const unfinished = server.pendingRequests
    if (unfinished > 0) await server.stop(true)
    deps.logger.info({ unfinished_requests: unfinished }, 'drained; exiting')
    await deps.close()
    process.exit(0)
  }
  process.on('SIGTERM', () => void drain('SIGTERM'))
  process.on('SIGINT', () => void drain('SIGINT'))
}

await main().catch((err) => {
  // an operator's mistake is told in one line; anything else with its stack
  const told = err instanceof DataDirInUse ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)
  process.stderr.write(`gateway failed to start: ${told}\n`)
  process.exit(1)
})
