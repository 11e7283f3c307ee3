/**
 * The runtime settings the gateway is launched with: the leading `NAME=value` words of package.json's `start`
 * script (Bun reads them at start-up, so they are set where the process is launched). The benchmarks start
 * the gateway with them, as `npm start` does; a test keeps the Dockerfile's ENV the same.
 */
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'

export function startScriptEnv(root?: string): Record<string, string> {
  return scriptEnv('start', root)
}

/** the leading assignments of one of package.json's scripts */
export function scriptEnv(script: string, root = resolve(import.meta.dir, '../..')): Record<string, string> {
  const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }
  return leadingAssignments(pkg.scripts?.[script] ?? '')
}

/** `A=1 B=2 bun x` → {A: '1', B: '2'} */
export function leadingAssignments(command: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const word of command.trim().split(/\s+/)) {
    const m = /^([A-Z_][A-Z0-9_]*)=(\S*)$/.exec(word)
    if (!m) break
    env[m[1]!] = m[2]!
  }
  return env
}
