/**
 * `GET /voice/stream?session_id=…` (WebSocket): a fake ASR → RAG → LLM → TTS pipeline.
 *
 * Audio chunks produce an `asr_partial` every `partial_every` chunks; `stop` ends the utterance and starts a
 * reply (asr_final, retrieval_progress, llm_response_chunk × N, tts_audio × M, tts_complete), all tagged with
 * `reply_id`. `cancel` ends the running reply at once and says `reply_cancelled`. Replies are sent by a pump
 * that honours the socket's backpressure (waits for `drain` when `send` reports -1).
 */
import type { Server, ServerWebSocket, WebSocketHandler } from 'bun'
import { AnswerChunker, partialTranscript, TONE_SAMPLE_RATE, toneFrameBase64, transcriptFor } from './content.ts'
import { resolveVoiceOptions, SimulatorInputError, updateVoiceOptions, type VoiceOptions } from './directives.ts'
import { errorResponse } from './http.ts'
import type { SimulatorState } from './state.ts'

interface ReplyStep {
  delay: number
  message: Record<string, unknown>
}

interface Reply {
  id: string
  steps: ReplyStep[]
  next: number
  /** The delay of steps[next] has already been waited for. */
  delayed: boolean
  timer?: ReturnType<typeof setTimeout>
  /** send() reported backpressure; the drain handler resumes the pump. */
  blocked: boolean
}

export interface VoiceSocketData {
  sessionId: string
  conversationId: string | null
  options: VoiceOptions
  /** 1-based number of the utterance being spoken. */
  utterance: number
  chunksInUtterance: number
  reply?: Reply
  dropTimer?: ReturnType<typeof setTimeout>
}

export type VoiceSocket = ServerWebSocket<VoiceSocketData>

let generatedSessions = 0
const REPLY_CHUNK_SIZE = 12
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/** Handles the upgrade request; returns a Response when it is refused, undefined when upgraded. */
export function upgradeVoice(
  req: Request,
  server: Server<VoiceSocketData>,
  state: SimulatorState,
): Response | undefined {
  const params = new URL(req.url).searchParams
  let options: VoiceOptions
  try {
    options = resolveVoiceOptions(state.voiceDefaults, params)
  } catch (err) {
    if (err instanceof SimulatorInputError) return errorResponse(400, err.code, err.message)
    throw err
  }
  if (options.mode === 'refuse') return errorResponse(503, 'SIMULATED_REFUSAL', 'simulated voice service refusal')
  const data: VoiceSocketData = {
    sessionId: params.get('session_id') || `sim_voice_${++generatedSessions}`,
    conversationId: params.get('conversation_id'),
    options,
    utterance: 1,
    chunksInUtterance: 0,
  }
  if (server.upgrade(req, { data })) return undefined
  return errorResponse(400, 'UPGRADE_REQUIRED', 'expected a WebSocket upgrade')
}

function send(ws: VoiceSocket, message: Record<string, unknown>): number {
  return ws.send(JSON.stringify({ ...message, session_id: ws.data.sessionId }))
}

function invalid(ws: VoiceSocket, error: string): void {
  send(ws, { type: 'error', code: 'INVALID_MESSAGE', error })
}

/** Sends the reply's steps until one must wait (delay or backpressure) or the reply is done. */
function pump(ws: VoiceSocket, reply: Reply): void {
  while (ws.data.reply === reply && reply.next < reply.steps.length) {
    const step = reply.steps[reply.next] as ReplyStep
    if (step.delay > 0 && !reply.delayed) {
      reply.delayed = true
      reply.timer = setTimeout(() => {
        reply.timer = undefined
        pump(ws, reply)
      }, step.delay)
      return
    }
    reply.delayed = false
    reply.next++
    const status = send(ws, step.message)
    if (status === 0) break // socket closing or over its limit: nothing more will get through
    if (status === -1) {
      reply.blocked = true
      return
    }
  }
  if (ws.data.reply === reply) ws.data.reply = undefined
}

/** Ends the running reply, if any, without sending anything more of it. */
function stopReply(data: VoiceSocketData): Reply | undefined {
  const reply = data.reply
  if (!reply) return undefined
  if (reply.timer !== undefined) clearTimeout(reply.timer)
  data.reply = undefined
  return reply
}

function buildReply(data: VoiceSocketData): Reply {
  const o = data.options
  const id = `${data.sessionId}_r${data.utterance}`
  const text = transcriptFor(o.transcript, data.utterance)
  const steps: ReplyStep[] = []
  const add = (message: Record<string, unknown>, delay = 0) =>
    steps.push({ delay, message: { ...message, reply_id: id } })
  add({ type: 'asr_final', text, utterance: data.utterance, audio_chunks: data.chunksInUtterance })
  add({ type: 'retrieval_progress', stage: 'retrieval', progress: 1 })
  const answer = new AnswerChunker(text, REPLY_CHUNK_SIZE) // joined: simulatedAnswer(text, {chunks: reply_chunks})
  for (let index = 0; index < o.reply_chunks; index++) {
    add({ type: 'llm_response_chunk', index, content: answer.chunk(index) })
  }
  for (let k = 0; k < o.tts_frames; k++) {
    const audio_data = toneFrameBase64(o.tts_frame_bytes, k)
    add(
      { type: 'tts_audio', sequence: k + 1, audio_data, sample_rate: TONE_SAMPLE_RATE, channels: 1, format: 'pcm16' },
      o.tts_delay_ms,
    )
  }
  add({ type: 'tts_complete', frames: o.tts_frames })
  return { id, steps, next: 0, delayed: false, blocked: false }
}

function onAudio(ws: VoiceSocket, sequence: unknown): void {
  const data = ws.data
  if (data.options.ack) send(ws, { type: 'audio_ack', sequence })
  data.chunksInUtterance++
  if (data.chunksInUtterance % data.options.partial_every === 0) {
    const text = transcriptFor(data.options.transcript, data.utterance)
    send(ws, {
      type: 'asr_partial',
      text: partialTranscript(text, data.chunksInUtterance / data.options.partial_every),
    })
  }
}

function onStop(ws: VoiceSocket): void {
  stopReply(ws.data) // a new utterance supersedes a reply still playing
  const reply = buildReply(ws.data)
  ws.data.reply = reply
  ws.data.utterance++
  ws.data.chunksInUtterance = 0
  pump(ws, reply)
}

function onControl(ws: VoiceSocket, msg: Record<string, unknown>): void {
  switch (msg.type) {
    case 'audio_chunk':
      if (typeof msg.audio_chunk !== 'string' || msg.audio_chunk.length % 4 !== 0 || !BASE64.test(msg.audio_chunk)) {
        return invalid(ws, 'audio_chunk must carry base64 audio in "audio_chunk"')
      }
      return onAudio(ws, msg.sequence)
    case 'start':
      ws.data.chunksInUtterance = 0
      return
    case 'stop':
      return onStop(ws)
    case 'cancel': {
      const reply = stopReply(ws.data)
      if (reply) send(ws, { type: 'reply_cancelled', reply_id: reply.id })
      return
    }
    case 'config':
      try {
        if (msg.simulate !== undefined) ws.data.options = updateVoiceOptions(ws.data.options, msg.simulate)
      } catch (err) {
        invalid(ws, err instanceof Error ? err.message : 'invalid simulate')
      }
      return
    case 'ping':
      send(ws, { type: 'pong', server_time: Math.floor(Date.now() / 1000) })
      return
    case 'end_session':
      ws.close(1000, 'session ended')
      return
    default:
      invalid(ws, `unknown message type ${JSON.stringify(msg.type)}`)
  }
}

function onMessage(ws: VoiceSocket, raw: string | Buffer): void {
  // Raw binary frames are accepted as audio too, which makes the simulator easy to drive by hand.
  if (typeof raw !== 'string') return onAudio(ws, null)
  let msg: unknown
  try {
    msg = JSON.parse(raw)
  } catch {
    return invalid(ws, 'message is not valid JSON')
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return invalid(ws, 'message must be a JSON object')
  onControl(ws, msg as Record<string, unknown>)
}

export function voiceHandler(state: SimulatorState): WebSocketHandler<VoiceSocketData> {
  const sockets = new Set<VoiceSocket>()
  state.closeVoice = () => {
    for (const ws of sockets) ws.close(1001, 'simulator stopping')
  }
  return {
    data: {} as VoiceSocketData,
    open(ws) {
      sockets.add(ws)
      state.stats.voiceSocketsOpen++
      state.stats.voiceSessionsStarted++
      const ms = ws.data.options.drop_after_ms
      if (ms > 0) ws.data.dropTimer = setTimeout(() => ws.terminate(), ms)
    },
    message: onMessage,
    drain(ws) {
      const reply = ws.data.reply
      if (reply?.blocked) {
        reply.blocked = false
        pump(ws, reply)
      }
    },
    close(ws) {
      sockets.delete(ws)
      state.stats.voiceSocketsOpen--
      stopReply(ws.data)
      if (ws.data.dropTimer !== undefined) clearTimeout(ws.data.dropTimer)
    },
  }
}
