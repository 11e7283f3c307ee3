/**
 * Redis-backed store shared by every gateway instance.
 *
 * Failing fast is the point: auth must answer 503 within a second when Redis is away, not wait. So nothing is
 * queued while disconnected (a call then rejects at once), every call is bounded by a timeout, both
 * connections reconnect forever in the background with a backoff capped at 1 s, and every failure becomes a
 * StoreUnavailableError.
 *
 * Two connections, as Redis requires for pub/sub: commands go through Bun's built-in client, subscriptions
 * through node-redis (which re-subscribes after a reconnect). Bun's client costs a fraction of node-redis's
 * CPU per command when commands are not already batched by load (bench/redis-clients.ts).
 */
import { RedisClient as BunRedisClient } from 'bun'
import { createClient } from 'redis'
import {
  callSafely,
  checkIncrement,
  checkTtl,
  StoreUnavailableError,
  type MessageHandler,
  type SetOptions,
  type Store,
  type StoreLogger,
  type SubscribeOptions,
} from './types.ts'

export interface RedisStoreOptions {
  url: string
  logger?: StoreLogger
  /** upper bound for one call, in ms. @default 500 */
  commandTimeoutMs?: number
}

type RedisClient = ReturnType<typeof createClient>

const CONNECT_TIMEOUT_MS = 1_000
/** how long createRedisStore waits for the first connection before returning a still-reconnecting store */
const FIRST_CONNECT_WAIT_MS = 1_000
const MAX_RECONNECT_DELAY_MS = 1_000

/**
 * Applies the TTL only to a new key (or one without a TTL), in the same round trip as the add.
 * KEYS[i] gets ARGV[2i-1] added and, when it has no TTL, ARGV[2i] ms of TTL; returns value, ttl pairs.
 */
const INCR_SCRIPT = `
local out = {}
for i, key in ipairs(KEYS) do
  local value = redis.call('INCRBY', key, ARGV[2 * i - 1])
  local ttl = redis.call('PTTL', key)
  local want = tonumber(ARGV[2 * i])
  if ttl == -1 and want > 0 then
    redis.call('PEXPIRE', key, want)
    ttl = want
  end
  out[2 * i - 1] = value
  out[2 * i] = ttl
end
return out`
/**
 * adds ARGV[2..] to the set KEYS[1] and, unless ARGV[1] is '0', sets its TTL to ARGV[1] ms, atomically; returns
 * how many were new and the set's size then
 */
const SADD_SCRIPT = `
local added = redis.call('SADD', KEYS[1], unpack(ARGV, 2))
if ARGV[1] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {added, redis.call('SCARD', KEYS[1])}`
/**
 * appends ARGV[2] to KEYS[1] and sets its TTL to ARGV[1] ms, atomically. Lua copies its arguments slowly: a
 * 40 KB value costs Redis ~90 µs here against ~2 µs for a plain SET, so a first write of a large value is a SET.
 */
const APPEND_TTL_SCRIPT = `
redis.call('APPEND', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`

interface Subscription {
  handler: MessageHandler
  onReconnect?: () => void
  onDisconnect?: () => void
}
interface ChannelState {
  subscriptions: Set<Subscription>
  /** the SUBSCRIBE of the first subscriber; later ones wait for it */
  subscribed: Promise<void>
}

export async function createRedisStore(opts: RedisStoreOptions): Promise<Store> {
  const commandTimeoutMs = opts.commandTimeoutMs ?? 500
  const { logger } = opts
  let closed = false
  let closing: Promise<void> | undefined

  const commands = commandConnection(opts.url)
  const client = commands.client
  const subscriber = buildSubscriber(opts.url)
  const channels = new Map<string, ChannelState>()

  watchConnection(subscriber, 'pubsub', notifyResubscribed, notifyLost)

  // connect() settles only once connected (it retries forever), so bound the wait and carry on in the background
  const connected = Promise.all([commands.firstConnect, subscriber.connect()])
  connected.catch(() => {}) // rejects only when closed before ever connecting
  await settledWithin(connected, FIRST_CONNECT_WAIT_MS)

  /** Bun's client, reconnected here (its own retries give up after a while): same backoff and logging as pub/sub. */
  function commandConnection(url: string) {
    let c: BunRedisClient
    try {
      c = new BunRedisClient(url, { autoReconnect: false, enableOfflineQueue: false, connectionTimeout: CONNECT_TIMEOUT_MS })
    } catch (err) {
      throw new StoreUnavailableError('connect', { cause: err })
    }
    let state: 'connecting' | 'ready' | 'down' = 'connecting'
    let retries = 0
    let retry: ReturnType<typeof setTimeout> | undefined
    const first = Promise.withResolvers<void>()
    c.onconnect = () => {
      const recovered = state === 'down'
      state = 'ready'
      retries = 0
      first.resolve()
      if (closed) return
      logger?.info({ connection: 'commands' }, recovered ? 'redis connection restored' : 'redis connected')
    }
    c.onclose = (err) => {
      if (closed) return
      if (state !== 'down') {
        logger?.warn({ connection: 'commands', err }, state === 'ready' ? 'redis connection lost; reconnecting' : 'redis unreachable; retrying')
        state = 'down'
      }
      clearTimeout(retry)
      retry = setTimeout(() => {
        if (!closed) c.connect().catch(() => {}) // a failure comes back through onclose
      }, reconnectDelay(retries++))
    }
    c.connect().catch(() => {})
    return {
      client: c,
      firstConnect: first.promise,
      close() {
        clearTimeout(retry)
        c.close()
      },
    }
  }

  function buildSubscriber(url: string): RedisClient {
    try {
      return createClient({
        url,
        disableOfflineQueue: true, // a call while disconnected must fail, not wait for the reconnect
        socket: { connectTimeout: CONNECT_TIMEOUT_MS, reconnectStrategy: reconnectDelay },
        // run() bounds every call itself (node-redis's own default adds an AbortSignal.timeout per command)
        commandOptions: { timeout: 0 },
      })
    } catch (err) {
      throw new StoreUnavailableError('connect', { cause: err })
    }
  }

  /** Logs each transition once (not every failed attempt); the listener also keeps 'error' from crashing us. */
  function watchConnection(c: RedisClient, connection: string, onRecovered?: () => void, onLost?: () => void): void {
    let state: 'connecting' | 'ready' | 'down' = 'connecting'
    c.on('error', function onRedisError(err: unknown) {
      if (closed || state === 'down') return
      const wasReady = state === 'ready'
      state = 'down'
      logger?.warn({ connection, err }, wasReady ? 'redis connection lost; reconnecting' : 'redis unreachable; retrying')
      if (wasReady) onLost?.()
    })
    c.on('ready', function onRedisReady() {
      const recovered = state === 'down'
      state = 'ready'
      if (closed) return
      logger?.info({ connection }, recovered ? 'redis connection restored' : 'redis connected')
      if (recovered) onRecovered?.()
    })
  }

  /** The subscriber is ready again only after node-redis re-subscribed, so tell subscribers what they missed. */
  function notifyResubscribed(): void {
    for (const [channel, state] of channels) {
      for (const s of state.subscriptions) if (s.onReconnect) safely(s.onReconnect, channel)
    }
  }

  /** The subscription is gone until the reconnect: whoever relies on its messages must stop trusting them now. */
  function notifyLost(): void {
    for (const [channel, state] of channels) {
      for (const s of state.subscriptions) if (s.onDisconnect) safely(s.onDisconnect, channel)
    }
  }

  function onMessage(message: string, channel: string): void {
    const state = channels.get(channel)
    if (!state) return // a late SUBSCRIBE of a channel nobody wants any more
    for (const s of [...state.subscriptions]) safely(() => s.handler(message), channel)
  }

  function safely(fn: () => unknown, channel: string): void {
    callSafely(fn, (err) => logger?.warn({ err, channel }, 'store subscriber failed'))
  }

  /**
   * The calls in flight, oldest first. Every call has the same timeout, so this is also the order they time
   * out in: one timer, due when the oldest unsettled call is, watches them all (instead of a timer, a timeout
   * promise and a race per call).
   */
  const inFlight: Array<{ op: string; deadline: number; settled: boolean; reject(err: unknown): void }> = []
  let oldest = 0
  let watchdog: ReturnType<typeof setTimeout> | undefined

  function watch(): void {
    const at = performance.now()
    while (oldest < inFlight.length) {
      const call = inFlight[oldest]!
      if (!call.settled) {
        if (call.deadline > at) break
        call.settled = true
        call.reject(new StoreUnavailableError(call.op, { cause: new Error(`${call.op} timed out after ${commandTimeoutMs} ms`) }))
      }
      oldest++
    }
    if (oldest === inFlight.length) {
      inFlight.length = 0
      oldest = 0
      watchdog = undefined
      return
    }
    if (oldest >= 1024) {
      inFlight.splice(0, oldest)
      oldest = 0
    }
    watchdog = setTimeout(watch, inFlight[oldest]!.deadline - at)
  }

  /** Every call goes through here: bounded in time, and any failure becomes StoreUnavailableError. */
  function run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (closed) return Promise.reject(new StoreUnavailableError(op, { cause: new Error('store closed') }))
    const { promise, resolve, reject } = Promise.withResolvers<T>()
    const call = { op, deadline: performance.now() + commandTimeoutMs, settled: false, reject }
    const failed = (err: unknown) => {
      call.settled = true
      reject(err instanceof StoreUnavailableError ? err : new StoreUnavailableError(op, { cause: err }))
    }
    try {
      fn().then((value) => {
        call.settled = true
        resolve(value)
      }, failed)
    } catch (err) {
      failed(err)
      return promise
    }
    inFlight.push(call)
    watchdog ??= setTimeout(watch, commandTimeoutMs)
    return promise
  }

  function requireSubscriber(): void {
    // SUBSCRIBE bypasses node-redis's offline check and would sit in its queue until the reconnect
    if (!subscriber.isReady) throw new Error('pub/sub connection is not ready')
  }

  async function unsubscribeChannel(channel: string): Promise<void> {
    if (closed) return
    try {
      await run('unsubscribe', () => subscriber.unsubscribe(channel, onMessage))
    } catch (err) {
      // harmless: node-redis drops the channel once it can, and onMessage ignores it meanwhile
      logger?.warn({ err, channel }, 'redis unsubscribe failed')
    }
  }

  async function shutdown(c: RedisClient): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined
    // close() waits for pending replies; a hung server must not hold shutdown hostage
    const forced = new Promise<void>((resolve) => {
      timer = setTimeout(() => resolve(c.destroy()), commandTimeoutMs)
    })
    try {
      await Promise.race([c.close(), forced])
    } catch {
      c.destroy() // close() refuses a client that is not open; destroy() is idempotent
    } finally {
      clearTimeout(timer)
    }
  }

  /** EVALSHA sends 40 bytes instead of the script on every call; EVAL loads it when Redis lost it (restart). */
  function script(source: string) {
    const sha = new Bun.CryptoHasher('sha1').update(source).digest('hex')
    return (keys: string[], args: string[]): Promise<unknown> => {
      const tail = [String(keys.length), ...keys, ...args]
      return client.send('EVALSHA', [sha, ...tail]).catch((err: unknown) => {
        if (err instanceof Error && err.message.includes('NOSCRIPT')) return client.send('EVAL', [source, ...tail])
        throw err
      })
    }
  }
  const incrScript = script(INCR_SCRIPT)
  const sAddScript = script(SADD_SCRIPT)
  const appendTtlScript = script(APPEND_TTL_SCRIPT)

  /** SADD_SCRIPT (ttlMs 0: no TTL): [how many were new, the set's size then] */
  function addMembers(op: string, key: string, members: string[], ttlMs: number): Promise<[number, number]> {
    return run(op, () => sAddScript([key], [String(ttlMs), ...members])) as Promise<[number, number]>
  }

  async function incrMany(entries: ReadonlyArray<{ key: string; by?: number; ttlMs?: number }>) {
    if (entries.length === 0) return []
    const args: string[] = []
    for (const { by = 1, ttlMs } of entries) {
      checkIncrement(by)
      args.push(String(by), String(checkTtl(ttlMs) ?? 0))
    }
    const reply = (await run('incr', () => incrScript(entries.map((e) => e.key), args))) as number[]
    return entries.map((_, i) => ({ value: reply[2 * i]!, ttlMs: reply[2 * i + 1]! }))
  }

  return {
    kind: 'redis',

    get: (key) => run('get', () => client.get(key)),

    async set(key, value, options: SetOptions = {}) {
      const ttlMs = checkTtl(options.ttlMs)
      const args = [key, value]
      if (ttlMs !== undefined) args.push('PX', String(ttlMs))
      if (options.onlyIfAbsent) args.push('NX')
      return (await run('set', () => client.send('SET', args))) !== null
    },

    async del(...keys) {
      if (keys.length === 0) return 0
      return (await run('del', () => client.send('DEL', keys))) as number
    },

    async exists(key) {
      return ((await run('exists', () => client.send('EXISTS', [key]))) as number) > 0
    },

    async incr(key, by = 1, ttlMs) {
      const [result] = await incrMany([{ key, by, ttlMs }])
      return result!
    },

    incrMany,

    async mGet(keys) {
      if (keys.length === 0) return []
      return (await run('mGet', () => client.send('MGET', keys))) as Array<string | null>
    },

    async sAdd(key, members, ttlMs) {
      const ttl = checkTtl(ttlMs) ?? 0
      if (members.length === 0) return 0 // SADD without members is a syntax error
      return (await addMembers('sAdd', key, members, ttl))[0]
    },

    async sAddCard(key, members, ttlMs) {
      const ttl = checkTtl(ttlMs) ?? 0
      if (members.length === 0) return (await run('sAddCard', () => client.send('SCARD', [key]))) as number
      return (await addMembers('sAddCard', key, members, ttl))[1]
    },

    async sRem(key, members) {
      if (members.length === 0) return 0
      return (await run('sRem', () => client.send('SREM', [key, ...members]))) as number
    },

    sMembers: async (key) => (await run('sMembers', () => client.send('SMEMBERS', [key]))) as string[],

    sCard: async (key) => (await run('sCard', () => client.send('SCARD', [key]))) as number,

    async append(key, value, ttlMs) {
      const ttl = checkTtl(ttlMs)
      if (ttl === undefined) await run('append', () => client.send('APPEND', [key, value]))
      else await run('append', () => appendTtlScript([key], [String(ttl), value]))
    },

    publish: async (channel, message) => (await run('publish', () => client.send('PUBLISH', [channel, message]))) as number,

    async subscribe(channel, handler, options: SubscribeOptions = {}) {
      await run('subscribe', async () => requireSubscriber())
      let state = channels.get(channel)
      if (!state) {
        const created: ChannelState = {
          subscriptions: new Set(),
          subscribed: run('subscribe', async () => {
            requireSubscriber()
            await subscriber.subscribe(channel, onMessage)
          }),
        }
        created.subscribed.catch(() => {
          if (channels.get(channel) === created && created.subscriptions.size === 0) channels.delete(channel)
        })
        channels.set(channel, (state = created))
      }
      await state.subscribed
      // a fresh object per call: subscribing one function twice gives two independent subscriptions
      const subscription: Subscription = { handler, onReconnect: options.onReconnect, onDisconnect: options.onDisconnect }
      const joined = state
      joined.subscriptions.add(subscription)
      let done = false
      return async function unsubscribe() {
        if (done) return
        done = true
        joined.subscriptions.delete(subscription)
        if (joined.subscriptions.size > 0 || channels.get(channel) !== joined) return
        channels.delete(channel)
        await unsubscribeChannel(channel)
      }
    },

    ping: () =>
      run('ping', async () => {
        requireSubscriber() // without pub/sub, invalidations between instances are lost: not ready
        await client.send('PING', [])
      }),

    close() {
      if (!closing) {
        closed = true
        channels.clear()
        commands.close()
        closing = shutdown(subscriber)
      }
      return closing
    },
  }
}

/** Reconnect forever: quick first retries, then one attempt a second; jitter spreads many instances out. */
function reconnectDelay(retries: number): number {
  return Math.min(50 * 2 ** retries + Math.floor(Math.random() * 50), MAX_RECONNECT_DELAY_MS)
}

/** Waits for p up to ms without leaving a timer behind; never rejects. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  await Promise.race([p.catch(() => {}), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))])
  clearTimeout(timer)
}
