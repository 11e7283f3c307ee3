/**
 * Composition root: the only place infrastructure is constructed. Everything else receives what it needs.
 */
import type { Config } from './config'
import { type DatabaseHandle, migrate, openDatabase } from './db'
import { bootstrap } from './db/bootstrap'
import { createLogger, type Logger } from './observability/logger'
import { createMetrics, type Metrics } from './observability/metrics'
import { type Simulator, startSimulator } from './simulator/server'
import { createIdentityStack, type IdentityStack } from './modules/auth/stack'
import { createPresence, createStore, type Presence, type Store } from './store'
import { createUpstreamPool, type UpstreamPool } from './upstream'

export interface Lifecycle {
  /** set on SIGTERM: /ready answers 503 while work drains */
  draining: boolean
  /** work to wind down on shutdown (chat streams, voice sessions), given the epoch ms by which it must be done */
  onShutdown(hook: (deadline: number) => Promise<void>): void
  /** runs every hook once; later calls wait for the same run */
  shutdown(deadline: number): Promise<void>
}

export function createLifecycle(logger: Pick<Logger, 'error'>): Lifecycle {
  const hooks: Array<(deadline: number) => Promise<void>> = []
  let running: Promise<void> | undefined
  return {
    draining: false,
    onShutdown: (hook) => void hooks.push(hook),
    shutdown(deadline) {
      running ??= Promise.all(
        hooks.map((hook) => hook(deadline).catch((err: unknown) => logger.error({ err }, 'a shutdown hook failed'))),
      ).then(() => {})
      return running
    },
  }
}

export interface Deps {
  readonly config: Config
  readonly logger: Logger
  readonly metrics: Metrics
  readonly db: DatabaseHandle
  readonly store: Store
  /** this instance's id, and whether another one still runs */
  readonly presence: Presence
  /** the algorithm service base URLs in use (the embedded simulator's when none is configured) */
  upstreamUrls(): readonly string[]
  /** the algorithm-service client the chat stream calls */
  readonly upstream: UpstreamPool
  readonly simulator?: Simulator
  /** authentication, revocation, access, quotas, audit: shared by every feature module */
  readonly identity: IdentityStack
  readonly lifecycle: Lifecycle
  close(): Promise<void>
}

export interface DepsOverrides {
  logger?: Logger
}

export async function createDeps(config: Config, overrides: DepsOverrides = {}): Promise<Deps> {
  const logger = overrides.logger ?? createLogger({ level: config.logLevel })
  const metrics = createMetrics()
  const opened: Array<{ close(): Promise<void> }> = []
  try {
    const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, logger, pgliteVacuumIntervalMs: config.pgliteVacuumIntervalMs, statementTimeoutMs: config.dbStatementTimeoutMs })
    opened.push(db)
    await migrate(db)
    const boot = await bootstrap(db.db, {
      adminEmail: config.bootstrapAdminEmail,
      adminPassword: config.bootstrapAdminPassword,
      allowSignupDefault: !config.production,
    })
    if (boot.generatedPassword) announceGeneratedPassword(config.bootstrapAdminEmail, boot.generatedPassword)
    if (config.jwtSecretGenerated) logger.warn({ data_dir: config.dataDir }, 'JWT_SECRET not set: using a generated secret kept in DATA_DIR (development only)')

    const store = await createStore({ redisUrl: config.redisUrl, logger })
    opened.push(store)
    const presence = createPresence(store, logger)
    opened.push(presence)

    let simulator: Simulator | undefined
    if (config.algoServiceUrls.length === 0) {
      simulator = await startSimulator({ port: 0, hostname: '127.0.0.1', logger })
      opened.push(simulator)
      logger.warn({ url: simulator.url }, 'ALGO_SERVICE_URL not set: using the embedded algorithm SIMULATOR')
    }
    const upstreams = simulator ? [simulator.url] : config.algoServiceUrls

    const upstream = createUpstreamPool({
      urls: [...upstreams],
      firstByteTimeoutMs: config.algoFirstByteTimeoutMs,
      idleTimeoutMs: config.algoIdleTimeoutMs,
      userAgent: `VoiceHelper-Gateway/${config.version}`,
      logger,
    })
    opened.push({ close: async () => upstream.close() })

    const identity = await createIdentityStack({ config, db: db.db, store, logger })
    opened.push(identity)

    let closed = false
    const lifecycle = createLifecycle(logger)
    return {
      config,
      logger,
      metrics,
      db,
      store,
      presence,
      simulator,
      identity,
      upstreamUrls: () => upstreams,
      upstream,
      lifecycle,
      async close() {
        if (closed) return
        closed = true
        await lifecycle.shutdown(Date.now())
        await closeAll(opened, logger)
        logger.flush()
      },
    }
  } catch (err) {
    await closeAll(opened, logger)
    throw err
  }
}

async function closeAll(resources: Array<{ close(): Promise<void> }>, logger: Logger): Promise<void> {
  for (const resource of resources.reverse()) {
    try {
      await resource.close()
    } catch (err) {
      logger.warn({ err }, 'error while closing a dependency')
    }
  }
}

/** The one place a secret is printed: the generated bootstrap password, once, on the start that created it. */
function announceGeneratedPassword(email: string, password: string): void {
  process.stderr.write(
    `\n  Bootstrap super_admin created in tenant "default"\n    email:    ${email}\n    password: ${password}\n  It is shown only this once; set BOOTSTRAP_ADMIN_PASSWORD to choose it.\n\n`,
  )
}
