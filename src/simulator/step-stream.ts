/**
 * Turns a lazy plan of steps (text to send, pauses, an abrupt drop, a stall) into a response body.
 *
 * Pull-based, so it respects backpressure: the runtime asks for more only once it has taken the last chunk.
 * Unpaced text is batched (up to BATCH_CHARS per chunk) because one socket write per line would make the
 * simulator, not the code under test, the bottleneck. A pause, drop or stall always waits for the next pull,
 * which guarantees the text before it has been handed to the socket first. Nothing runs after the client goes
 * away: `cancel` clears the pending timer and the plan is never advanced again.
 */

/** `drop`: reset the connection mid-body (no terminating chunk); `stall`: go quiet until the client leaves. */
export type Control = { pause: number } | { drop: true } | { stall: true }
/** Text to send, or a control. */
export type Step = string | Control

export interface StepStreamHooks {
  /** Called once per text step taken from the plan (lines generated, for the stats). */
  onText(): void
  /** Called exactly once: on completion, drop, cancellation or terminate(). */
  onFinish(): void
}

export interface StepStream {
  readonly body: ReadableStream<Uint8Array>
  /** Ends the stream abruptly from the server side (used by Simulator.stop()). */
  terminate(): void
}

const BATCH_CHARS = 32 * 1024
const DROP_FLUSH_MS = 10
const encoder = new TextEncoder()

export function createStepStream(plan: Iterator<Step>, hooks: StepStreamHooks): StepStream {
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined
  let held: Control | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let wake: (() => void) | undefined
  let finished = false

  function finish(): void {
    if (finished) return
    finished = true
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    wake?.()
    wake = undefined
    hooks.onFinish()
  }

  /** Resolves after `ms` (true), or at once when the stream finishes meanwhile (false). */
  function wait(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      wake = () => resolve(false)
      timer = setTimeout(() => {
        timer = undefined
        wake = undefined
        resolve(true)
      }, ms)
    })
  }

  /** Resolves only when the stream finishes (client gone or terminate()). */
  function hang(): Promise<void> {
    return new Promise((resolve) => {
      wake = resolve
    })
  }

  /** Performs a non-text step; returns false when the stream is over. */
  async function perform(step: Control, c: ReadableStreamDefaultController<Uint8Array>) {
    if ('drop' in step) {
      // Bun corks writes until the end of the event-loop turn and discards unflushed data (even the headers)
      // when the body errors, so give it a moment to put the earlier lines on the wire first.
      if (!(await wait(DROP_FLUSH_MS)) || finished) return false
      // error(undefined) makes Bun close the socket without the final chunk and without logging a stack.
      c.error(undefined)
      finish()
      return false
    }
    if ('stall' in step) {
      await hang()
      return false
    }
    return (await wait(step.pause)) && !finished
  }

  async function pull(c: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    if (held !== undefined) {
      const step = held
      held = undefined
      if (!(await perform(step, c))) return
    }
    let batch = ''
    for (;;) {
      const next = plan.next()
      if (next.done) {
        if (batch) c.enqueue(encoder.encode(batch))
        c.close()
        finish()
        return
      }
      const step = next.value
      if (typeof step === 'string') {
        hooks.onText()
        batch += step
        if (batch.length >= BATCH_CHARS) break
        continue
      }
      if (batch) {
        // Hand the text over first; the step runs on the next pull, after the runtime took this chunk.
        held = step
        break
      }
      if (!(await perform(step, c))) return
    }
    c.enqueue(encoder.encode(batch))
  }

  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c
    },
    pull,
    cancel: finish,
  })

  return {
    body,
    terminate() {
      if (finished) return
      try {
        controller?.error(undefined)
      } catch {
        // already closed or errored: nothing left to end
      }
      finish()
    },
  }
}
