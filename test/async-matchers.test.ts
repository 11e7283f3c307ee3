/**
 * In bun test, `expect(p).rejects` / `.resolves` deadlock — the test times out and the runner never exits —
 * once a Worker's message has settled an earlier await (oven-sh/bun#37189, #43819). The embedded database
 * answers through a Worker, so no test may use them; test/helpers/rejection.ts is what they use instead.
 */
import { expect, test } from 'bun:test'
import { join, relative } from 'node:path'

test('no test uses the .rejects / .resolves matchers', async () => {
  const root = join(import.meta.dir, '..')
  const uses: string[] = []
  for await (const file of new Bun.Glob('test/**/*.ts').scan({ cwd: root })) {
    const text = await Bun.file(join(root, file)).text()
    for (const m of text.matchAll(/\)\s*\.(rejects|resolves)\s*\./g)) uses.push(`${relative('.', file)}:${text.slice(0, m.index).split('\n').length} .${m[1]}`)
  }
  expect(uses).toEqual([])
})
