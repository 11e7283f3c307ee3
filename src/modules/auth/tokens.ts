/**
 * Access tokens: HS256 JWTs, signed and verified with jose under an explicit policy.
 *
 * `@elysiajs/jwt`'s verify() passes no options to jose (it accepts HS384/HS512 with the same secret and tokens
 * without `exp`/`jti`), so we call `jwtVerify` ourselves with the algorithm, issuer, audience and required claims
 * pinned, then check our own claims. Every failure becomes one AppError(401, 'TOKEN_INVALID') whose message is
 * fixed and whose details carry only a short `reason`: jose's messages and stacks never reach a client.
 */
import { SignJWT, jwtVerify, type JWTVerifyResult } from 'jose'
import { AppError } from '../../errors.ts'

export interface AccessClaims {
  user_id: string
  username: string
  tenant_id: string
  session_id: string
  roles: string[]
  scopes: string[]
  jti: string
  iat: number
  exp: number
  iss: string
  aud: string
  nbf?: number
}

export interface TokenServiceOptions {
  /** HMAC secret; at least 32 bytes once UTF-8 encoded. */
  secret: string
  /** @default 'voicehelper-gateway' */
  issuer?: string
  /** @default 'voicehelper-api' */
  audience?: string
  /** Access token lifetime in seconds. @default 3600 */
  accessTtlS?: number
  /** Allowed clock skew in seconds for `exp`, `nbf` and `iat`. @default 5 */
  clockToleranceS?: number
  /** Clock in milliseconds, for tests. @default Date.now */
  now?: () => number
}

export interface AccessSubject {
  user_id: string
  username: string
  tenant_id: string
  session_id: string
  roles: string[]
  scopes?: string[]
  ttlS?: number
}

export type TokenInvalidReason =
  | 'expired'
  | 'not_yet_valid'
  | 'bad_signature'
  | 'alg_not_allowed'
  | 'malformed'
  | 'claims'
  | 'too_large'

export type TokenService = ReturnType<typeof createTokenService>

const MIN_SECRET_BYTES = 32
const MAX_TOKEN_BYTES = 8192
const MAX_JTI_LENGTH = 128
/** Three non-empty base64url segments and nothing else: no padding, whitespace, JWE or JSON serialisation. */
const COMPACT_JWS = /^[\w-]+\.[\w-]+\.[\w-]+$/

export function tokenInvalid(reason: TokenInvalidReason): AppError {
  return new AppError(401, 'TOKEN_INVALID', reason === 'expired' ? 'Token expired' : 'Invalid token', { reason })
}

export function createTokenService(opts: TokenServiceOptions) {
  const secret = new TextEncoder().encode(opts.secret)
  if (secret.byteLength < MIN_SECRET_BYTES) {
    throw new Error(`JWT secret must be at least ${MIN_SECRET_BYTES} bytes (got ${secret.byteLength})`)
  }
  const issuer = opts.issuer ?? 'voicehelper-gateway'
  const audience = opts.audience ?? 'voicehelper-api'
  const accessTtlS = opts.accessTtlS ?? 3600
  const clockTolerance = opts.clockToleranceS ?? 5
  const now = opts.now ?? Date.now
  // jose re-imports a raw Uint8Array key on every call; a CryptoKey made once skips that on the hot path.
  const key = crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify'])

  async function signAccess(c: AccessSubject): Promise<{ token: string; jti: string; exp: number; expiresIn: number }> {
    const ttlS = c.ttlS ?? accessTtlS
    // never longer than accessTtlS: revocation mirrors keep a revoked session's entry only that long
    if (!Number.isSafeInteger(ttlS) || ttlS <= 0 || ttlS > accessTtlS) throw new TypeError(`ttlS must be an integer in 1..${accessTtlS}`)
    const jti = crypto.randomUUID()
    const iat = Math.floor(now() / 1000)
    const exp = iat + ttlS
    const claims = {
      user_id: c.user_id,
      username: c.username,
      tenant_id: c.tenant_id,
      session_id: c.session_id,
      roles: c.roles,
      scopes: c.scopes ?? [],
    }
    // Refuse to mint what verifyAccess would refuse: a bad subject is a bug at the call site, not a 401 later.
    if (readClaims({ ...claims, jti, iat, exp, nbf: iat, iss: issuer, aud: audience }) === undefined) {
      throw new TypeError('access token subject is invalid')
    }
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setJti(jti)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(exp)
      .setIssuer(issuer)
      .setAudience(audience)
      .sign(await key)
    return { token, jti, exp, expiresIn: ttlS }
  }

  async function verifyAccess(token: string): Promise<AccessClaims> {
    if (typeof token !== 'string') throw tokenInvalid('malformed')
    // Characters ≤ bytes in UTF-8, and anything non-ASCII fails the pattern below, so length is a safe bound.
    if (token.length > MAX_TOKEN_BYTES) throw tokenInvalid('too_large')
    if (!COMPACT_JWS.test(token)) throw tokenInvalid('malformed')
    const currentDate = new Date(now())
    let verified: JWTVerifyResult
    try {
      verified = await jwtVerify(token, await key, {
        algorithms: ['HS256'],
        issuer,
        audience,
        requiredClaims: ['exp', 'iat', 'jti', 'iss', 'aud'],
        clockTolerance,
        currentDate,
      })
    } catch (err) {
      throw tokenInvalid(reasonOf(err))
    }
    const { payload, protectedHeader: header } = verified
    // jose understands `crit: ["b64"]`; we accept no extensions at all.
    if (header.crit !== undefined || header.b64 !== undefined) throw tokenInvalid('malformed')
    const nowS = Math.floor(currentDate.getTime() / 1000)
    // jose only checks `iat` against the clock when maxTokenAge is set; a token issued in the future is not valid yet.
    if (typeof payload.iat === 'number' && payload.iat > nowS + clockTolerance) throw tokenInvalid('not_yet_valid')
    const claims = readClaims(payload)
    if (claims === undefined) throw tokenInvalid('claims')
    return claims
  }

  return { signAccess, verifyAccess, accessTtlS, maxTokenBytes: MAX_TOKEN_BYTES } as const
}

function reasonOf(err: unknown): TokenInvalidReason {
  const code = (err as { code?: unknown } | null)?.code
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'expired'
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return (err as { claim?: unknown }).claim === 'nbf' ? 'not_yet_valid' : 'claims'
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'bad_signature'
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'alg_not_allowed'
    default: // ERR_JWS_INVALID, ERR_JWT_INVALID, ERR_JOSE_NOT_SUPPORTED, and anything unforeseen
      return 'malformed'
  }
}

const isString = (v: unknown): v is string => typeof v === 'string'
const isFilled = (v: unknown): v is string => typeof v === 'string' && v.length > 0
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString)
// JSON can carry 1e400 (Infinity) or fractions; jose only checks typeof number.
const isSeconds = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0

/** Our claims, copied out of a payload jose has already verified; undefined when any is missing or ill-typed. */
function readClaims(p: Record<string, unknown>): AccessClaims | undefined {
  const { user_id, username, tenant_id, session_id, jti, iat, exp, nbf, iss, aud } = p
  const roles = p.roles ?? []
  const scopes = p.scopes ?? []
  if (!isFilled(user_id) || !isString(username) || !isFilled(tenant_id) || !isFilled(session_id)) return undefined
  if (!isStringArray(roles) || !isStringArray(scopes)) return undefined
  if (!isFilled(jti) || jti.length > MAX_JTI_LENGTH) return undefined
  if (!isSeconds(iat) || !isSeconds(exp) || exp <= iat || (nbf !== undefined && !isSeconds(nbf))) return undefined
  // jose accepts an audience array containing ours; our tokens carry exactly one.
  if (!isString(iss) || !isString(aud)) return undefined
  const claims: AccessClaims = { user_id, username, tenant_id, session_id, roles, scopes, jti, iat, exp, iss, aud }
  if (nbf !== undefined) claims.nbf = nbf
  return claims
}
