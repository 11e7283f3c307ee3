/** What counts as "the database is unreachable", and how a write that met it is tried again. */
import { describe, expect, test } from 'bun:test'
import { isDatabaseUnreachable, storeThroughOutage, tryAgainWhileUnreachable } from '../../src/db'
import { rejectionOf } from '../helpers/rejection'

const coded = (code: string) => Object.assign(new Error(code), { code })

describe('isDatabaseUnreachable', () => {
  test('connection failures and a server shutting down or starting are; a query the server refused is not', () => {
    for (const e of [coded('ECONNREFUSED'), coded('CONNECTION_CLOSED'), coded('CONNECT_TIMEOUT'), coded('08006'), coded('57P01'), coded('57P03')]) {
      expect({ code: e.code, unreachable: isDatabaseUnreachable(e) }).toEqual({ code: e.code, unreachable: true })
    }
    // Drizzle wraps the driver's error
    expect(isDatabaseUnreachable(new Error('Failed query', { cause: coded('ECONNRESET') }))).toBe(true)
    for (const e of [coded('23505'), coded('22021'), coded('57014'), new Error('boom'), undefined, 'ECONNREFUSED']) {
      expect(isDatabaseUnreachable(e)).toBe(false)
    }
  })
})

describe('tryAgainWhileUnreachable', () => {
  const live = () => new AbortController().signal

  test('tries again while the database is unreachable, and resolves with the first success', async () => {
    let calls = 0
    const result = await tryAgainWhileUnreachable(async () => {
      if (++calls < 3) throw coded('ECONNREFUSED')
      return 'stored'
    }, live())
    expect([result, calls]).toEqual(['stored', 3])
  })

  test('any other failure is thrown at once', async () => {
    let calls = 0
    const failed = tryAgainWhileUnreachable(async () => {
      calls++
      throw coded('23505')
    }, live())
    expect(await rejectionOf(failed)).toMatchObject({ code: '23505' })
    expect(calls).toBe(1)
  })

  test('gives up with the last error once its time is over', async () => {
    let calls = 0
    const started = performance.now()
    const failed = tryAgainWhileUnreachable(
      async () => {
        calls++
        throw coded('ECONNREFUSED')
      },
      live(),
      600,
    )
    expect(await rejectionOf(failed)).toMatchObject({ code: 'ECONNREFUSED' })
    // 250 + 500 ms of waiting, then the time is over
    expect(calls).toBe(2)
    expect(performance.now() - started).toBeLessThan(2000)
  })

  test('once the signal aborts (shutdown): one more try at once, then the last error', async () => {
    const ctrl = new AbortController()
    ctrl.abort()
    let calls = 0
    const started = performance.now()
    const failed = tryAgainWhileUnreachable(async () => {
      calls++
      throw coded('ECONNREFUSED')
    }, ctrl.signal)
    expect(await rejectionOf(failed)).toMatchObject({ code: 'ECONNREFUSED' })
    expect(calls).toBe(1)
    expect(performance.now() - started).toBeLessThan(100)
  })
})

describe('storeThroughOutage', () => {
  const recorder = () => {
    const lines: string[] = []
    return { lines, logger: { info: (_: object, msg: string) => void lines.push(`info ${msg}`), warn: (_: object, msg: string) => void lines.push(`warn ${msg}`) } }
  }

  test('an unreachable database: `first` settles with the first try, the write goes on in the background, logged', async () => {
    const { lines, logger } = recorder()
    const failed: unknown[] = []
    let release!: () => void
    const again = new Promise<void>((resolve) => (release = resolve))
    const stored = storeThroughOutage({ first: Promise.reject(coded('ECONNREFUSED')), again: () => again, failed: (e) => failed.push(e), logger, what: 'the row', context: {} })
    await stored.first
    expect(lines).toEqual(['warn the row not stored yet: the database is unreachable; trying again'])
    release()
    await stored.done
    expect(lines.at(-1)).toBe('info the row stored on a later try')
    expect(failed).toEqual([])
  })

  test('any other failure, or the last of the tries again, goes to `failed`; nothing is tried again for the first', async () => {
    const { lines, logger } = recorder()
    const failed: unknown[] = []
    let tried = 0
    const refused = storeThroughOutage({ first: Promise.reject(coded('23505')), again: async () => void tried++, failed: (e) => failed.push(e), logger, what: 'x', context: {} })
    await refused.done
    expect([tried, lines, failed]).toMatchObject([0, [], [{ code: '23505' }]])
    const givenUp = storeThroughOutage({ first: Promise.reject(coded('ECONNRESET')), again: () => Promise.reject(coded('ECONNREFUSED')), failed: (e) => failed.push(e), logger, what: 'x', context: {} })
    await givenUp.done
    expect(failed.at(-1)).toMatchObject({ code: 'ECONNREFUSED' })
  })
})
