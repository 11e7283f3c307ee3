/**
 * Every store key and pub/sub channel name is built here, so the key space can be read in one place.
 *
 * Shape: `vh:<area>:...` for global keys, `vh:t:<tenant>:<area>:...` for tenant-owned ones. Each part is
 * URI-encoded, so ids that contain `:` (request ids may) cannot make two different keys collide.
 * The TTL each caller is expected to pass is stated next to the key; the store never picks one itself.
 */

const PREFIX = 'vh'

/** the characters encodeURIComponent leaves alone: such a part is already its own encoding */
const UNRESERVED = /^[A-Za-z0-9_.!~*'()-]+$/

function part(value: string | number): string {
  const s = String(value)
  if (s.length === 0) throw new RangeError('empty store key part')
  // keys are built on every authenticated request; most parts (ids, uuids) need no encoding
  if (UNRESERVED.test(s)) return s
  return s.isWellFormed() ? encodeURIComponent(s) : encodeLoneSurrogates(s)
}

const LONE_SURROGATE = /([\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF])/

/**
 * encodeURIComponent throws on a lone surrogate (a client can send one as `\ud800` in JSON); such a unit
 * becomes `%u` and its four hex digits, which encodeURIComponent never produces, so keys stay distinct.
 */
function encodeLoneSurrogates(s: string): string {
  return s
    .split(LONE_SURROGATE)
    .map((piece, i) => (i % 2 === 1 ? `%u${piece.charCodeAt(0).toString(16).padStart(4, '0')}` : encodeURIComponent(piece)))
    .join('')
}

function key(...parts: Array<string | number>): string {
  let out = PREFIX
  for (const p of parts) out += `:${part(p)}`
  return out
}

const REVOCATIONS_LOADED = key('auth', 'revocations-loaded')

function tenantKey(tenantId: string, ...parts: Array<string | number>): string {
  return key('t', tenantId, ...parts)
}

export const keys = {
  /** A revoked access token's jti. TTL: the token's remaining lifetime (exp − now), so it dies with the token. */
  revokedJti: (jti: string) => key('auth', 'revoked', jti),

  /**
   * A revoked login session (logout or refresh-token reuse): every token of it is refused.
   * TTL: the refresh-token lifetime (7 d by default).
   */
  revokedSession: (tenantId: string, sessionId: string) => tenantKey(tenantId, 'auth', 'revoked-session', sessionId),

  /**
   * Present while the store holds every durable revocation (loaded from Postgres). Its absence means the
   * store lost its data (a Redis restart) and the denylist must be reloaded before any token is trusted.
   * No TTL.
   */
  revocationsLoaded: () => REVOCATIONS_LOADED,

  /** Single-use voice ticket → JSON of the principal it was issued to. TTL: 60 s; consumed with del() === 1. */
  voiceTicket: (ticket: string) => key('voice', 'ticket', ticket),

  /**
   * Fixed-window rate-limit counter, used with incr(). TTL: the window length, set once at creation.
   * scope names the limit (e.g. `login`, `chat`), id whom it counts (user, key, IP), windowStart its epoch ms.
   */
  rateLimit: (scope: string, id: string, windowStart: number) => key('rl', scope, id, windowStart),

  /** Cached effective permissions of a user. TTL: 60 s — a backstop; changes are pushed on channels.invalidate(). */
  permissions: (tenantId: string, userId: string) => tenantKey(tenantId, 'perm', userId),

  /**
   * A chat stream's events for replay and resume from any instance: their SSE texts back to back (id = position).
   * Written while another instance follows the stream and in full at its end. TTL: refreshed on every append
   * while live; CHAT_REPLAY_TTL_S (300 s) after the stream ended.
   */
  chatEvents: (tenantId: string, requestId: string) => tenantKey(tenantId, 'chat', requestId, 'events'),

  /**
   * A user's running chat streams on any instance (a set of `<request_id>|<expiry epoch ms>`), for the
   * concurrent_streams_per_user quota; members past their expiry (a crashed holder's) are ignored and removed.
   * TTL: 120 s, refreshed whenever a member is added.
   */
  chatLive: (tenantId: string, userId: string) => tenantKey(tenantId, 'chat', 'live', userId),

  /**
   * A chat stream's owner, body hash and state, claimed with set(onlyIfAbsent) for idempotency.
   * TTL: 60 s while live, refreshed by the holder; CHAT_REPLAY_TTL_S after the stream ended.
   */
  chatStream: (tenantId: string, requestId: string) => tenantKey(tenantId, 'chat', requestId, 'meta'),

  /** Present while the gateway instance with that id runs (src/store/presence.ts). TTL: 5 s, refreshed every second. */
  instanceAlive: (instanceId: string) => key('inst', instanceId, 'alive'),

  /**
   * Ids of a user's live chat streams and voice sessions on any instance (a set).
   * TTL: refresh with sAdd every ~30 s while any is live, 90 s — so a crashed instance's entries age out.
   */
  liveConnections: (tenantId: string, userId: string) => tenantKey(tenantId, 'live', userId),

  /**
   * Ids of the tenant's voice sessions that may be live, on any instance (a set), for the concurrent-session
   * limit; a member counts only while its voiceSessionAlive key exists. TTL: 24 h, refreshed by every sAdd.
   */
  voiceSessions: (tenantId: string) => tenantKey(tenantId, 'voice', 'sessions'),

  /** The same for one user's sessions. TTL: 24 h, refreshed by every sAdd. */
  voiceUserSessions: (tenantId: string, userId: string) => tenantKey(tenantId, 'voice', 'user-sessions', userId),

  /**
   * Present while a voice session is live: its holder refreshes it, so a crashed instance's sessions stop
   * counting. Value: the holder's instance id (presence: a dead holder's sessions stop counting at once). TTL: 90 s, refreshed every 30 s; deleted when the session ends.
   */
  voiceSessionAlive: (tenantId: string, sessionId: string) => tenantKey(tenantId, 'voice', 'alive', sessionId),
}

export const channels = {
  /** Cache invalidation for every instance (grants, roles, shares, user/tenant status, revocations). */
  invalidate: () => key('ch', 'invalidate'),

  /** A chat stream's event batches, published by the instance that holds it for followers on other instances. */
  chat: (tenantId: string, requestId: string) => tenantKey(tenantId, 'ch', 'chat', requestId),

  /** Chat control for every instance (cancel, watch, unwatch): only the holder of the stream acts on it. */
  chatControl: () => key('ch', 'chat-control'),

  /** Control messages for one voice session (end, revoke) to whichever instance holds its socket. */
  voice: (tenantId: string, sessionId: string) => tenantKey(tenantId, 'ch', 'voice', sessionId),

  /**
   * A voice session's events (not audio) for observers on other instances: published by its holder while a
   * remote observer has asked for them (watch on voiceControl) in the last minute.
   */
  voiceEvents: (tenantId: string, sessionId: string) => tenantKey(tenantId, 'ch', 'voice-events', sessionId),

  /** Voice control for every instance (end, watch): only the holder of the session acts on it. */
  voiceControl: () => key('ch', 'voice-control'),

  /** Questions about live connections (list, end) to every instance; each answers on the asker's reply channel. */
  liveQuery: () => key('ch', 'live-query'),
  liveReply: (instanceId: string) => key('ch', 'live-reply', instanceId),
}
