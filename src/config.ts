/**
 * Configuration: parsed once from the environment with TypeBox. Nothing else reads process.env.
 * Every bad variable is reported at once, so an operator fixes them in one go.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { type Static, Type as T } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import pkg from '../package.json'

const Port = T.Integer({ minimum: 0, maximum: 65535 })
const Url = (protocols: string[]) =>
  T.String({ pattern: `^(${protocols.join('|')})://[^\\s]+$`, description: `${protocols.join(' or ')} URL` })

/** The environment as the gateway reads it; names are the variables operators set. */
const EnvSchema = T.Object({
  NODE_ENV: T.Union([T.Literal('development'), T.Literal('production'), T.Literal('test')], {
    default: 'development',
    description: 'development, production or test',
  }),
  PORT: T.Optional(Port),
  HOST: T.String({ default: '0.0.0.0', minLength: 1 }),
  DATABASE_URL: T.Optional(
    T.Union([Url(['postgres', 'postgresql']), T.Literal('memory://')], { description: 'a postgres:// URL' }),
  ),
  REDIS_URL: T.Optional(Url(['redis', 'rediss'])),
  ALGO_SERVICE_URL: T.Optional(
    T.String({ pattern: '^https?://[^\\s,]+(\\s*,\\s*https?://[^\\s,]+)*$', description: 'comma-separated http(s) URLs' }),
  ),
  JWT_SECRET: T.Optional(T.String({ minLength: 32, description: 'at least 32 bytes' })),
  DATA_DIR: T.String({ default: './data', minLength: 1 }),
  CORS_ORIGINS: T.Optional(T.String()),
  OTEL_EXPORTER_OTLP_ENDPOINT: T.Optional(Url(['http', 'https'])),
  BOOTSTRAP_ADMIN_EMAIL: T.String({ default: 'admin@example.com', pattern: '^[^@\\s]+@[^@\\s]+$', description: 'an email address' }),
  BOOTSTRAP_ADMIN_PASSWORD: T.Optional(T.String({ minLength: 8, description: 'at least 8 characters' })),
  SHUTDOWN_GRACE_S: T.Number({ default: 25, minimum: 0, maximum: 3600 }),
  LOG_LEVEL: T.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => T.Literal(l)),
    { default: 'info', description: 'a pino level (fatal..trace, silent)' },
  ),
  BODY_LIMIT_BYTES: T.Integer({ default: 1024 * 1024, minimum: 1024, maximum: 64 * 1024 * 1024 }),
  ALGO_FIRST_BYTE_TIMEOUT_MS: T.Integer({ default: 30_000, minimum: 100 }),
  ALGO_IDLE_TIMEOUT_MS: T.Integer({ default: 60_000, minimum: 100 }),
  READY_CHECK_TIMEOUT_MS: T.Integer({ default: 1000, minimum: 50, maximum: 30_000 }),
  DB_STATEMENT_TIMEOUT_S: T.Integer({ default: 30, minimum: 0, maximum: 86_400, description: 'Postgres: a statement running longer is cancelled, a 503 to its request (0 = no limit; migrations have none)' }),
  PGLITE_VACUUM_INTERVAL_S: T.Integer({ default: 600, minimum: 0, maximum: 86_400, description: 'embedded PGlite has no autovacuum: VACUUM (ANALYZE) this often (0 = never)' }),
  CHAT_PING_INTERVAL_MS: T.Integer({ default: 15_000, minimum: 10, maximum: 120_000, description: 'SSE `: ping` period while the upstream is silent' }),
  CHAT_DISCONNECT_GRACE_S: T.Number({ default: 15, minimum: 0, maximum: 600, description: 'how long a stream nobody watches keeps running, waiting for a resume' }),
  CHAT_REPLAY_TTL_S: T.Integer({ default: 300, minimum: 1, maximum: 86_400, description: 'how long a finished stream can be replayed' }),
  CHAT_MAX_STREAM_BYTES: T.Integer({ default: 16 * 1024 * 1024, minimum: 64 * 1024, maximum: 256 * 1024 * 1024, description: 'an answer whose events pass this size is cut: upstream cancelled, error STREAM_ERROR, the text so far stored' }),
  CHAT_REPLAY_MAX_BYTES: T.Integer({ default: 256 * 1024 * 1024, minimum: 64 * 1024, maximum: 16 * 1024 * 1024 * 1024, description: "finished streams' events this instance keeps in memory for replay (embedded store) or until Redis takes them (its outage); past this the oldest are dropped" }),
  CHAT_FOLLOWER_PATIENCE_S: T.Number({ default: 60, minimum: 1, maximum: 3600, description: 'a stream followed from another instance is closed (the client resumes later) once Redis has not answered its checks on the holder this long' }),
  CHAT_LOST_SWEEP_S: T.Integer({ default: 10, minimum: 1, maximum: 3600, description: 'how often questions whose stream a stopped instance lost get a failed answer' }),
  VOICE_ALLOWED_ORIGINS: T.Optional(T.String({ description: 'comma-separated Origin allowlist for voice WebSockets (default: CORS_ORIGINS)' })),
  VOICE_MAX_SESSIONS_PER_USER: T.Integer({ default: 2, minimum: 0, maximum: 100_000, description: 'concurrent voice sessions per user unless the tenant quota says otherwise (0 = unlimited)' }),
  VOICE_MAX_SESSIONS_PER_TENANT: T.Integer({ default: 50, minimum: 0, maximum: 1_000_000, description: 'concurrent voice sessions per tenant unless the tenant quota says otherwise (0 = unlimited)' }),
  VOICE_MAX_BUFFERED_BYTES: T.Integer({ default: 256 * 1024, minimum: 1024, maximum: 64 * 1024 * 1024, description: 'per direction: past this, stale audio is dropped' }),
  VOICE_PING_INTERVAL_MS: T.Integer({ default: 30_000, minimum: 10, maximum: 300_000, description: 'server ping period on voice sockets' }),
  VOICE_IDLE_TIMEOUT_MS: T.Integer({ default: 60_000, minimum: 20, maximum: 900_000, description: 'a voice socket silent this long (no message, no pong) is closed with 4408' }),
  VOICE_LOST_SWEEP_S: T.Integer({ default: 60, minimum: 1, maximum: 3600, description: 'how often sessions a stopped instance left active (and at least this old) are marked failed: instance_lost' }),
  VOICE_UPSTREAM_CONNECT_TIMEOUT_MS: T.Integer({ default: 5000, minimum: 50, maximum: 60_000, description: 'how long the algorithm service may take to accept a voice socket' }),
})
type Env = Static<typeof EnvSchema>

export interface Config {
  readonly version: string
  readonly env: 'development' | 'production' | 'test'
  readonly production: boolean
  readonly port: number
  readonly host: string
  /** postgres URL, `memory://` for an in-memory PGlite, or undefined for PGlite under dataDir */
  readonly databaseUrl?: string
  /** undefined → in-process store (single instance only) */
  readonly redisUrl?: string
  /** empty → the embedded simulator is started and used */
  readonly algoServiceUrls: readonly string[]
  readonly jwtSecret: string
  readonly jwtSecretGenerated: boolean
  readonly dataDir: string
  readonly pgliteVacuumIntervalMs: number
  /** Postgres only; 0 = no limit */
  readonly dbStatementTimeoutMs: number
  /** ['*'] allows every origin (development default) */
  readonly corsOrigins: readonly string[]
  readonly otelEndpoint?: string
  readonly bootstrapAdminEmail: string
  readonly bootstrapAdminPassword?: string
  readonly shutdownGraceMs: number
  readonly logLevel: string
  readonly bodyLimitBytes: number
  readonly algoFirstByteTimeoutMs: number
  readonly algoIdleTimeoutMs: number
  readonly readyCheckTimeoutMs: number
  /** SSE `: ping` comment period while the upstream is silent */
  readonly chatPingIntervalMs: number
  readonly chatDisconnectGraceMs: number
  readonly chatReplayTtlMs: number
  readonly chatLostSweepMs: number
  readonly chatFollowerPatienceMs: number
  readonly chatMaxStreamBytes: number
  readonly chatReplayMaxBytes: number
  readonly voice: VoiceConfig
}

/** Voice sessions (contract §5). */
export interface VoiceConfig {
  /** allowed Origin values; ['*'] allows every origin. Requests without Origin (non-browser) are always allowed */
  readonly allowedOrigins: readonly string[]
  /** defaults for the tenant quotas concurrent_voice_sessions_per_user / concurrent_voice_sessions; 0 = unlimited */
  readonly maxSessionsPerUser: number
  readonly maxSessionsPerTenant: number
  readonly maxBufferedBytes: number
  readonly pingIntervalMs: number
  readonly idleTimeoutMs: number
  readonly upstreamConnectTimeoutMs: number
  /** the sweep for sessions a stopped instance left active: its period, and the youngest row it touches */
  readonly lostSweepMs: number
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

type RawEnv = Record<string, string | undefined>

/** Parses and checks the environment. Throws ConfigError naming every bad variable. Does no I/O. */
export function parseEnv(raw: RawEnv): Env {
  const input: Record<string, unknown> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = raw[key]
    if (value !== undefined && value.trim() !== '') input[key] = value.trim()
  }
  const converted = Value.Convert(EnvSchema, Value.Default(EnvSchema, input))
  const problems = [...Value.Errors(EnvSchema, converted)].map(
    (e) => `${e.path.slice(1) || 'environment'}: ${describe(e.schema, e.message)} (got ${shown(e.path.slice(1), e.value)})`,
  )
  const env = converted as Env
  if (input.NODE_ENV === 'production') {
    if (!input.JWT_SECRET) problems.push('JWT_SECRET: required in production (at least 32 bytes); generated secrets are refused')
    if (!input.BOOTSTRAP_ADMIN_PASSWORD)
      problems.push('BOOTSTRAP_ADMIN_PASSWORD: required in production; generated passwords are refused')
  }
  if (problems.length > 0) throw new ConfigError(dedupe(problems))
  return env
}

const SECRET_VARS = new Set(['JWT_SECRET', 'BOOTSTRAP_ADMIN_PASSWORD', 'DATABASE_URL', 'REDIS_URL'])

/** Never echo a secret (or a URL that may carry a password) into an error message or a log. */
function shown(name: string, value: unknown): string {
  if (SECRET_VARS.has(name) && typeof value === 'string') return `a value of ${value.length} characters`
  return JSON.stringify(value)
}

function describe(schema: { description?: string }, message: string): string {
  return schema.description ? `expected ${schema.description}` : message
}

function dedupe(problems: string[]): string[] {
  const seen = new Set<string>()
  return problems.filter((p) => {
    const name = p.slice(0, p.indexOf(':'))
    if (seen.has(name)) return false
    seen.add(name)
    return true
  })
}

/**
 * Builds the gateway's configuration. In development a missing JWT secret is generated once and kept
 * in DATA_DIR so that tokens survive restarts.
 */
export function loadConfig(raw: RawEnv = process.env): Config {
  const env = parseEnv(raw)
  const production = env.NODE_ENV === 'production'
  const dataDir = resolve(env.DATA_DIR)
  const secret = env.JWT_SECRET ?? persistentSecret(dataDir)
  return {
    version: pkg.version,
    env: env.NODE_ENV,
    production,
    port: env.PORT ?? 8080,
    host: env.HOST,
    databaseUrl: env.DATABASE_URL,
    redisUrl: env.REDIS_URL,
    algoServiceUrls: splitList(env.ALGO_SERVICE_URL).map((u) => u.replace(/\/+$/, '')),
    jwtSecret: secret,
    jwtSecretGenerated: env.JWT_SECRET === undefined,
    dataDir,
    pgliteVacuumIntervalMs: env.PGLITE_VACUUM_INTERVAL_S * 1000,
    dbStatementTimeoutMs: env.DB_STATEMENT_TIMEOUT_S * 1000,
    corsOrigins: env.CORS_ORIGINS !== undefined ? splitList(env.CORS_ORIGINS) : production ? [] : ['*'],
    otelEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT,
    bootstrapAdminEmail: env.BOOTSTRAP_ADMIN_EMAIL.toLowerCase(),
    bootstrapAdminPassword: env.BOOTSTRAP_ADMIN_PASSWORD,
    shutdownGraceMs: Math.round(env.SHUTDOWN_GRACE_S * 1000),
    logLevel: env.LOG_LEVEL,
    bodyLimitBytes: env.BODY_LIMIT_BYTES,
    algoFirstByteTimeoutMs: env.ALGO_FIRST_BYTE_TIMEOUT_MS,
    algoIdleTimeoutMs: env.ALGO_IDLE_TIMEOUT_MS,
    readyCheckTimeoutMs: env.READY_CHECK_TIMEOUT_MS,
    chatPingIntervalMs: env.CHAT_PING_INTERVAL_MS,
    chatDisconnectGraceMs: Math.round(env.CHAT_DISCONNECT_GRACE_S * 1000),
    chatReplayTtlMs: env.CHAT_REPLAY_TTL_S * 1000,
    chatLostSweepMs: env.CHAT_LOST_SWEEP_S * 1000,
    chatFollowerPatienceMs: Math.round(env.CHAT_FOLLOWER_PATIENCE_S * 1000),
    chatMaxStreamBytes: env.CHAT_MAX_STREAM_BYTES,
    chatReplayMaxBytes: env.CHAT_REPLAY_MAX_BYTES,
    voice: {
      allowedOrigins:
        env.VOICE_ALLOWED_ORIGINS !== undefined ? splitList(env.VOICE_ALLOWED_ORIGINS) : env.CORS_ORIGINS !== undefined ? splitList(env.CORS_ORIGINS) : production ? [] : ['*'],
      maxSessionsPerUser: env.VOICE_MAX_SESSIONS_PER_USER,
      maxSessionsPerTenant: env.VOICE_MAX_SESSIONS_PER_TENANT,
      maxBufferedBytes: env.VOICE_MAX_BUFFERED_BYTES,
      pingIntervalMs: env.VOICE_PING_INTERVAL_MS,
      idleTimeoutMs: env.VOICE_IDLE_TIMEOUT_MS,
      upstreamConnectTimeoutMs: env.VOICE_UPSTREAM_CONNECT_TIMEOUT_MS,
      lostSweepMs: env.VOICE_LOST_SWEEP_S * 1000,
    },
  }
}

function splitList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
}

function persistentSecret(dataDir: string): string {
  const file = join(dataDir, 'jwt-secret')
  try {
    const existing = readFileSync(file, 'utf8').trim()
    if (existing.length >= 32) return existing
  } catch {
    // first start: generate below
  }
  mkdirSync(dataDir, { recursive: true })
  const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(48))).toString('base64url')
  writeFileSync(file, `${secret}\n`, { mode: 0o600 })
  return secret
}
