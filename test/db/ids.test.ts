import { expect, test } from 'bun:test'
import { newId } from '../../src/lib/ids'

test('ids carry their prefix and 32 hex digits', () => {
  expect(newId('usr')).toMatch(/^usr_[0-9a-f]{32}$/)
  expect(newId('conv')).toMatch(/^conv_[0-9a-f]{32}$/)
  expect(newId('apikey')).toMatch(/^apikey_[0-9a-f]{32}$/)
})

test('ids sort in creation order, within a millisecond and across them', async () => {
  const ids: string[] = []
  for (let i = 0; i < 5000; i++) ids.push(newId('msg'))
  await Bun.sleep(2)
  ids.push(newId('msg'))
  expect(new Set(ids).size).toBe(ids.length)
  expect([...ids].sort()).toEqual(ids)
})

test('the id embeds its creation time (UUIDv7 timestamp)', () => {
  const before = Date.now()
  const id = newId('ten')
  const ms = parseInt(id.slice('ten_'.length, 'ten_'.length + 12), 16)
  expect(ms).toBeGreaterThanOrEqual(before)
  expect(ms).toBeLessThanOrEqual(Date.now())
})
