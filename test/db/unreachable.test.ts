/** What counts as "the database is unreachable", and how a write that met it is tried again. */
import { describe, expect, test } from 'bun:test'
import { isDatabaseUnreachable, tryAgainWhileUnreachable } from '../../src/db'

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
    await expect(failed).rejects.toMatchObject({ code: '23505' })
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
    await expect(failed).rejects.toMatchObject({ code: 'ECONNREFUSED' })
    // 250 + 500 ms of waiting, then the time is over
    expect(calls).toBe(2)
    expect(performance.now() - started).toBeLessThan(2000)
  })

  test('once the signal aborts (shutdown): one more try at once, then the last error', async () => {
    const ctrl = new AbortController()
    ctrl.abort()
    let calls = 0
    const started = performance.now()
    await expect(
      tryAgainWhileUnreachable(async () => {
        calls++
        throw coded('ECONNREFUSED')
      }, ctrl.signal),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' })
    expect(calls).toBe(1)
    expect(performance.now() - started).toBeLessThan(100)
  })
})
