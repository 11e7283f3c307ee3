/**
 * The upstream client's one error class. It is an AppError, so the global handler renders it before a stream
 * starts; after the first event the chat stream reports `code` and `message` in an `error` event instead.
 */
import { AppError } from '../errors.ts'

export type UpstreamErrorCode = 'ALGO_SERVICE_ERROR' | 'ALGO_TIMEOUT' | 'STREAM_ERROR'

/** The gateway's own answer when the error surfaces before a stream: a bad gateway, or a gateway timeout. */
const GATEWAY_STATUS: Record<UpstreamErrorCode, number> = {
  ALGO_SERVICE_ERROR: 502,
  ALGO_TIMEOUT: 504,
  STREAM_ERROR: 502,
}

/** Message of the STREAM_ERROR for an oversized line (the pool does not retry it: every upstream would repeat it). */
export const LINE_TOO_LONG = 'line too long'

export class UpstreamError extends AppError {
  /** The upstream's HTTP status, when it answered with one (non-2xx). `status` is the gateway's own. */
  readonly upstreamStatus?: number
  /** Which upstream failed, when known. */
  readonly upstream?: string

  constructor(
    override readonly code: UpstreamErrorCode,
    message: string,
    options: { status?: number; upstream?: string; cause?: unknown } = {},
  ) {
    super(GATEWAY_STATUS[code], code, message, undefined, { cause: options.cause })
    this.name = 'UpstreamError'
    this.upstreamStatus = options.status
    this.upstream = options.upstream
  }
}
