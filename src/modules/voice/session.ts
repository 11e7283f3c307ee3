/**
 * One live voice session: the relay between the client's socket and the session's upstream socket, and the
 * protocol of contract §5 on both sides. Framework-free — it is handed Bun's ServerWebSocket and a context
 * of callbacks for persistence, observers and the end of the session.
 */
import type { ServerWebSocket } from 'bun'
import type { VoiceSessionStatus } from '../../db/schema'
import { applyConfig, CAPABILITIES, parseClientMessage, type VoiceConfig } from './protocol'
import { UpstreamLink, type UpstreamEvents, type UpstreamFailure } from './upstream-link'

export type EndReason =
  | 'client_ended'
  | 'client_disconnected'
  | 'message_too_large'
  | 'idle'
  | 'shutdown'
  | 'token_revoked'
  | 'deleted'
  | 'upstream_error'
  | 'internal_error'

export const STATUS_OF: Record<EndReason, VoiceSessionStatus> = {
  client_ended: 'completed',
  client_disconnected: 'completed',
  message_too_large: 'failed',
  idle: 'expired',
  shutdown: 'cancelled',
  token_revoked: 'cancelled',
  deleted: 'cancelled',
  upstream_error: 'failed',
  internal_error: 'failed',
}

/** close code and the message sent just before it (none when the client is gone): a notice, or an error's code and text */
const CLOSING: Record<EndReason, { code: number; reason: string; message?: Record<string, unknown>; error?: [code: string, text: string] }> = {
  client_ended: { code: 1000, reason: 'session ended' },
  client_disconnected: { code: 1000, reason: 'session ended' },
  message_too_large: { code: 1009, reason: 'frame over 1 MiB' },
  idle: { code: 4408, reason: 'idle timeout' },
  shutdown: { code: 1001, reason: 'server shutting down', message: { type: 'session_ending', reason: 'shutdown', reconnect: true } },
  token_revoked: { code: 4401, reason: 'token revoked' },
  deleted: { code: 1000, reason: 'session ended by request', message: { type: 'session_ending', reason: 'deleted', reconnect: false } },
  upstream_error: { code: 1011, reason: 'algorithm service unavailable', error: ['ALGO_SERVICE_ERROR', 'The voice service is unavailable'] },
  internal_error: { code: 1011, reason: 'internal error', error: ['INTERNAL_ERROR', 'Internal error'] },
}

/** an upstream error's own code is relayed when it looks like one; otherwise the client reads ALGO_SERVICE_ERROR */
const UPSTREAM_CODE = /^[A-Z][A-Z0-9_]{0,63}$/

/** upstream events that belong to a reply (and carry its reply_id) */
const REPLY_EVENTS = new Set(['asr_final', 'retrieval_progress', 'llm_response_chunk', 'tts_audio', 'tts_complete'])
/** events of the reply being cancelled that the client must not get any more */
const SUPPRESSIBLE = new Set(['retrieval_progress', 'llm_response_chunk', 'tts_audio', 'tts_complete'])

export interface SessionCounters {
  packets: number
  bytes: number
  latencyTotalMs: number
  latencyCount: number
  asr: number
  tts: number
  errors: number
  dropped: number
}

export interface SessionContext {
  maxBufferedBytes: number
  pingIntervalMs: number
  idleTimeoutMs: number
  connectTimeoutMs: number
  /** whether a client's `config.simulate` goes upstream with the config */
  forwardSimulate: boolean
  relayed(direction: 'upstream' | 'downstream', latencyMs: number): void
  dropped(direction: 'upstream' | 'downstream', frames: number): void
  storeUserText(session: VoiceSession, text: string): void
  storeReplyText(session: VoiceSession, text: string, status: 'completed' | 'cancelled'): void
  /** an event for the session's observers (called only while `observed`) */
  publish(session: VoiceSession, text: string): void
  onEnd(session: VoiceSession, reason: EndReason): void
  onUpstreamTrouble(session: VoiceSession, kind: UpstreamFailure | 'reconnecting'): void
}

export interface SessionInit {
  id: string
  tenantId: string
  userId: string
  conversationId: string
  config: VoiceConfig
  upstreamUrl: string
  traceparent?: string
  /** the upgrade request's id: every error the client gets carries it */
  requestId: string
}

interface Reply {
  id?: string
  text: string
  done: boolean
}

export type ClientSocket = ServerWebSocket<unknown>

export class VoiceSession implements UpstreamEvents {
  readonly id: string
  readonly tenantId: string
  readonly userId: string
  readonly conversationId: string
  readonly requestId: string
  readonly startedAt = new Date()
  config: VoiceConfig
  readonly counters: SessionCounters = { packets: 0, bytes: 0, latencyTotalMs: 0, latencyCount: 0, asr: 0, tts: 0, errors: 0, dropped: 0 }
  /** observers on this instance; `remoteWatchUntil` (epoch ms) while observers elsewhere asked for events */
  localObservers = 0
  remoteWatchUntil = 0
  ended = false
  endReason: EndReason | undefined

  private audioPrefix = ''
  private sequence = 0
  private lastSeen = performance.now()
  private lastPing = performance.now()
  private readonly upstream: UpstreamLink
  private reply: Reply | undefined
  /** set by a barge-in: the reply whose remaining events are dropped */
  private suppress: { replyId?: string } | undefined
  private throttled = false
  private upstreamOpen = false
  private persisted = false
  /** what the client is sent before session_initialized waits here (that message is always the first); undefined once it went */
  private held: string[] | undefined = []

  constructor(
    private readonly client: ClientSocket,
    init: SessionInit,
    private readonly ctx: SessionContext,
  ) {
    this.id = init.id
    this.tenantId = init.tenantId
    this.userId = init.userId
    this.conversationId = init.conversationId
    this.requestId = init.requestId
    this.config = init.config
    this.buildAudioPrefix()
    this.upstream = new UpstreamLink(
      {
        url: init.upstreamUrl,
        headers: init.traceparent ? { traceparent: init.traceparent } : undefined,
        connectTimeoutMs: ctx.connectTimeoutMs,
        maxBufferedBytes: ctx.maxBufferedBytes,
      },
      this,
    )
  }

  // ---- what the upstream link reports (UpstreamEvents)

  upstreamOpened(): void {
    this.upstreamOpen = true
    this.maybeInitialize()
  }

  /** the first message on every upstream socket, a reconnected one too: the session's current config */
  upstreamGreeting(): string {
    return JSON.stringify(this.configMessage())
  }

  /** the config as the upstream hears it: ids and identity are the gateway's to say, never the client's */
  private configMessage(extra?: Record<string, unknown>): Record<string, unknown> {
    return { type: 'config', session_id: this.id, conversation_id: this.conversationId, ...this.config, ...extra }
  }

  upstreamFailed(kind: UpstreamFailure): void {
    this.ctx.onUpstreamTrouble(this, kind)
    this.end('upstream_error')
  }

  upstreamDropped(frames: number): void {
    this.counters.dropped += frames
    this.ctx.dropped('upstream', frames)
  }

  upstreamRelayed(ms: number): void {
    this.relayed('upstream', ms)
  }

  upstreamReconnecting(): void {
    this.ctx.onUpstreamTrouble(this, 'reconnecting')
    // what the lost socket was saying is gone with it
    if (this.reply && !this.reply.done) this.finishReply('cancelled')
    this.suppress = undefined
    this.toClient(this.error('ALGO_SERVICE_ERROR', 'The voice service connection dropped; reconnecting', { reconnecting: true }))
  }

  /** to this instance's observers (Bun topic); the client itself is not subscribed */
  publishLocal(topic: string, text: string): void {
    this.client.publish(topic, text)
  }

  get observed(): boolean {
    return this.localObservers > 0 || this.remoteWatchUntil > 0
  }

  /** the session's row exists: session_initialized can go once the upstream is open too */
  persistedOk(): void {
    this.persisted = true
    this.maybeInitialize()
  }

  private maybeInitialize(): void {
    const held = this.held
    if (!held || this.ended || !this.persisted || !this.upstreamOpen) return
    this.held = undefined
    this.toClient({
      type: 'session_initialized',
      session_id: this.id,
      conversation_id: this.conversationId,
      config: this.config,
      server_time: Date.now() / 1000,
      capabilities: CAPABILITIES,
    })
    for (const text of held) this.sendText(text)
  }

  // ---- client → gateway

  onClientMessage(data: string | Buffer): void {
    const at = performance.now()
    this.lastSeen = at
    if (typeof data !== 'string') return this.onAudio(data, at)
    const msg = parseClientMessage(data)
    switch (msg.type) {
      case 'config': {
        const applied = applyConfig(this.config, msg.msg)
        if ('error' in applied) return this.invalid(applied.error)
        this.config = applied.config
        this.buildAudioPrefix()
        // only the config (and, outside production, the simulator's `simulate`) goes upstream
        const simulate = this.ctx.forwardSimulate && 'simulate' in msg.msg ? { simulate: msg.msg.simulate } : undefined
        this.toUpstream(this.configMessage(simulate), at)
        this.toClient({ type: 'config_updated', session_id: this.id, config: this.config })
        return
      }
      case 'start':
      case 'stop':
        return this.toUpstream({ type: msg.type, session_id: this.id }, at)
      case 'cancel':
        return this.bargeIn(at)
      case 'ping':
        return this.toClient({ type: 'pong', session_id: this.id, server_time: Date.now() / 1000 })
      case 'end_session':
        return this.end('client_ended')
      case 'invalid':
        return this.invalid(msg.error)
    }
  }

  /** a pong or a ping from the client: it is alive */
  onClientHeartbeat(): void {
    this.lastSeen = performance.now()
  }

  /** the client's socket has room again */
  onClientDrain(): void {
    if (this.throttled && this.client.getBufferedAmount() < this.ctx.maxBufferedBytes / 2) this.throttled = false
  }

  /**
   * The client's socket closed: by the client, or by Bun for a frame over maxPayloadLength. The client reads
   * 1009 then, but Bun 1.4 tells the server 1006 with the reason "Received too big message".
   */
  onClientClose(code?: number, reason?: string): void {
    this.end(code === 1009 || reason === 'Received too big message' ? 'message_too_large' : 'client_disconnected')
  }

  /** called by the service's ticker: server ping, idle close */
  tick(now: number): void {
    if (this.ended) return
    if (now - this.lastSeen >= this.ctx.idleTimeoutMs) return this.end('idle')
    if (now - this.lastPing >= this.ctx.pingIntervalMs) {
      this.lastPing = now
      this.client.ping()
    }
  }

  private onAudio(data: Buffer, at: number): void {
    const c = this.counters
    c.packets++
    c.bytes += data.length
    const text = `${this.audioPrefix}${++this.sequence},"timestamp":${Date.now()},"audio_chunk":"${data.toString('base64')}"}`
    this.upstream.send(text, true, at)
  }

  private buildAudioPrefix(): void {
    const c = this.config
    this.audioPrefix = `{"type":"audio_chunk","session_id":${JSON.stringify(this.id)},"conversation_id":${JSON.stringify(this.conversationId)},"format":${JSON.stringify(c.format)},"sample_rate":${c.sample_rate},"channels":${c.channels},"sequence":`
  }

  private bargeIn(at: number): void {
    this.toUpstream({ type: 'cancel', session_id: this.id }, at)
    const reply = this.reply
    this.suppress = { replyId: reply?.id }
    if (reply && !reply.done) this.finishReply('cancelled')
    this.toClient({ type: 'playback_clear', session_id: this.id, ...(reply?.id !== undefined && { reply_id: reply.id }) })
  }

  private invalid(error: string): void {
    this.toClient(this.error('INVALID_MESSAGE', error))
  }

  /** an error in the contract's shape, with the session and the upgrade request's id */
  private error(code: string, error: string, extra?: Record<string, unknown>): Record<string, unknown> {
    return { type: 'error', session_id: this.id, code, error, request_id: this.requestId, ...extra }
  }

  /** the upstream's error, in the contract's shape: its code when it is one, its message when it is text */
  private upstreamError(msg: Record<string, unknown>): string {
    const code = typeof msg.code === 'string' && UPSTREAM_CODE.test(msg.code) ? msg.code : 'ALGO_SERVICE_ERROR'
    const error = typeof msg.error === 'string' && msg.error !== '' ? msg.error.slice(0, 1000) : 'The voice service reported an error'
    return JSON.stringify(this.error(code, error, typeof msg.reply_id === 'string' ? { reply_id: msg.reply_id } : undefined))
  }

  // ---- upstream → client

  /** an event from the upstream, forwarded to the client with the session's id (UpstreamEvents) */
  upstreamEvent(raw: string): void {
    const at = performance.now()
    let msg: Record<string, unknown>
    try {
      msg = JSON.parse(raw)
    } catch {
      this.counters.errors++
      return
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return
    const type = msg.type as string
    const replyId = typeof msg.reply_id === 'string' ? msg.reply_id : undefined
    if (type === 'asr_final' || (replyId !== undefined && replyId !== this.reply?.id && REPLY_EVENTS.has(type))) this.newReply(replyId)
    if (this.suppress && SUPPRESSIBLE.has(type)) {
      if (type === 'tts_audio') this.counters.tts++
      return
    }
    switch (type) {
      case 'tts_audio':
        this.counters.tts++
        if (this.client.getBufferedAmount() >= this.ctx.maxBufferedBytes) return this.dropForSlowClient()
        break
      case 'llm_response_chunk':
        if (this.reply && typeof msg.content === 'string') this.reply.text += msg.content
        break
      case 'tts_complete':
        this.finishReply('completed')
        break
      case 'asr_final':
        this.counters.asr++
        if (typeof msg.text === 'string' && msg.text !== '') this.ctx.storeUserText(this, msg.text)
        break
      case 'reply_cancelled':
        this.suppress = undefined
        if (this.reply && !this.reply.done) this.finishReply('cancelled')
        break
      case 'error':
        this.counters.errors++
        break
    }
    const text = type === 'error' ? this.upstreamError(msg) : msg.session_id === this.id ? raw : JSON.stringify({ ...msg, session_id: this.id })
    this.sendText(text)
    this.relayed('downstream', performance.now() - at)
    if (this.observed && type !== 'tts_audio') this.ctx.publish(this, text)
  }

  private newReply(id: string | undefined): void {
    if (this.reply && !this.reply.done) this.finishReply('cancelled')
    this.reply = { id, text: '', done: false }
    // a new reply starts: whatever was suppressed belonged to the one before
    if (this.suppress && this.suppress.replyId !== id) this.suppress = undefined
  }

  private finishReply(status: 'completed' | 'cancelled'): void {
    const reply = this.reply
    if (!reply || reply.done) return
    reply.done = true
    if (reply.text !== '') this.ctx.storeReplyText(this, reply.text, status)
  }

  private dropForSlowClient(): void {
    this.counters.dropped++
    this.ctx.dropped('downstream', 1)
    if (this.throttled) return
    this.throttled = true
    this.toClient({ type: 'throttle', session_id: this.id, reason: 'slow_client', buffered_bytes: this.client.getBufferedAmount() })
  }

  private relayed(direction: 'upstream' | 'downstream', ms: number): void {
    this.counters.latencyTotalMs += ms
    this.counters.latencyCount++
    this.ctx.relayed(direction, ms)
  }

  /** control and text: never dropped (Bun buffers them; the bound applies to audio) */
  private toClient(message: Record<string, unknown>): void {
    const text = JSON.stringify(message)
    this.sendText(text)
    if (this.observed) this.ctx.publish(this, text)
  }

  private sendText(text: string): void {
    if (this.held) this.held.push(text)
    else this.client.send(text)
  }

  private toUpstream(message: Record<string, unknown>, at: number): void {
    this.upstream.send(JSON.stringify(message), false, at)
  }

  // ---- the end

  /** ends the session once: last words to the client, close code, upstream closed, then the service's cleanup */
  end(reason: EndReason): void {
    if (this.ended) return
    this.ended = true
    this.endReason = reason
    this.held = undefined
    if (this.reply && !this.reply.done) this.finishReply('cancelled')
    if (reason === 'client_ended') this.upstream.send(JSON.stringify({ type: 'end_session', session_id: this.id }), false, performance.now())
    this.upstream.close()
    const closing = CLOSING[reason]
    // the client's socket is closed already for these two
    if (reason !== 'client_disconnected' && reason !== 'message_too_large') {
      try {
        const last = closing.error ? this.error(...closing.error) : closing.message && { ...closing.message, session_id: this.id }
        if (last) this.client.send(JSON.stringify(last))
        this.client.close(closing.code, closing.reason)
      } catch {
        // the client is already gone
      }
    }
    this.ctx.onEnd(this, reason)
  }
}
