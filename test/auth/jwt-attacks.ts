/**
 * The JWT attack matrix: tokens an access-token verifier must refuse, crafted with jose and by hand.
 * Shared so the same cases can be replayed against the service directly and through HTTP.
 *
 * `reason` is what `verifyAccess` reports in `details.reason` for the case (a stricter verifier in front,
 * e.g. an HTTP layer, may refuse earlier; callers replaying through HTTP should assert only the 401).
 */
import { createHash, createHmac, randomUUID } from 'node:crypto'
import { EncryptJWT, FlattenedSign, GeneralSign, SignJWT, exportSPKI, generateKeyPair } from 'jose'

export interface JwtAttackOptions {
  secret: string
  issuer: string
  audience: string
  /** The subject's claims (user_id, username, tenant_id, session_id, roles, scopes …); iss/aud/jti/iat/nbf/exp are added. */
  validClaims: Record<string, unknown>
  /** Clock in seconds; @default now */
  nowS?: number
}

export interface JwtAttackCase {
  name: string
  token: string
  reason: string
}

const b64url = (v: string | Uint8Array) => Buffer.from(v).toString('base64url')
const json = (v: unknown) => b64url(JSON.stringify(v))
const HS256 = { alg: 'HS256', typ: 'JWT' }

/** HMAC-sign `header.payload` by hand; `rawPayload` lets a case put non-JSON-serialisable text in the payload. */
export function hmacToken(
  header: Record<string, unknown>,
  payload: Record<string, unknown> | string,
  secret: string | Uint8Array,
  hash: 'sha256' | 'sha384' | 'sha512' = 'sha256',
): string {
  const input = `${json(header)}.${typeof payload === 'string' ? b64url(payload) : json(payload)}`
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`
}

/** The claims every attack starts from; a token built from them with `hmacToken` must be accepted. */
export function baseClaims(o: JwtAttackOptions): Record<string, unknown> {
  const now = o.nowS ?? Math.floor(Date.now() / 1000)
  return { jti: randomUUID(), iat: now, nbf: now, exp: now + 600, ...o.validClaims, iss: o.issuer, aud: o.audience }
}

/** A valid token made by the same hand-rolled path as the attacks: the control that proves the cases fail for their stated reason. */
export function controlToken(o: JwtAttackOptions): string {
  return hmacToken(HS256, baseClaims(o), o.secret)
}

export async function jwtAttackCases(o: JwtAttackOptions): Promise<JwtAttackCase[]> {
  const { secret, issuer, audience } = o
  const base = baseClaims(o)
  const now = base.iat as number
  const without = (...names: string[]) => Object.fromEntries(Object.entries(base).filter(([k]) => !names.includes(k)))
  const signed = (payload: Record<string, unknown> | string, header: Record<string, unknown> = HS256) =>
    hmacToken(header, payload, secret)
  const valid = signed(base)
  const [h, p, s] = valid.split('.') as [string, string, string]
  const key = new TextEncoder().encode(secret)

  const rsa = await generateKeyPair('RS256', { extractable: true })
  const rsaPem = await exportSPKI(rsa.publicKey)
  const ec = await generateKeyPair('ES256')
  const jose = (alg: string, signingKey: Parameters<SignJWT['sign']>[0], claims = base) =>
    new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).sign(signingKey)

  const cases: Array<[string, string | Promise<string>, string]> = [
    // Algorithm attacks
    ['alg none, trailing dot', `${json({ alg: 'none', typ: 'JWT' })}.${p}.`, 'malformed'],
    ['alg none, no signature part', `${json({ alg: 'none', typ: 'JWT' })}.${p}`, 'malformed'],
    ['alg none, with the HS256 signature', `${json({ alg: 'none', typ: 'JWT' })}.${p}.${s}`, 'alg_not_allowed'],
    ['alg NONE (case variant)', `${json({ alg: 'NONE', typ: 'JWT' })}.${p}.${s}`, 'alg_not_allowed'],
    ['alg hs256 (lower case) signed with the secret', signed(base, { alg: 'hs256', typ: 'JWT' }), 'alg_not_allowed'],
    ['alg missing, signed with the secret', signed(base, { typ: 'JWT' }), 'malformed'],
    ['HS384 signed with the secret (jose)', jose('HS384', key), 'alg_not_allowed'],
    ['HS512 signed with the secret (jose)', jose('HS512', key), 'alg_not_allowed'],
    ['HS512 signed with the secret (by hand)', hmacToken({ alg: 'HS512', typ: 'JWT' }, base, secret, 'sha512'), 'alg_not_allowed'],
    ['RS256 signed with a generated RSA key', jose('RS256', rsa.privateKey), 'alg_not_allowed'],
    ['ES256 signed with a generated EC key', jose('ES256', ec.privateKey), 'alg_not_allowed'],
    ['key confusion: HS256 keyed with the RSA public PEM', hmacToken(HS256, base, rsaPem), 'bad_signature'],
    ['key confusion: header RS256, HMAC keyed with the RSA public PEM', hmacToken({ alg: 'RS256', typ: 'JWT' }, base, rsaPem), 'alg_not_allowed'],
    // Signature attacks
    ['tampered payload, original signature', `${h}.${json({ ...base, roles: ['admin', 'super_admin'] })}.${s}`, 'bad_signature'],
    ['tampered tenant_id, original signature', `${h}.${json({ ...base, tenant_id: 'other-tenant' })}.${s}`, 'bad_signature'],
    ['stripped signature', `${h}.${p}.`, 'malformed'],
    ['signature from another secret', hmacToken(HS256, base, `${secret}-but-not-quite-the-same`), 'bad_signature'],
    ['signature truncated', `${h}.${p}.${s.slice(0, 20)}`, 'bad_signature'],
    ['signature of another token', `${h}.${p}.${signed({ ...base, jti: randomUUID() }).split('.')[2]}`, 'bad_signature'],
    // Header extensions
    ['crit header with an unknown extension', signed(base, { ...HS256, crit: ['exp'], exp: 1 }), 'malformed'],
    ['crit b64 true (understood by jose, not by us)', signed(base, { ...HS256, crit: ['b64'], b64: true }), 'malformed'],
    ['b64 false, unencoded payload', unencodedPayload(base, secret), 'malformed'],
    // Required claims
    ['missing exp', signed(without('exp')), 'claims'],
    ['missing iat', signed(without('iat')), 'claims'],
    ['missing jti', signed(without('jti')), 'claims'],
    ['missing iss', signed(without('iss')), 'claims'],
    ['missing aud', signed(without('aud')), 'claims'],
    ['missing user_id', signed(without('user_id')), 'claims'],
    ['empty user_id', signed({ ...base, user_id: '' }), 'claims'],
    ['numeric user_id', signed({ ...base, user_id: 42 }), 'claims'],
    ['array user_id', signed({ ...base, user_id: ['a', 'b'] }), 'claims'],
    ['missing tenant_id', signed(without('tenant_id')), 'claims'],
    ['missing session_id', signed(without('session_id')), 'claims'],
    ['roles is a string', signed({ ...base, roles: 'admin' }), 'claims'],
    ['roles holds a non-string', signed({ ...base, roles: ['user', { role: 'admin' }] }), 'claims'],
    ['scopes is an object', signed({ ...base, scopes: { '*': true } }), 'claims'],
    ['empty jti', signed({ ...base, jti: '' }), 'claims'],
    ['numeric jti', signed({ ...base, jti: 7 }), 'claims'],
    ['jti too long (129 chars)', signed({ ...base, jti: 'j'.repeat(129) }), 'claims'],
    // Time
    ['expired beyond tolerance', signed({ ...base, iat: now - 3660, nbf: now - 3660, exp: now - 60 }), 'expired'],
    ['nbf in the future', signed({ ...base, nbf: now + 120, exp: now + 720 }), 'not_yet_valid'],
    ['iat in the future (no nbf)', signed({ ...without('nbf'), iat: now + 120, exp: now + 720 }), 'not_yet_valid'],
    ['exp as a string', signed({ ...base, exp: String(now + 600) }), 'claims'],
    ['exp of 1e400 (Infinity once parsed)', signed(JSON.stringify(base).replace(/"exp":\d+/, '"exp":1e400')), 'claims'],
    ['fractional exp', signed({ ...base, exp: now + 600.5 }), 'claims'],
    // Issuer and audience
    ['wrong iss', signed({ ...base, iss: 'someone-else' }), 'claims'],
    ['wrong aud', signed({ ...base, aud: `${audience}-admin` }), 'claims'],
    ['aud as an array that includes ours', signed({ ...base, aud: [audience, 'other-api'] }), 'claims'],
    [
      'token for another audience, properly issued with the secret (jose)',
      new SignJWT(without('aud', 'iss', 'jti', 'iat', 'exp', 'nbf'))
        .setProtectedHeader(HS256).setIssuer(issuer).setAudience('another-service').setJti(randomUUID())
        .setIssuedAt(now).setExpirationTime(now + 600).sign(key),
      'claims',
    ],
    // Size and shape
    ['oversized (> 8 KB) but otherwise valid', signed({ ...base, pad: 'x'.repeat(9000) }), 'too_large'],
    ['empty string', '', 'malformed'],
    ['abc', 'abc', 'malformed'],
    ['a.b.c', 'a.b.c', 'malformed'],
    ['...', '...', 'malformed'],
    ['non-base64 segments', '!!!.@@@.###', 'malformed'],
    ['standard base64 padding', `${h}=.${p}.${s}`, 'malformed'],
    ['leading space', ` ${valid}`, 'malformed'],
    ['trailing newline', `${valid}\n`, 'malformed'],
    ['Bearer prefix left on', `Bearer ${valid}`, 'malformed'],
    ['four segments', `${valid}.${s}`, 'malformed'],
    ['header is not JSON', `${b64url('not json')}.${p}.${s}`, 'malformed'],
    ['header is a JSON string', `${json('HS256')}.${p}.${s}`, 'malformed'],
    ['payload is not JSON, signed', signed('not json'), 'malformed'],
    ['payload is a JSON array, signed', signed(JSON.stringify([base])), 'malformed'],
    [
      'JWE (5 parts) encrypted under a key derived from the secret',
      new EncryptJWT(base).setProtectedHeader({ alg: 'dir', enc: 'A256GCM' }).encrypt(createHash('sha256').update(secret).digest()),
      'malformed',
    ],
    ['JWS flattened JSON serialisation', flattened(base, key), 'malformed'],
    ['JWS general JSON serialisation', general(base, key), 'malformed'],
  ]
  return Promise.all(cases.map(async ([name, token, reason]) => ({ name, token: await token, reason })))
}

/** RFC 7797 unencoded payload: header.{raw JSON}.sig. Dots inside the JSON would split it further, which is also refused. */
function unencodedPayload(claims: Record<string, unknown>, secret: string): string {
  const header = json({ alg: 'HS256', b64: false, crit: ['b64'] })
  const raw = JSON.stringify(claims)
  return `${header}.${raw}.${createHmac('sha256', secret).update(`${header}.${raw}`).digest('base64url')}`
}

async function flattened(claims: Record<string, unknown>, key: Uint8Array): Promise<string> {
  const jws = await new FlattenedSign(new TextEncoder().encode(JSON.stringify(claims))).setProtectedHeader(HS256).sign(key)
  return JSON.stringify(jws)
}

async function general(claims: Record<string, unknown>, key: Uint8Array): Promise<string> {
  const jws = await new GeneralSign(new TextEncoder().encode(JSON.stringify(claims)))
    .addSignature(key).setProtectedHeader(HS256).sign()
  return JSON.stringify(jws)
}
