import { describe, expect, test } from 'bun:test'
import { AppError } from '../../src/errors.ts'
import { createTokenService, type AccessClaims } from '../../src/modules/auth/tokens.ts'
import { controlToken, hmacToken, jwtAttackCases } from './jwt-attacks.ts'
import { rejectionOf } from '../helpers/rejection'

const secret = 'test-secret-that-is-long-enough-0123456789'
const issuer = 'voicehelper-gateway'
const audience = 'voicehelper-api'
const subject = {
  user_id: 'u_1',
  username: 'ada',
  tenant_id: 't_1',
  session_id: 's_1',
  roles: ['user'],
  scopes: ['chat:write'],
}
const T0 = 1_760_000_000

/** A service whose clock the test moves. */
function clocked(startS = T0) {
  const clock = { s: startS }
  const svc = createTokenService({ secret, now: () => clock.s * 1000 })
  return { svc, clock }
}

async function refusal(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(AppError)
  return err as AppError
}

function expectTokenInvalid(err: AppError, reason: string) {
  expect(err.status).toBe(401)
  expect(err.code).toBe('TOKEN_INVALID')
  expect(err.details).toEqual({ reason })
  expect(err.message).toBe(reason === 'expired' ? 'Token expired' : 'Invalid token')
  expect(err.cause).toBeUndefined()
}

describe('signAccess / verifyAccess', () => {
  test('round trip preserves the claims; exp = iat + ttl; nbf = iat', async () => {
    const { svc } = clocked()
    const signed = await svc.signAccess(subject)
    expect(signed.expiresIn).toBe(3600)
    expect(signed.exp).toBe(T0 + 3600)
    const claims = await svc.verifyAccess(signed.token)
    expect(claims).toEqual({
      ...subject,
      jti: signed.jti,
      iat: T0,
      nbf: T0,
      exp: T0 + 3600,
      iss: issuer,
      aud: audience,
    } satisfies AccessClaims)
  })

  test('header is exactly {alg: HS256, typ: JWT}; jti is random per token', async () => {
    const { svc } = clocked()
    const a = await svc.signAccess(subject)
    const b = await svc.signAccess(subject)
    const header = JSON.parse(Buffer.from(a.token.split('.')[0]!, 'base64url').toString())
    expect(header).toEqual({ alg: 'HS256', typ: 'JWT' })
    expect(a.jti).not.toBe(b.jti)
  })

  test('per-token ttl and default scopes', async () => {
    const { svc } = clocked()
    const { scopes: _, ...noScopes } = subject
    const signed = await svc.signAccess({ ...noScopes, ttlS: 60 })
    expect(signed).toMatchObject({ exp: T0 + 60, expiresIn: 60 })
    expect((await svc.verifyAccess(signed.token)).scopes).toEqual([])
  })

  test('roles and scopes absent from a token default to []', async () => {
    const { svc } = clocked()
    const token = hmacToken(
      { alg: 'HS256', typ: 'JWT' },
      { user_id: 'u', username: 'n', tenant_id: 't', session_id: 's', jti: 'j', iat: T0, exp: T0 + 60, iss: issuer, aud: audience },
      secret,
    )
    expect(await svc.verifyAccess(token)).toMatchObject({ roles: [], scopes: [] })
  })

  test('extra claims in the payload do not leak into the result', async () => {
    const { svc } = clocked()
    const token = controlToken({ secret, issuer, audience, validClaims: { ...subject, is_admin: true }, nowS: T0 })
    expect(await svc.verifyAccess(token)).not.toHaveProperty('is_admin')
  })

  test('stateless: a token from another instance with the same secret verifies', async () => {
    const a = createTokenService({ secret })
    const b = createTokenService({ secret })
    const { token } = await a.signAccess(subject)
    expect((await b.verifyAccess(token)).user_id).toBe('u_1')
  })

  test('an instance with another secret refuses it as bad_signature', async () => {
    const a = createTokenService({ secret })
    const b = createTokenService({ secret: `${secret}-rotated` })
    const { token } = await a.signAccess(subject)
    expectTokenInvalid(await refusal(b.verifyAccess(token)), 'bad_signature')
  })

  test('constructor refuses a secret under 32 bytes', () => {
    expect(() => createTokenService({ secret: 'x'.repeat(31) })).toThrow(/32 bytes/)
    expect(() => createTokenService({ secret: '' })).toThrow()
    expect(() => createTokenService({ secret: 'é'.repeat(16) })).not.toThrow() // 32 bytes in UTF-8
  })

  test('signAccess refuses to mint a token verify would refuse', async () => {
    const { svc } = clocked()
    expect(await rejectionOf(svc.signAccess({ ...subject, user_id: '' }))).toBeInstanceOf(TypeError)
    expect(await rejectionOf(svc.signAccess({ ...subject, ttlS: 0 }))).toBeInstanceOf(TypeError)
    expect(await rejectionOf(svc.signAccess({ ...subject, roles: [1] as unknown as string[] }))).toBeInstanceOf(TypeError)
  })

  test('maxTokenBytes is 8192', () => {
    expect(createTokenService({ secret }).maxTokenBytes).toBe(8192)
  })
})

describe('clock', () => {
  test('expiry honours the 5 s tolerance at the edge, and says "expired"', async () => {
    const { svc, clock } = clocked()
    const { token, exp } = await svc.signAccess({ ...subject, ttlS: 60 })
    clock.s = exp + 4
    expect((await svc.verifyAccess(token)).user_id).toBe('u_1')
    clock.s = exp + 5
    const err = await refusal(svc.verifyAccess(token))
    expectTokenInvalid(err, 'expired')
    expect(err.message).toBe('Token expired')
  })

  test('a token from a clock 5 s ahead is accepted, 6 s ahead is not yet valid', async () => {
    const { svc, clock } = clocked()
    const { token } = await svc.signAccess(subject)
    clock.s = T0 - 5
    expect((await svc.verifyAccess(token)).user_id).toBe('u_1')
    clock.s = T0 - 6
    expectTokenInvalid(await refusal(svc.verifyAccess(token)), 'not_yet_valid')
  })

  test('expired and bad signature are told apart', async () => {
    const { svc, clock } = clocked()
    const { token } = await svc.signAccess({ ...subject, ttlS: 60 })
    const forged = token.slice(0, token.lastIndexOf('.') + 1) + 'A'.repeat(43)
    clock.s = T0 + 3600
    expectTokenInvalid(await refusal(svc.verifyAccess(token)), 'expired')
    expectTokenInvalid(await refusal(svc.verifyAccess(forged)), 'bad_signature')
  })
})

describe('attack matrix', async () => {
  const options = { secret, issuer, audience, validClaims: subject, nowS: T0 }
  const cases = await jwtAttackCases(options)
  const { svc } = clocked()

  test('the hand-made control token is accepted (so each case fails for its own reason)', async () => {
    expect((await svc.verifyAccess(controlToken(options))).user_id).toBe('u_1')
  })

  test('the matrix is broad', () => {
    expect(cases.length).toBeGreaterThanOrEqual(60)
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length)
  })

  test.each(cases.map((c) => [c.name, c] as const))('refuses: %s', async (_name, c) => {
    const err = await refusal(svc.verifyAccess(c.token))
    expectTokenInvalid(err, c.reason)
    // No jose internals: not its messages, codes or stack.
    expect(err.message).not.toMatch(/jose|ERR_|claim|JWS|JWT|alg/i)
    expect(JSON.stringify(err.details)).not.toMatch(/ERR_|jose/i)
    expect(err.stack ?? '').not.toContain('node_modules/jose')
  })

  test('a non-string token is refused as malformed', async () => {
    expectTokenInvalid(await refusal(svc.verifyAccess(undefined as unknown as string)), 'malformed')
    expectTokenInvalid(await refusal(svc.verifyAccess({} as unknown as string)), 'malformed')
  })
})

describe('timing (informational)', () => {
  test('µs per verify', async () => {
    const svc = createTokenService({ secret })
    const { token } = await svc.signAccess(subject)
    const bad = token.slice(0, -4) + 'AAAA'
    const measure = async (t: string, n: number) => {
      for (let i = 0; i < 500; i++) await svc.verifyAccess(t).catch(() => {})
      const start = Bun.nanoseconds()
      for (let i = 0; i < n; i++) await svc.verifyAccess(t).catch(() => {})
      return (Bun.nanoseconds() - start) / n / 1000
    }
    const ok = await measure(token, 20_000)
    const refused = await measure(bad, 20_000)
    console.log(`verifyAccess: ${ok.toFixed(1)} µs valid, ${refused.toFixed(1)} µs bad signature (${token.length} B token)`)
  })
})
