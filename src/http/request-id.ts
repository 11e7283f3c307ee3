/** X-Request-ID: the client's when it is a sane token, otherwise a fresh one. */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/

export function requestIdFrom(headers: Headers): string {
  const given = headers.get('x-request-id')
  return given && SANE_ID.test(given) ? given : crypto.randomUUID()
}
