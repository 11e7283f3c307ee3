import { describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig, parseEnv } from '../src/config'

const tempDir = () => mkdtempSync(join(tmpdir(), 'vh-config-'))

function problemsOf(env: Record<string, string>): string[] {
  try {
    parseEnv(env)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error('expected a ConfigError')
}

describe('configuration', () => {
  test('defaults give a working development setup with embedded everything', () => {
    const config = loadConfig({ DATA_DIR: tempDir() })
    expect(config.port).toBe(8080)
    expect(config.host).toBe('0.0.0.0')
    expect(config.databaseUrl).toBeUndefined()
    expect(config.redisUrl).toBeUndefined()
    expect(config.algoServiceUrls).toEqual([])
    expect(config.corsOrigins).toEqual(['*'])
    expect(config.shutdownGraceMs).toBe(25_000)
    expect(config.production).toBe(false)
  })

  test('every bad variable is reported at once, by name', () => {
    const problems = problemsOf({
      PORT: 'eighty',
      DATABASE_URL: 'mysql://db/x',
      REDIS_URL: 'localhost:6379',
      ALGO_SERVICE_URL: 'http://a:1, ftp://b',
      LOG_LEVEL: 'loud',
      SHUTDOWN_GRACE_S: '-1',
      NODE_ENV: 'staging',
    })
    const names = problems.map((p) => p.split(':')[0])
    expect(names.sort()).toEqual(
      ['ALGO_SERVICE_URL', 'DATABASE_URL', 'LOG_LEVEL', 'NODE_ENV', 'PORT', 'REDIS_URL', 'SHUTDOWN_GRACE_S'].sort(),
    )
  })

  test('secrets are never echoed in configuration errors', () => {
    const problems = problemsOf({ JWT_SECRET: 'hunter2-short', DATABASE_URL: 'mysql://u:pa55word@db/x' })
    const text = problems.join('\n')
    expect(text).toContain('JWT_SECRET')
    expect(text).not.toContain('hunter2')
    expect(text).not.toContain('pa55word')
  })

  test('production refuses to start with generated secrets', () => {
    const problems = problemsOf({ NODE_ENV: 'production' })
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual(['BOOTSTRAP_ADMIN_PASSWORD', 'JWT_SECRET'])
    expect(() =>
      parseEnv({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), BOOTSTRAP_ADMIN_PASSWORD: 'long-enough-pw' }),
    ).not.toThrow()
  })

  test('production allows no CORS origin unless configured', () => {
    const base = { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), BOOTSTRAP_ADMIN_PASSWORD: 'long-enough-pw', DATA_DIR: tempDir() }
    expect(loadConfig(base).corsOrigins).toEqual([])
    expect(loadConfig({ ...base, CORS_ORIGINS: 'https://a.example, https://b.example' }).corsOrigins).toEqual([
      'https://a.example',
      'https://b.example',
    ])
  })

  test('a generated development secret is kept in DATA_DIR and reused, readable only by the owner', () => {
    const dir = tempDir()
    const first = loadConfig({ DATA_DIR: dir })
    const second = loadConfig({ DATA_DIR: dir })
    expect(first.jwtSecretGenerated).toBe(true)
    expect(first.jwtSecret.length).toBeGreaterThanOrEqual(32)
    expect(second.jwtSecret).toBe(first.jwtSecret)
    const file = join(dir, 'jwt-secret')
    expect(readFileSync(file, 'utf8').trim()).toBe(first.jwtSecret)
    expect(statSync(file).mode & 0o077).toBe(0)
  })

  test('an explicit JWT_SECRET writes nothing to disk', () => {
    const dir = tempDir()
    const config = loadConfig({ DATA_DIR: dir, JWT_SECRET: 's'.repeat(40) })
    expect(config.jwtSecret).toBe('s'.repeat(40))
    expect(existsSync(join(dir, 'jwt-secret'))).toBe(false)
  })

  test('several algorithm service URLs are split and normalised', () => {
    const config = loadConfig({ DATA_DIR: tempDir(), ALGO_SERVICE_URL: 'http://a:8000/, http://b:8000' })
    expect(config.algoServiceUrls).toEqual(['http://a:8000', 'http://b:8000'])
  })
})
