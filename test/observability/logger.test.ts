/** What log lines may hold: a failed query's statement, never its parameters (row values). */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { sql } from 'drizzle-orm'
import { type DatabaseHandle, openDatabase } from '../../src/db'
import { createLogger } from '../../src/observability/logger'

let handle: DatabaseHandle
beforeAll(async () => {
  handle = await openDatabase({ url: 'memory://', dataDir: '/nonexistent' })
})
afterAll(() => handle.close())

function capture() {
  const lines: string[] = []
  const logger = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(line) } })
  return { logger, lines }
}

test("a failed query is logged with its statement and the driver's reason, without its parameter values", async () => {
  const secret = 'hash-5f3a9c-do-not-log'
  const err = await handle.db.execute(sql`select ${secret}::int as n`).then(
    () => null,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(Error)
  // drizzle itself puts the values in the message
  expect(String((err as Error).message)).toContain(secret)

  const { logger, lines } = capture()
  logger.error({ err, request_id: 'r1' }, 'request failed')
  expect(lines).toHaveLength(1)
  const line = lines[0]!
  expect(line).not.toContain(secret)
  const logged = JSON.parse(line) as { err: { message: string; stack: string } }
  expect(logged.err.message).toContain('select $1::int as n')
  expect(logged.err.message).toContain('params: [1 withheld]')
  expect(logged.err.stack).not.toContain(secret)
  // the cause (the database's own error) still says what went wrong
  expect(line).toContain('invalid input syntax for type integer')
})

test("a parameter that is also a word of the statement is withheld from the reason but left in the statement", async () => {
  const err = await handle.db.execute(sql`select ${'messages'}::timestamptz from messages`).then(
    () => null,
    (e: unknown) => e,
  )
  const { logger, lines } = capture()
  logger.error({ err }, 'request failed')
  const logged = JSON.parse(lines[0]!) as { err: { message: string; query: string } }
  expect(logged.err.message).toContain('select $1::timestamptz from messages')
  expect(logged.err.query).toBe('select $1::timestamptz from messages')
  expect(lines[0]).toContain('[param]') // Postgres quotes the value in its reason
  expect(lines[0]).not.toContain('"messages"')
})

test('other errors are logged whole', () => {
  const { logger, lines } = capture()
  logger.error({ err: new TypeError('boom at step 3') }, 'failed')
  const logged = JSON.parse(lines[0]!) as { err: { type: string; message: string; stack: string } }
  expect(logged.err).toMatchObject({ type: 'TypeError', message: 'boom at step 3' })
  expect(logged.err.stack).toContain('boom at step 3')
})
