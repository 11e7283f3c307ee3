/**
 * The settings Bun reads at start-up (fetch's in-flight limit, how long freed memory is kept for reuse) are the
 * same wherever the gateway is launched: `npm start`, `npm run dev` and the Docker image.
 */
import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { leadingAssignments, scriptEnv, startScriptEnv } from './helpers/runtime-env'

const root = resolve(import.meta.dir, '..')
const start = startScriptEnv(root)

/** the NAME=value pairs of the Dockerfile's ENV instructions (continued lines joined) */
function dockerEnv(): Record<string, string> {
  const text = readFileSync(resolve(root, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ')
  const env: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^ENV\s+(.*)$/.exec(line.trim())
    if (!m) continue
    for (const [, name, value] of m[1]!.matchAll(/([A-Z_][A-Z0-9_]*)=(\S+)/g)) env[name!] = value!
  }
  return env
}

describe('runtime settings read at start-up', () => {
  test('npm start raises fetch in-flight limit and keeps freed memory for reuse', () => {
    expect(start).toEqual({ BUN_CONFIG_MAX_HTTP_REQUESTS: '4096', MIMALLOC_PURGE_DELAY: '10000', MIMALLOC_PURGE_HOLES: '0' })
  })

  test('npm run dev and the Docker image set the same', () => {
    expect(scriptEnv('dev', root)).toEqual(start)
    expect(dockerEnv()).toMatchObject(start)
  })

  test('only the leading assignments of a command count', () => {
    expect(leadingAssignments('A=1 B_2=x bun run C=3')).toEqual({ A: '1', B_2: 'x' })
    expect(leadingAssignments('bun src/index.ts')).toEqual({})
  })
})
