/**
 * Runs the algorithm simulator on its own: `bun run simulator` (PORT, default 8081; HOST, default 127.0.0.1;
 * PORT=0 picks a free port, announced in the first log line). Logs JSON lines to stdout.
 */
import pino from 'pino'
import { startSimulator } from './server.ts'

const logger = pino({ base: { service: 'algo-simulator' } })

const port = Number(process.env.PORT ?? 8081)
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  logger.error({ PORT: process.env.PORT }, 'PORT must be an integer in 0..65535')
  process.exit(1)
}

const simulator = await startSimulator({ port, hostname: process.env.HOST ?? '127.0.0.1', logger })

async function shutdown(signal: string): Promise<void> {
  logger.info({ signal }, 'simulator stopping')
  await simulator.stop()
  process.exit(0)
}
process.once('SIGINT', () => void shutdown('SIGINT'))
process.once('SIGTERM', () => void shutdown('SIGTERM'))
