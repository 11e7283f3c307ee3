/** Channels carrying JSON (chat and voice control, invalidations): a malformed message is skipped, never thrown. */
import { expect, test } from 'bun:test'
import { createMemoryStore, jsonMessages } from '../../src/store'

test('a JSON channel hands over parsed messages and skips malformed ones, reporting them', async () => {
  const store = createMemoryStore()
  const got: unknown[] = []
  let malformed = 0
  const unsubscribe = await store.subscribe('ch', jsonMessages<{ n: number }>((m) => got.push(m.n), () => malformed++))
  for (const raw of ['{"n":1}', 'not json', '{"n":', '{"n":2}']) await store.publish('ch', raw)
  await Bun.sleep(10)
  expect(got).toEqual([1, 2])
  expect(malformed).toBe(2)
  // without a reporter a malformed message is simply dropped
  const quiet = jsonMessages<{ n: number }>((m) => got.push(m.n))
  expect(() => quiet('}{')).not.toThrow()
  await unsubscribe()
  await store.close()
})
