/**
 * One connection of the session framework: the seeds' `KSocket`.
 *
 * A session owns its socket and two Overlapped records, one for the recv in
 * flight and one for the send in flight (`m_ovlReceive` / `m_ovlSend`).
 * `send()` is `KSocket::SendData`: the bytes are queued, and a socket send
 * is posted only when none is in flight; everything queued meanwhile leaves
 * in the next one, gathered (one `WSASend` with several `WSABUF`s, here
 * `socket.send([parts], ov)`). A send that completes with fewer bytes than
 * it asked for (contract rule 2) is finished before anything queued after
 * it: the unsent tail goes first in the next send.
 *
 * Queued bytes (queued plus in flight) are capped per session; what happens
 * past the cap is the server's {@link QueuePolicy}.
 *
 * Deadlines (the server's `idleTimeoutMs`, `writeTimeoutMs`) are one
 * {@link Deadline} per session in the loop's one timer structure, re-armed
 * by every completion that moved bytes: the write limit while a send is in
 * flight, idle otherwise.
 */
import { Deadline, deadlines } from '../../core/deadlines.js';
import { OverlappedError } from '../../core/errors.js';
import { Overlapped } from '../../core/overlapped.js';
import type { TcpSocket } from '../../core/tcp-socket.js';
import type { Endpoint } from '../../engines/contract.js';

/**
 * What `send()` does when a session's queued bytes would pass
 * `maxQueuedBytes`:
 * - `'disconnect'` (default): the session is reset, and `onClose` gets
 *   `send-queue-full`. A peer that stops reading cannot make the server hold
 *   more than the cap for it, and nobody else waits for it.
 * - `'drop'`: this send is refused with `OVL_ERR_SESSION_QUEUE_FULL` (thrown
 *   by `send`, counted by `broadcast`); the session stays, later sends that
 *   fit are taken.
 * - `'backpressure'`: `session.writable` turns false once queued bytes pass
 *   `highWaterMark`, and `onWritable` fires once they fall to
 *   `lowWaterMark`; a producer that keeps sending anyway meets the hard cap,
 *   which then disconnects as `'disconnect'` does. While a session is not
 *   writable, the server also stops receiving from it (no recv is posted
 *   until it is writable again), so a peer that sends without reading what
 *   it is sent is held back by TCP flow control: an echo or a proxy stays
 *   bounded without a line of flow-control code of its own.
 */
export type QueuePolicy = 'disconnect' | 'drop' | 'backpressure';

/** Why a session ended (the `reason` of `onClose`). */
export type CloseCode =
  /** The peer ended its side (a zero-byte recv); queued sends were flushed first. */
  | 'peer-closed'
  /** `session.close()` or a graceful server stop: queued sends were flushed first. */
  | 'closed'
  /** `session.destroy()`, `server.destroy()`, or a stop deadline that passed: reset. */
  | 'destroyed'
  /** The connection failed (ECONNRESET, EPIPE, …): `error` says how. */
  | 'error'
  /** Queued bytes passed `maxQueuedBytes` (policy `'disconnect'`, or the hard cap of `'backpressure'`). */
  | 'send-queue-full'
  /** A handler threw for this session: `error` is what it threw. */
  | 'handler-failed'
  /** No byte moved for `idleTimeoutMs`: closed with a FIN; `error` is an `OVL_ERR_TIMEOUT`. */
  | 'idle-timeout'
  /** The peer took no byte of a send for `writeTimeoutMs`: reset; `error` is an `OVL_ERR_TIMEOUT`. */
  | 'write-timeout';

export interface CloseReason {
  readonly code: CloseCode;
  /** The error behind `error`, `handler-failed` and the timeouts; null otherwise. */
  readonly error: Error | null;
}

/** Gathered parts one socket send carries at most (IOV_MAX); past it the parts are joined. */
const MAX_GATHER_PARTS = 1024;

/** The server side a session reports to; implemented by `SessionServer`. */
export interface SessionHost {
  readonly policy: QueuePolicy;
  readonly maxQueuedBytes: number;
  readonly highWaterMark: number;
  readonly lowWaterMark: number;
  /** 0: off. */
  readonly idleTimeoutMs: number;
  /** 0: off. */
  readonly writeTimeoutMs: number;
  /** @internal A socket send was posted (`partial` true when it carries the tail of a partial send). */
  countSend(partial: boolean): void;
  /** @internal A send was refused under policy `'drop'`. */
  countDrop(): void;
  /** @internal */
  sendCompleted(session: Session, bytes: number): void;
  /** @internal */
  received(session: Session, bytes: Buffer): void;
  /** @internal */
  writable(session: Session): void;
  /** @internal Nothing of the session is pending any more: `onClose` may run (after the current completion). */
  ended(session: Session): void;
}

const OPEN = 0;
/** Graceful: no more sends taken, queued bytes flushing, then the socket closes. */
const CLOSING = 1;
/** The socket is closed; waiting for its last completions. */
const CLOSED = 2;
/** `ended` was reported: onClose has run or is about to. */
const ENDED = 3;

/** A connected client of a `SessionServer`. Used only on the thread that runs its server. */
export class Session<D = unknown> {
  /** The session's key in its server's registry (see `server.get(key)`). */
  readonly key: number;
  readonly remoteAddress: Endpoint | null;
  /** Yours: per-session application state (a name, a room, a game entity). */
  data: D | undefined = undefined;
  /** @internal */
  readonly recvOv: Overlapped<Session<D>>;
  /** @internal */
  readonly sendOv: Overlapped<Session<D>>;
  readonly #socket: TcpSocket;
  readonly #host: SessionHost;
  #state = OPEN;
  #reason: CloseReason | null = null;
  #queue: Uint8Array[] = [];
  #queueBytes = 0;
  #inFlight: Uint8Array[] | null = null;
  #inFlightBytes = 0;
  #recvPending = false;
  /** Policy 'backpressure': a recv is owed once the session is writable again. */
  #recvHeld = false;
  #writable = true;
  #sends = 0;
  /** Null when the server keeps no deadlines. */
  readonly #deadline: Deadline | null;

  /** @internal Sessions are made by their server. */
  constructor(key: number, socket: TcpSocket, host: SessionHost) {
    this.key = key;
    this.#socket = socket;
    this.#host = host;
    this.remoteAddress = socket.remoteAddress;
    this.recvOv = new Overlapped<Session<D>>(this);
    this.sendOv = new Overlapped<Session<D>>(this);
    this.#deadline =
      host.idleTimeoutMs > 0 || host.writeTimeoutMs > 0 ? new Deadline(this.#expired) : null;
  }

  /** True until `close()`, `destroy()` or the peer's end: sends are taken only then. */
  get open(): boolean {
    return this.#state === OPEN;
  }

  /** Why the session ended; null while it is open or flushing without a reason yet. */
  get closeReason(): CloseReason | null {
    return this.#reason;
  }

  /** Bytes taken by `send` and not yet sent: queued plus the send in flight. */
  get queuedBytes(): number {
    return this.#queueBytes + this.#inFlightBytes;
  }

  /** Policy `'backpressure'`: false from passing `highWaterMark` until `onWritable`. Always true otherwise. */
  get writable(): boolean {
    return this.#writable;
  }

  /** Socket sends this session has posted (each carries every part queued before it). */
  get sendsPosted(): number {
    return this.#sends;
  }

  /**
   * Queues a copy of `bytes` (KSocket::SendData): yours again when this
   * returns. Returns false, sending nothing, when the session is no longer
   * open, or when this send passed the cap under policy `'disconnect'` or
   * `'backpressure'` (the session is then being reset). Throws
   * `OVL_ERR_SESSION_QUEUE_FULL` under policy `'drop'`.
   */
  send(bytes: Uint8Array): boolean {
    return this.enqueue(bytes, true);
  }

  /**
   * @internal Queues `bytes` without copying: the caller promises never to
   * change them (broadcast shares one buffer among every session).
   */
  enqueue(bytes: Uint8Array, copy: boolean): boolean {
    if (this.#state !== OPEN) return false;
    const n = bytes.byteLength;
    if (n === 0) return true;
    const host = this.#host;
    const queued = this.#queueBytes + this.#inFlightBytes + n;
    if (queued > host.maxQueuedBytes) {
      if (host.policy === 'drop') {
        host.countDrop();
        throw new OverlappedError(
          'OVL_ERR_SESSION_QUEUE_FULL',
          `session ${this.key}: ${n} more bytes would take its send queue to ${queued}, past maxQueuedBytes ${host.maxQueuedBytes}; this send was dropped (the peer reads more slowly than it is sent to)`,
        );
      }
      this.#abort({ code: 'send-queue-full', error: null });
      return false;
    }
    this.#queue.push(copy ? Buffer.from(bytes) : bytes);
    this.#queueBytes += n;
    if (host.policy === 'backpressure' && queued > host.highWaterMark) this.#writable = false;
    if (this.#inFlight === null) this.#flush();
    return true;
  }

  /**
   * Graceful close: no more sends are taken, queued bytes are sent, then
   * the socket closes (FIN). `onClose` follows with `closed`. Idempotent;
   * a server stop's deadline resets a session whose peer never drains.
   */
  close(): void {
    this.#beginClose({ code: 'closed', error: null });
  }

  /** Abortive close: queued bytes are dropped and the peer sees a reset. Idempotent. */
  destroy(): void {
    this.#abort({ code: 'destroyed', error: null });
  }

  /** @internal Posts the first recv, unless onAccept already ended the session. */
  start(): void {
    if (this.#state !== OPEN) return;
    this.#rearm();
    this.#postRecv();
  }

  /** @internal The recv completed. */
  recvDone(ov: Overlapped<Session<D>>): void {
    this.#recvPending = false;
    const lease = ov.lease;
    if (ov.error !== null) {
      lease?.release();
      if (this.#state === OPEN) this.#abort({ code: 'error', error: ov.error });
      this.#maybeEnd();
      return;
    }
    if (ov.bytes === 0 || lease === null) {
      // End of stream (rule 4): the peer has nothing more to say; what we owe it still goes.
      this.#beginClose({ code: 'peer-closed', error: null });
      this.#maybeEnd();
      return;
    }
    if (this.#state === OPEN) {
      this.#rearm();
      try {
        this.#host.received(this, lease.view.subarray(0, ov.bytes));
      } finally {
        lease.release();
      }
    } else {
      lease.release();
    }
    if (this.#state !== OPEN) this.#maybeEnd();
    else if (this.#writable) this.#postRecv();
    else this.#recvHeld = true;
  }

  /** @internal The send in flight completed. */
  sendDone(ov: Overlapped<Session<D>>): void {
    const parts = this.#inFlight as Uint8Array[];
    const asked = this.#inFlightBytes;
    this.#inFlight = null;
    this.#inFlightBytes = 0;
    if (ov.error !== null) {
      this.#queue = [];
      this.#queueBytes = 0;
      if (this.#state < CLOSED) this.#abort({ code: 'error', error: ov.error });
      this.#maybeEnd();
      return;
    }
    const sent = ov.bytes;
    let partial = false;
    if (sent < asked) {
      // Rule 2: the OS took only part. The tail leaves first, ahead of later sends.
      partial = true;
      this.#queue = unsentTail(parts, sent).concat(this.#queue);
      this.#queueBytes += asked - sent;
    }
    if (this.#state === CLOSED) {
      this.#maybeEnd();
      return;
    }
    this.#flush(partial);
    if (sent > 0 || this.#inFlight === null) this.#rearm();
    if (sent > 0) this.#host.sendCompleted(this, sent);
    if (!this.#writable && this.queuedBytes <= this.#host.lowWaterMark && this.#state === OPEN) {
      this.#writable = true;
      this.#host.writable(this);
      if (this.#recvHeld && this.#state === OPEN) {
        this.#recvHeld = false;
        this.#postRecv();
      }
    }
  }

  /** @internal The session's handler threw: the session is reset. */
  fail(code: CloseCode, error: Error): void {
    this.#abort({ code, error });
  }

  /**
   * Bytes moved (or the session began): the write limit runs while a send is
   * in flight, even while flushing a graceful close; idle runs while open.
   */
  #rearm(): void {
    const deadline = this.#deadline;
    if (deadline === null) return;
    const host = this.#host;
    const ms =
      this.#inFlight !== null && host.writeTimeoutMs > 0
        ? host.writeTimeoutMs
        : this.#state === OPEN
          ? host.idleTimeoutMs
          : 0;
    if (ms > 0 && this.#state < CLOSED) deadlines.arm(deadline, ms);
    else deadlines.disarm(deadline);
  }

  readonly #expired = (): void => {
    if (this.#state >= CLOSED) return;
    const host = this.#host;
    const write = this.#inFlight !== null && host.writeTimeoutMs > 0;
    const error = new OverlappedError(
      'OVL_ERR_TIMEOUT',
      write
        ? `write deadline: the peer took no byte of a send for ${host.writeTimeoutMs} ms`
        : `idle deadline: no byte moved for ${host.idleTimeoutMs} ms`,
    );
    const reason: CloseReason = { code: write ? 'write-timeout' : 'idle-timeout', error };
    // The recv (and send) in flight complete with this error, not OVL_ERR_ABORTED.
    this.#socket.failPendingWith(error);
    if (write) {
      this.#reason = reason;
      this.#abort(reason);
    } else if (this.#state === OPEN) {
      this.#beginClose(reason);
    }
  };

  #postRecv(): void {
    this.#recvPending = true;
    this.#socket.recvPooled(this.recvOv);
  }

  /** Posts one send with everything queued, or finishes a graceful close once nothing is. */
  #flush(partial = false): void {
    if (this.#queueBytes === 0) {
      if (this.#state === CLOSING) this.#closeSocket(false);
      return;
    }
    let parts = this.#queue;
    if (parts.length > MAX_GATHER_PARTS) parts = [Buffer.concat(parts)];
    this.#inFlight = parts;
    this.#inFlightBytes = this.#queueBytes;
    this.#queue = [];
    this.#queueBytes = 0;
    this.#sends++;
    this.#host.countSend(partial);
    this.#socket.send(parts.length === 1 ? (parts[0] as Uint8Array) : parts, this.sendOv);
    if (this.#host.writeTimeoutMs > 0) this.#rearm();
  }

  #beginClose(reason: CloseReason): void {
    if (this.#state !== OPEN) return;
    this.#state = CLOSING;
    this.#reason = reason;
    this.#writable = true;
    // Nothing more is delivered to onReceive: the recv in flight is aborted.
    if (this.#recvPending) this.#socket.cancel(this.recvOv);
    if (this.#inFlight === null) this.#flush();
  }

  #abort(reason: CloseReason): void {
    if (this.#state >= CLOSED) return;
    if (this.#reason === null || this.#state === OPEN) this.#reason = reason;
    this.#queue = [];
    this.#queueBytes = 0;
    this.#closeSocket(true);
  }

  #closeSocket(abortive: boolean): void {
    this.#state = CLOSED;
    if (this.#deadline !== null) deadlines.disarm(this.#deadline);
    if (abortive) this.#socket.destroy();
    else this.#socket.close();
    this.#maybeEnd();
  }

  #maybeEnd(): void {
    if (this.#state !== CLOSED || this.#recvPending || this.#inFlight !== null) return;
    this.#state = ENDED;
    this.#host.ended(this);
  }
}

/**
 * @internal The parts of `parts` after the first `sent` bytes (the first one
 * sliced, not copied): what a partial send leaves to send first. Exported for
 * its test: neither engine completes a send partially on a healthy
 * connection (uring sends with MSG_WAITALL, node:net writes whole), so the
 * socket tests cannot reach it.
 */
export function unsentTail(parts: readonly Uint8Array[], sent: number): Uint8Array[] {
  const tail: Uint8Array[] = [];
  let skip = sent;
  for (const part of parts) {
    if (skip >= part.byteLength) {
      skip -= part.byteLength;
      continue;
    }
    tail.push(skip > 0 ? part.subarray(skip) : part);
    skip = 0;
  }
  return tail;
}
