/**
 * A whole gateway for a test: real createApp over real dependencies — in-memory PGlite, the in-process
 * store and the embedded simulator unless the caller's env names others.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { createApp } from '../../src/app'
import { loadConfig } from '../../src/config'
import { createDeps, type Deps } from '../../src/deps'
import { createLogger } from '../../src/observability/logger'

export const TEST_JWT_SECRET = 'test-secret-test-secret-test-secret-0123456789'
export const TEST_ADMIN_PASSWORD = 'bootstrap-admin-password'

export interface TestApp {
  readonly app: ReturnType<typeof createApp>
  readonly deps: Deps
  /** JSON log lines written by this app */
  readonly logs: Array<Record<string, unknown>>
  request(path: string, init?: RequestInit): Promise<Response>
  close(): Promise<void>
}

export async function createTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: 'memory://',
    DATA_DIR: mkdtempSync(join(tmpdir(), 'vh-data-')),
    JWT_SECRET: TEST_JWT_SECRET,
    BOOTSTRAP_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
    LOG_LEVEL: 'debug',
    ...env,
  })
  const logs: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line))
      done()
    },
  })
  const deps = await createDeps(config, { logger: createLogger({ level: config.logLevel, destination: sink }) })
  const app = createApp(deps)
  return {
    app,
    deps,
    logs,
    request: (path, init) => app.handle(new Request(`http://localhost${path}`, init)),
    close: () => deps.close(),
  }
}

export function jsonRequest(method: string, body: unknown, headers: Record<string, string> = {}): RequestInit {
  return {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  }
}
