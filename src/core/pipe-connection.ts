/**
 * One end of a pipe instance: ReadFile/WriteFile on a named pipe, as
 * overlapped operations, over an engine byte stream (a Unix domain socket,
 * or a Windows named pipe through Node).
 *
 * Message mode (`PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE`) is framed on
 * the byte stream (docs/pipes.md): each message is a 4-byte big-endian
 * length and its payload; a header with bit 31 set is a control frame from
 * the server (`READY`, or an `OVL_ERR_*` code and a message). Reads parse
 * frames out of a staging buffer this connection owns, bounded by one
 * largest message plus its header: data is taken from the engine only while
 * a read needs it, so a peer that sends faster than this end reads is held
 * back by the engine's flow control (contract rule 6), not buffered here.
 *
 * Byte mode passes reads and writes straight to the stream: a read returns
 * what arrived, 0 bytes is end of stream (rule 4).
 */
import type { Engine, EngineOption, EngineStream } from '../engines/contract.js';
import type { CompletionRoutine } from './apc.js';
import { add, counters } from './counters.js';
import { attachEngine, completeLater, deliverInBatch, InternalRequest } from './delivery.js';
import { resolveEngine } from './engine-option.js';
import {
  abortedError,
  check,
  ERROR_CODES,
  OverlappedError,
  type OverlappedErrorCode,
} from './errors.js';
import { Handle } from './handle.js';
import type { Overlapped } from './overlapped.js';

/** `message`: each write is one message, each read returns whole messages. `byte`: a plain stream. */
export type PipeMode = 'message' | 'byte';
export const PIPE_MODES: readonly PipeMode[] = ['message', 'byte'];
/** Default largest message (64 KiB). */
export const DEFAULT_MAX_MESSAGE = 64 * 1024;
/** Largest `maxMessage` the framing can carry: bit 31 of a header marks control frames. */
export const MAX_MESSAGE_LIMIT = 0x7fff_ffff;
/** Bytes of a frame header. */
export const FRAME_HEADER_BYTES = 4;
/** Bit 31 of a header: a control frame from the server. */
export const CONTROL_FLAG = 0x8000_0000;
/** The first control frame a server sends on a connection it gives an instance. */
export const READY = 'READY';
/** Largest control frame payload accepted. */
const MAX_CONTROL_BYTES = 4096;
/** First staging buffer size; it grows (up to one largest frame) only for larger messages. */
const INITIAL_STAGE_BYTES = 16 * 1024;
/** How long a connection closed with a control frame keeps draining the peer's bytes. */
const DRAIN_MS = 2000;

export interface PipeConnectionOptions {
  /** Default `message`. */
  mode?: PipeMode;
  /** Largest message a read accepts (message mode); default {@link DEFAULT_MAX_MESSAGE}. */
  maxMessage?: number;
}

export interface PipeConnectOptions extends PipeConnectionOptions {
  /** `'node'`, `'uring'` or an Engine; default: this thread's engine. */
  engine?: EngineOption;
  /** A resolved pipe path (see `resolvePipeName`). */
  path: string;
}

/** @internal Checks and fills in pipe options. */
export function pipeSettings(options: PipeConnectionOptions): {
  mode: PipeMode;
  maxMessage: number;
} {
  const mode = options.mode ?? 'message';
  const maxMessage = options.maxMessage ?? DEFAULT_MAX_MESSAGE;
  check(
    PIPE_MODES.includes(mode),
    'OVL_ERR_INVALID_ARGUMENT',
    `mode must be 'message' or 'byte', got ${String(mode)}`,
  );
  check(
    Number.isSafeInteger(maxMessage) && maxMessage >= 1 && maxMessage <= MAX_MESSAGE_LIMIT,
    'OVL_ERR_INVALID_ARGUMENT',
    `maxMessage must be a whole number from 1 to ${MAX_MESSAGE_LIMIT} (2^31 - 1), got ${String(maxMessage)}`,
  );
  return { mode, maxMessage };
}

/** Builds a control frame: header with bit 31 set, then UTF-8 `text`. */
export function controlFrame(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  frame.writeUInt32BE((CONTROL_FLAG | body.length) >>> 0, 0);
  body.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/** The error a control frame `CODE message` stands for. */
export function controlError(text: string): OverlappedError {
  const space = text.indexOf(' ');
  const code = space < 0 ? text : text.slice(0, space);
  const message = space < 0 ? undefined : text.slice(space + 1);
  if (Object.hasOwn(ERROR_CODES, code)) {
    return new OverlappedError(code as OverlappedErrorCode, message || undefined);
  }
  return new OverlappedError(
    'OVL_ERR_PIPE_PROTOCOL',
    `the server sent an unknown control frame: ${JSON.stringify(text.slice(0, 200))}`,
  );
}

function errorCode(error: Error | null): string | undefined {
  return (error as { code?: string } | null)?.code;
}

/** The peer went away under a read or write: the pipe is broken (ERROR_BROKEN_PIPE). */
function brokenPipe(cause?: Error): OverlappedError {
  return new OverlappedError(
    'OVL_ERR_BROKEN_PIPE',
    cause === undefined
      ? undefined
      : `the other end of the pipe went away (${errorCode(cause) ?? cause.message})`,
    cause === undefined ? undefined : { cause },
  );
}

/** Engine requests this connection posts for itself. */
class Internal extends InternalRequest {
  constructor(readonly onDone: (req: Internal) => void) {
    super();
  }
  done(): void {
    this.onDone(this);
  }
}

const ignore = (): void => {};

/**
 * A connected pipe instance (server side, from `PipeListener.accept`) or
 * pipe client (from {@link PipeConnection.connect}).
 *
 * Operations (each completes exactly once, never inside the call; through
 * the routine if given, else the port, and the Overlapped's event is set):
 * - `read(buffer, ov)`: message mode completes with one whole message; one
 *   larger than `buffer` completes with the bytes that fit and
 *   `OVL_ERR_MORE_DATA`, and the next read returns the rest. A zero-byte
 *   message completes with 0 bytes and no error; the peer closing completes
 *   with `OVL_ERR_BROKEN_PIPE`. A message over `maxMessage` fails the read
 *   (and every later one) with `OVL_ERR_MESSAGE_TOO_LARGE`.
 * - `write(data, ov)`: one message; completes with `bytes` = payload bytes.
 * - `cancel`, `close` (DisconnectNamedPipe + CloseHandle), `destroy`.
 */
export class PipeConnection extends Handle {
  readonly mode: PipeMode;
  readonly maxMessage: number;
  /** The resolved pipe path. */
  readonly path: string;
  readonly #side: 'server' | 'client';
  #stream: EngineStream;

  // Message-mode reads waiting for data, in posting order.
  #reads: Overlapped<unknown>[] = [];
  #readBuffers: Uint8Array[] = [];
  #stage: Buffer | null = null;
  #start = 0;
  #end = 0;
  /** Bytes of the current message not yet returned (after OVL_ERR_MORE_DATA), or -1 between messages. */
  #remaining = -1;
  readonly #recv = new Internal((req) => this.#onRecv(req));
  #recvPending = false;
  #eof = false;
  /** Set once the connection cannot deliver more messages (protocol error, too large, stream error). */
  #failure: Error | null = null;
  /** Completions this connection handed to the deferred path and not yet delivered (keeps order). */
  #deferred = 0;
  #inBatch = false;
  #connectOv: Overlapped<unknown> | null = null;
  #draining = false;

  /** @internal A connected server-side instance (PipeListener). See TcpSocket.fromStream. */
  static fromStream(
    engine: Engine,
    stream: EngineStream,
    path: string,
    options: PipeConnectionOptions,
  ): PipeConnection {
    return new PipeConnection(engine, stream, 'server', path, options);
  }

  /** Connections come from `PipeListener.accept` or {@link PipeConnection.connect}. */
  private constructor(
    engine: Engine,
    stream: EngineStream | null,
    side: 'server' | 'client',
    path: string,
    options: PipeConnectionOptions = {},
  ) {
    super(engine);
    add(counters.connectionsOpen, this.engineIndex);
    const { mode, maxMessage } = pipeSettings(options);
    this.mode = mode;
    this.maxMessage = maxMessage;
    this.path = path;
    this.#side = side;
    this.#stream = stream as EngineStream;
  }

  /**
   * Connects to a pipe server (CreateFile on a pipe name). The connection is
   * returned at once so it can be associated with a port; `ov` completes
   * when an instance is ours: in message mode once the server's READY frame
   * arrived, with `OVL_ERR_PIPE_BUSY` when every instance is busy, or with
   * `OVL_ERR_PIPE_NOT_FOUND` when no server listens there. `ov.pipe` is set
   * on success.
   */
  static connect(options: PipeConnectOptions, ov: Overlapped<unknown>): PipeConnection {
    const { path } = options;
    check(
      typeof path === 'string' && path.length > 0,
      'OVL_ERR_INVALID_ARGUMENT',
      'connect needs a pipe path (resolvePipeName(name))',
    );
    check(!ov.pending, 'OVL_ERR_OVERLAPPED_IN_USE');
    const engine = resolveEngine(options.engine);
    attachEngine(engine);
    const conn = new PipeConnection(engine, null, 'client', path, options);
    const req = new Internal((r) => conn.#onConnected(r));
    conn.#stream = engine.connectPipe(req, path);
    conn.beginOperation(ov, 'connect');
    conn.#connectOv = ov;
    return conn;
  }

  #received = 0;

  /**
   * Bytes received from the peer since the connection opened (frames
   * included): what a server's idle and read-progress deadlines look at.
   */
  get bytesReceived(): number {
    return this.#received;
  }

  /** Received bytes held that no read has taken yet (staged frames plus the engine's). */
  get unreadBytes(): number {
    return this.#end - this.#start + this.#stream.unreadBytes;
  }

  /**
   * Reads one message (message mode) or what has arrived (byte mode) into
   * `buffer`. See the class comment for how it completes.
   */
  read<T>(buffer: Uint8Array, ov: Overlapped<T>, routine?: CompletionRoutine<T>): void {
    check(
      ArrayBuffer.isView(buffer) && (buffer.byteLength > 0 || this.mode === 'message'),
      'OVL_ERR_INVALID_ARGUMENT',
      'read() needs a Uint8Array (non-empty in byte mode: a zero-byte read is end of stream there)',
    );
    this.beginOperation(ov, 'read', buffer.byteLength, routine);
    if (this.mode === 'byte') {
      this.#stream.recv(ov, buffer);
      return;
    }
    this.#reads.push(ov as Overlapped<unknown>);
    this.#readBuffers.push(buffer);
    this.#serve();
  }

  /**
   * Writes one message: `data`, or several buffers gathered into one message.
   * Completes when the OS has taken it, with `bytes` = its payload length.
   */
  write<T>(
    data: Uint8Array | readonly Uint8Array[],
    ov: Overlapped<T>,
    routine?: CompletionRoutine<T>,
  ): void {
    const parts: readonly Uint8Array[] = ArrayBuffer.isView(data) ? [data] : data;
    let size = 0;
    for (const part of parts) {
      check(
        ArrayBuffer.isView(part),
        'OVL_ERR_INVALID_ARGUMENT',
        'write() takes a Uint8Array or an array of them',
      );
      size += part.byteLength;
    }
    check(
      size <= MAX_MESSAGE_LIMIT,
      'OVL_ERR_INVALID_ARGUMENT',
      `a message holds at most ${MAX_MESSAGE_LIMIT} bytes, got ${size}`,
    );
    this.beginOperation(ov, 'write', size, routine);
    if (this.mode === 'byte') {
      this.#stream.send(ov, data, size);
      return;
    }
    // The header and the part list are the engine's until the write completes
    // (rule 3): the connection's own ones serve while no other write is in
    // flight (the request/reply case), fresh ones otherwise.
    const alone = this.#writesInFlight === 0;
    const header = alone ? this.#header : Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    this.#writesInFlight++;
    header.writeUInt32BE(size, 0);
    let frame: Uint8Array[];
    if (parts.length === 1 && alone) {
      frame = this.#frame;
      frame[1] = parts[0] as Uint8Array;
    } else {
      frame = [header, ...parts];
    }
    this.#stream.send(ov, frame, size + FRAME_HEADER_BYTES);
  }

  readonly #header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  /** [#header, payload]: the part list of a lone single-buffer write. */
  readonly #frame: Uint8Array[] = [this.#header, this.#header];
  #writesInFlight = 0;

  /**
   * @internal Server side: sends a control frame (`READY`, or `CODE message`)
   * ahead of any later write. Fire-and-forget: a failure shows in the next
   * read or write.
   */
  sendControl(text: string): void {
    check(!this.closed, 'OVL_ERR_HANDLE_CLOSED');
    if (this.mode === 'byte') return;
    const frame = controlFrame(text);
    this.#stream.send(new Internal(ignore), frame, frame.length);
  }

  /**
   * @internal Server side: sends the control frame `CODE message` (message mode), then
   * half-closes and reads and discards what the client still sends, for up to
   * 2 s, before closing. Closing at once would make the client's own write
   * of a large message fail, and it might never read the reason.
   * Pending reads complete aborted. Idempotent with close().
   */
  closeWithError(code: OverlappedErrorCode, message: string): void {
    if (this.closed) return;
    if (this.mode === 'byte') {
      this.close();
      return;
    }
    this.sendControl(`${code} ${message}`);
    this.#abortReads();
    this.#failure ??= new OverlappedError(code, message);
    this.#draining = true;
    this.markClosed();
    const stream = this.#stream;
    stream.shutdown(new Internal(ignore));
    const scrap = Buffer.allocUnsafe(16 * 1024);
    const timer = setTimeout(() => stream.close(false), DRAIN_MS);
    timer.unref();
    const drain = new Internal((req) => {
      if (req.error === null && req.bytes > 0) {
        stream.recv(drain, scrap);
        return;
      }
      clearTimeout(timer);
      stream.close(false);
    });
    // A recv of ours may still be pending: the engine queues this one behind it.
    stream.recv(drain, scrap);
  }

  protected cancelPending(ov: Overlapped<unknown> | null): boolean {
    if (ov === null) {
      const connect = this.#connectOv;
      if (connect !== null) return this.cancelPending(connect);
      const any = this.#reads.length > 0;
      this.#abortReads();
      return this.#stream.cancel(null) || any;
    }
    const i = this.#reads.indexOf(ov);
    if (i >= 0) {
      this.#reads.splice(i, 1);
      this.#readBuffers.splice(i, 1);
      this.#completeUser(ov, 0, abortedError());
      return true;
    }
    if (ov === this.#connectOv) {
      // A connect that is cancelled (even while waiting for READY) leaves nothing usable: close.
      this.#connectOv = null;
      this.#completeUser(ov, 0, abortedError());
      this.markClosed();
      this.#abortReads();
      this.#stream.close(true);
      return true;
    }
    return this.#stream.cancel(ov);
  }

  /**
   * Closes this end (for a server instance: DisconnectNamedPipe and
   * CloseHandle): pending operations complete with `OVL_ERR_ABORTED`;
   * messages already written still reach the peer. Idempotent.
   */
  close(): void {
    if (!this.markClosed()) return;
    this.#abortReads();
    this.#stream.close(false);
  }

  /** Closes abortively (the peer sees a reset). Idempotent. */
  destroy(): void {
    if (this.#draining) {
      this.#stream.close(true);
      return;
    }
    this.markClosed();
    this.#abortReads();
    this.#stream.close(true);
  }

  protected override markClosed(): boolean {
    if (!super.markClosed()) return false;
    add(counters.connectionsOpen, this.engineIndex, -1);
    return true;
  }

  /** @internal */
  override operationDone(ov: Overlapped<unknown>): void {
    super.operationDone(ov);
    const op = ov.operation;
    if (op === 'write') {
      if (this.mode === 'message') {
        // Drop the payload reference: the caller may reuse or free its buffer.
        if (--this.#writesInFlight === 0) this.#frame[1] = this.#header;
        // The caller wrote the payload; the header is the framing's business.
        ov.bytes = Math.max(0, ov.bytes - FRAME_HEADER_BYTES);
      }
      // Both modes: a pipe whose other end went away is broken, as on Windows, whatever
      // the socket called it (a byte-mode server that is busy closes at once: EPIPE here).
      if (ov.error !== null) ov.error = this.#mapStreamError(ov.error);
    } else if (op === 'read' && this.mode === 'byte') {
      if (ov.error !== null) ov.error = this.#mapStreamError(ov.error);
    } else if (op === 'read' || op === 'connect') {
      if (this.mode === 'byte' && op === 'read') this.#received += ov.bytes;
      // Every read (message mode) and connect completes through #completeUser, in order.
      if (this.#deferred > 0 && (op === 'connect' || this.mode === 'message')) this.#deferred--;
      if (op === 'connect' && ov.error === null) ov.pipe = this;
    }
  }

  /** Stream errors that mean the peer is gone become OVL_ERR_BROKEN_PIPE, as on a Windows pipe. */
  #mapStreamError(error: Error): Error {
    const c = errorCode(error);
    return c === 'ECONNRESET' || c === 'EPIPE' ? brokenPipe(error) : error;
  }

  /** Completes a user read or connect: in this batch when nothing of ours is deferred, else after it. */
  #completeUser(ov: Overlapped<unknown>, bytes: number, error: Error | null): void {
    if (this.#inBatch && this.#deferred === 0) {
      ov.bytes = bytes;
      ov.error = error;
      deliverInBatch(ov);
    } else {
      this.#deferred++;
      completeLater(ov, error, bytes);
    }
  }

  #abortReads(): void {
    const reads = this.#reads;
    if (reads.length === 0) return;
    this.#reads = [];
    this.#readBuffers = [];
    for (const ov of reads) this.#completeUser(ov, 0, abortedError());
  }

  #onConnected(req: Internal): void {
    this.#inBatch = true;
    try {
      const ov = this.#connectOv;
      if (ov === null) return;
      if (req.error !== null) {
        this.#connectOv = null;
        this.markClosed();
        this.#stream.close(true);
        this.#completeUser(ov, 0, this.#connectError(req.error));
        return;
      }
      if (this.mode === 'byte') {
        this.#connectOv = null;
        this.#completeUser(ov, 0, null);
        return;
      }
      this.#serve();
    } finally {
      this.#inBatch = false;
    }
  }

  #connectError(error: Error): Error {
    const c = errorCode(error);
    if (c === 'ENOENT' || c === 'ECONNREFUSED') {
      return new OverlappedError(
        'OVL_ERR_PIPE_NOT_FOUND',
        `no server on pipe ${this.path} (${c}): start \`overlapped pipe-server\` first or check the name`,
        { cause: error },
      );
    }
    return error;
  }

  #onRecv(req: Internal): void {
    this.#recvPending = false;
    if (this.#draining) return;
    if (this.closed) {
      // close() aborted our recv while a connect still waited for READY.
      const ov = this.#connectOv;
      if (ov !== null) {
        this.#connectOv = null;
        this.#completeUser(ov, 0, req.error ?? abortedError());
      }
      return;
    }
    if (req.error !== null) {
      // A cancel of everything aborts our recv too; it is posted again when a read needs it.
      if (!(req.error instanceof OverlappedError && req.error.code === 'OVL_ERR_ABORTED')) {
        this.#failure ??= this.#mapStreamError(req.error);
      }
    } else if (req.bytes === 0) {
      this.#eof = true;
    } else {
      this.#end += req.bytes;
      this.#received += req.bytes;
    }
    this.#inBatch = true;
    try {
      this.#serve();
    } finally {
      this.#inBatch = false;
    }
  }

  /** Completes what staged data (or the connection's end) can complete, then asks for more if needed. */
  #serve(): void {
    if (this.#connectOv !== null) {
      if (!this.#handshake()) return;
    }
    const reads = this.#reads;
    while (reads.length > 0) {
      const ov = reads[0] as Overlapped<unknown>;
      const buffer = this.#readBuffers[0] as Uint8Array;
      const failure = this.#failure;
      if (failure !== null) {
        reads.shift();
        this.#readBuffers.shift();
        this.#completeUser(ov, 0, failure);
        continue;
      }
      const taken = this.#take(buffer);
      if (taken === NEED_MORE) {
        // #reserve could not grow the stage: the loop completes the read with that failure.
        if (this.#failure !== null) continue;
        if (this.#eof) {
          reads.shift();
          this.#readBuffers.shift();
          this.#completeUser(ov, 0, brokenPipe());
          continue;
        }
        this.#postRecv();
        return;
      }
      reads.shift();
      this.#readBuffers.shift();
      if (taken === FAILED) {
        this.#completeUser(ov, 0, this.#failure);
      } else if (taken === CONTROL_ERROR) {
        this.#completeUser(ov, 0, this.#controlError);
        this.#controlError = null;
      } else {
        this.#completeUser(
          ov,
          taken,
          this.#remaining > 0 ? new OverlappedError('OVL_ERR_MORE_DATA') : null,
        );
      }
    }
  }

  #controlError: Error | null = null;

  /** Client, message mode: waits for the first control frame. True once connected. */
  #handshake(): boolean {
    const ov = this.#connectOv as Overlapped<unknown>;
    let error: Error | null = this.#failure;
    if (error === null) {
      const text = this.#takeControl();
      if (text === null) {
        error = this.#failure;
        if (error === null && !this.#eof) {
          this.#postRecv();
          return false;
        }
        error ??= new OverlappedError(
          'OVL_ERR_BROKEN_PIPE',
          `the server on ${this.path} closed the connection before it was ready (is it a byte-mode server?)`,
        );
      } else if (text !== READY) {
        error = controlError(text);
      }
    }
    this.#connectOv = null;
    this.#completeUser(ov, 0, error);
    if (error !== null) {
      this.markClosed();
      this.#abortReads();
      this.#stream.close(false);
    }
    return error === null;
  }

  /** Takes one whole control frame from the stage, or returns null (needs more, or protocol failure). */
  #takeControl(): string | null {
    const avail = this.#end - this.#start;
    if (avail < FRAME_HEADER_BYTES) return null;
    const stage = this.#stage as Buffer;
    const header = stage.readUInt32BE(this.#start);
    const length = header & 0x7fff_ffff;
    if ((header & CONTROL_FLAG) === 0 || length > MAX_CONTROL_BYTES) {
      this.#failure = new OverlappedError(
        'OVL_ERR_PIPE_PROTOCOL',
        `${this.path} did not answer with a control frame: is it an overlapped pipe server in message mode?`,
      );
      return null;
    }
    if (avail < FRAME_HEADER_BYTES + length) {
      this.#reserve(FRAME_HEADER_BYTES + length);
      return null;
    }
    const text = stage.toString(
      'utf8',
      this.#start + FRAME_HEADER_BYTES,
      this.#start + FRAME_HEADER_BYTES + length,
    );
    this.#start += FRAME_HEADER_BYTES + length;
    return text;
  }

  /**
   * Takes the next message (or the next piece of one) into `buffer`:
   * the byte count, NEED_MORE, FAILED (see #failure) or CONTROL_ERROR.
   */
  #take(buffer: Uint8Array): number {
    for (;;) {
      const stage = this.#stage;
      const avail = this.#end - this.#start;
      if (this.#remaining < 0) {
        if (stage === null || avail < FRAME_HEADER_BYTES) return NEED_MORE;
        const header = stage.readUInt32BE(this.#start);
        if ((header & CONTROL_FLAG) !== 0) {
          if (this.#side === 'server') {
            this.#failure = new OverlappedError(
              'OVL_ERR_PIPE_PROTOCOL',
              'the client sent a frame with bit 31 set: only servers send control frames (docs/pipes.md)',
            );
            return FAILED;
          }
          const before = this.#failure;
          const text = this.#takeControl();
          if (text === null) return this.#failure !== before ? FAILED : NEED_MORE;
          if (text === READY) continue;
          this.#controlError = controlError(text);
          return CONTROL_ERROR;
        }
        if (header > this.maxMessage) {
          // Name whose limit it is: the client is told the server's, the server logs its own.
          this.#failure = new OverlappedError(
            'OVL_ERR_MESSAGE_TOO_LARGE',
            this.#side === 'server'
              ? `a ${header}-byte request arrived; this server takes at most ${this.maxMessage} bytes: send smaller requests or raise the server's maxMessage (pipe-server --max-message)`
              : `a ${header}-byte reply arrived; this client accepts at most ${this.maxMessage} bytes: raise the client's maxMessage (pipe-client --max-message)`,
          );
          return FAILED;
        }
        const wanted = Math.min(header, buffer.byteLength);
        if (avail - FRAME_HEADER_BYTES < wanted) {
          // Room for this read's piece only: what the header claims is not yet memory.
          this.#reserve(FRAME_HEADER_BYTES + wanted);
          return NEED_MORE;
        }
        this.#start += FRAME_HEADER_BYTES;
        this.#remaining = header;
      }
      const n = Math.min(this.#remaining, buffer.byteLength);
      if (this.#end - this.#start < n) {
        this.#reserve(n);
        return NEED_MORE;
      }
      if (n > 0) (stage as Buffer).copy(buffer, 0, this.#start, this.#start + n);
      this.#start += n;
      this.#remaining -= n;
      if (this.#remaining === 0) this.#remaining = -1;
      if (this.#start === this.#end) this.#start = this.#end = 0;
      return n;
    }
  }

  /**
   * Makes room for `bytes` from #start, compacting first. Storage follows the
   * bytes that arrived, never what a header claims: a new stage is at most
   * twice the bytes held (and at least {@link INITIAL_STAGE_BYTES}), so a
   * frame the read buffer cannot hold grows it step by step as it arrives,
   * up to one largest frame. An allocation the process cannot make fails
   * this connection only (OVL_ERR_MESSAGE_TOO_LARGE), never the process.
   */
  #reserve(bytes: number): void {
    const stage = this.#stage;
    if (stage !== null && stage.length - this.#start >= bytes) return;
    const held = this.#end - this.#start;
    const limit = this.#largestFrame();
    const size = Math.min(limit, bytes, Math.max(held * 2, INITIAL_STAGE_BYTES));
    if (stage !== null && stage.length >= size) {
      stage.copyWithin(0, this.#start, this.#end);
    } else {
      let grown: Buffer;
      try {
        grown = Buffer.allocUnsafe(size);
      } catch (err) {
        this.#failure ??= new OverlappedError(
          'OVL_ERR_MESSAGE_TOO_LARGE',
          `no memory for ${size} bytes of a message in progress: send smaller messages or lower --max-message`,
          { cause: err },
        );
        return;
      }
      if (stage !== null) stage.copy(grown, 0, this.#start, this.#end);
      this.#stage = grown;
    }
    this.#start = 0;
    this.#end = held;
  }

  /**
   * The largest frame the stage must hold: one largest message, and on the
   * client side also one largest control frame (READY must fit even when
   * `maxMessage` is a few bytes).
   */
  #largestFrame(): number {
    const payload =
      this.#side === 'client' ? Math.max(this.maxMessage, MAX_CONTROL_BYTES) : this.maxMessage;
    return FRAME_HEADER_BYTES + payload;
  }

  #postRecv(): void {
    if (this.#recvPending || this.#eof || this.#failure !== null || this.closed) return;
    let stage = this.#stage;
    if (stage === null) {
      stage = Buffer.allocUnsafe(Math.min(INITIAL_STAGE_BYTES, this.#largestFrame()));
      this.#stage = stage;
    }
    if (this.#end === stage.length && this.#start > 0) {
      stage.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#end === stage.length) {
      // #reserve sizes the stage for the frame being read, so it cannot be full here.
      this.#failure = new OverlappedError('OVL_ERR_INTERNAL', 'pipe staging buffer full');
      return;
    }
    this.#recvPending = true;
    this.#stream.recv(this.#recv, stage.subarray(this.#end));
  }
}

const NEED_MORE = -1;
const FAILED = -2;
const CONTROL_ERROR = -3;
