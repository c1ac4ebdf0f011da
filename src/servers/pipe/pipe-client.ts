/**
 * The client side of a pipe, in promise style over the overlapped core:
 * each call posts operations on a {@link PipeConnection} and awaits their
 * completion with `getOverlappedResult(ov, { wait: true })`.
 */
import { check, OverlappedError } from '../../core/errors.js';
import { Overlapped } from '../../core/overlapped.js';
import {
  CONTROL_FLAG,
  FRAME_HEADER_BYTES,
  PipeConnection,
  type PipeMode,
  pipeSettings,
  READY,
} from '../../core/pipe-connection.js';
import { DEFAULT_PIPE_NAME, resolvePipeName } from '../../core/pipe-name.js';
import { getOverlappedResult } from '../../core/waits.js';
import type { Engine, EngineOption } from '../../engines/contract.js';
import { resolveEngine } from '../../engines/select.js';

export interface PipeClientOptions {
  /** `'node'`, `'uring'` or an Engine; default: this thread's engine. */
  engine?: EngineOption;
  /**
   * How long to keep retrying while every instance is busy
   * (`OVL_ERR_PIPE_BUSY`), as `WaitNamedPipe` then `CreateFile`. Default 0:
   * fail at once, as CreateFile does.
   */
  timeoutMs?: number;
  /** Must match the server's; default `message`. */
  mode?: PipeMode;
  /** Largest reply this client accepts; default 64 KiB. */
  maxMessage?: number;
  /**
   * Message mode: how long a connected server may take to send READY (or
   * say it is busy) before the connect fails with `OVL_ERR_PIPE_PROTOCOL`
   * (a byte-mode server never sends it). Default 5000 ms.
   */
  readyTimeoutMs?: number;
}

/** Default wait for the READY frame. */
const DEFAULT_READY_TIMEOUT_MS = 5000;

/** First and longest pause between connect attempts while the server is busy. */
const RETRY_FIRST_MS = 5;
const RETRY_MAX_MS = 100;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function isCode(err: unknown, code: string): boolean {
  return err instanceof OverlappedError && err.code === code;
}

async function connectOnce(
  engine: Engine,
  path: string,
  mode: PipeMode,
  maxMessage: number,
  readyTimeoutMs: number,
): Promise<PipeConnection> {
  const ov = new Overlapped();
  const conn = PipeConnection.connect({ engine, path, mode, maxMessage }, ov);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.cancel(ov);
  }, readyTimeoutMs);
  try {
    await getOverlappedResult(ov, { wait: true });
  } catch (err) {
    conn.destroy();
    if (timedOut) {
      throw new OverlappedError(
        'OVL_ERR_PIPE_PROTOCOL',
        `the server on ${path} sent no READY within ${readyTimeoutMs} ms: is it a byte-mode server (then connect with mode 'byte')?`,
        { cause: err },
      );
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return conn;
}

/**
 * Connects, retrying while the server answers `OVL_ERR_PIPE_BUSY` until
 * `timeoutMs` has passed. Rejects with `OVL_ERR_PIPE_BUSY` (still busy at
 * the deadline), `OVL_ERR_PIPE_NOT_FOUND` (no server), or another error.
 */
async function connectWithWait(path: string, options: PipeClientOptions): Promise<PipeConnection> {
  const { mode, maxMessage } = pipeSettings(options);
  const timeoutMs = options.timeoutMs ?? 0;
  check(
    typeof timeoutMs === 'number' && timeoutMs >= 0 && !Number.isNaN(timeoutMs),
    'OVL_ERR_INVALID_ARGUMENT',
    `timeoutMs must be a number >= 0, got ${String(timeoutMs)}`,
  );
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  check(
    Number.isFinite(readyTimeoutMs) && readyTimeoutMs > 0,
    'OVL_ERR_INVALID_ARGUMENT',
    `readyTimeoutMs must be a number > 0, got ${String(readyTimeoutMs)}`,
  );
  const engine = resolveEngine(options.engine);
  const deadline = performance.now() + timeoutMs;
  let pause = RETRY_FIRST_MS;
  for (;;) {
    try {
      return await connectOnce(engine, path, mode, maxMessage, readyTimeoutMs);
    } catch (err) {
      const left = deadline - performance.now();
      if (!isCode(err, 'OVL_ERR_PIPE_BUSY') || left <= 0) {
        if (isCode(err, 'OVL_ERR_PIPE_BUSY') && timeoutMs > 0) {
          throw new OverlappedError(
            'OVL_ERR_PIPE_BUSY',
            `every instance of ${path} stayed busy for ${timeoutMs} ms: retry later or raise the server's --instances`,
            { cause: err },
          );
        }
        throw err;
      }
      await sleep(Math.min(pause, left));
      pause = Math.min(pause * 2, RETRY_MAX_MS);
    }
  }
}

/**
 * `WaitNamedPipe`: resolves true once an instance of the pipe was free
 * within `timeoutMs`, false when every instance stayed busy. Rejects with
 * `OVL_ERR_PIPE_NOT_FOUND` when no server listens. It learns this by
 * connecting and disconnecting at once (a Unix socket cannot be asked
 * otherwise), so the server sees a short-lived client; and, as on Windows,
 * another client may take the free instance before yours connects.
 * Needs message mode: a byte-mode server cannot say it is busy.
 */
export async function waitNamedPipe(
  name: string,
  timeoutMs: number,
  options: Omit<PipeClientOptions, 'timeoutMs' | 'mode'> = {},
): Promise<boolean> {
  try {
    const conn = await connectWithWait(resolvePipeName(name, { create: false }), {
      ...options,
      timeoutMs,
    });
    conn.close();
    return true;
  } catch (err) {
    if (isCode(err, 'OVL_ERR_PIPE_BUSY')) return false;
    throw err;
  }
}

/**
 * True if `data`, the first bytes a byte-mode client received, begin with the
 * control frame a message-mode server sends first (READY, or an `OVL_ERR_*`
 * refusal such as busy). A byte-mode server could send those bytes too, but
 * a 4-byte header with bit 31 set followed by READY or OVL_ERR_ is not
 * something a byte protocol starts with by accident.
 */
function isMessageModeGreeting(data: Buffer): boolean {
  if (data.length < FRAME_HEADER_BYTES) return false;
  const header = data.readUInt32BE(0);
  if ((header & CONTROL_FLAG) === 0) return false;
  const length = header & 0x7fff_ffff;
  const text = data.toString(
    'latin1',
    FRAME_HEADER_BYTES,
    FRAME_HEADER_BYTES + Math.min(length, 8),
  );
  // The frame may have arrived in part: a prefix of READY counts.
  if (length === READY.length && READY.startsWith(text)) return true;
  return text.startsWith('OVL_ERR_') || (text.length < 8 && 'OVL_ERR_'.startsWith(text));
}

/**
 * A connection to a pipe server. Messages are read and written whole
 * (message mode) or as raw bytes (byte mode). Calls may overlap: writes go
 * out in call order and reads are served in call order; `transact` calls are
 * run one after another, so each gets the reply to its own request.
 */
export class PipeClient {
  readonly #conn: PipeConnection;
  readonly #readBuffer: Buffer;
  #chain: Promise<unknown> = Promise.resolve();
  #readBusy = false;
  /** Byte mode: whether the first bytes were checked for a message-mode server's greeting. */
  #greetingChecked = false;

  private constructor(conn: PipeConnection) {
    this.#conn = conn;
    this.#readBuffer = Buffer.allocUnsafe(Math.min(conn.maxMessage, 64 * 1024));
  }

  /**
   * Connects to pipe `name` (a bare name or a path), waiting up to
   * `timeoutMs` while every instance is busy.
   */
  static async connect(
    name: string = DEFAULT_PIPE_NAME,
    options: PipeClientOptions = {},
  ): Promise<PipeClient> {
    const path = resolvePipeName(name, { create: false });
    return new PipeClient(await connectWithWait(path, options));
  }

  /** The resolved pipe path. */
  get path(): string {
    return this.#conn.path;
  }

  get mode(): PipeMode {
    return this.#conn.mode;
  }

  /** Writes one message; resolves with its length once the OS has taken it. */
  async write(message: Uint8Array | string): Promise<number> {
    const ov = new Overlapped();
    this.#conn.write(typeof message === 'string' ? Buffer.from(message) : message, ov);
    return getOverlappedResult(ov, { wait: true });
  }

  /**
   * Reads one whole message (message mode: assembled from its pieces when it
   * is larger than the read buffer), or what has arrived (byte mode; an empty
   * buffer there is end of stream). Rejects with `OVL_ERR_BROKEN_PIPE` when
   * the server closed the pipe, or with the error a server control frame
   * named (`OVL_ERR_MESSAGE_TOO_LARGE`, `OVL_ERR_HANDLER_FAILED`, …). In
   * byte mode, a first read that finds a message-mode server's framed
   * greeting rejects with `OVL_ERR_PIPE_PROTOCOL` instead of returning it.
   */
  async read(): Promise<Buffer> {
    // Reads may overlap: only one at a time uses the shared buffer.
    const shared = !this.#readBusy;
    const buffer = shared ? this.#readBuffer : Buffer.allocUnsafe(this.#readBuffer.length);
    if (shared) this.#readBusy = true;
    try {
      const data = await this.#read(buffer);
      if (this.mode === 'byte' && !this.#greetingChecked && data.length > 0) {
        this.#greetingChecked = true;
        if (isMessageModeGreeting(data)) {
          throw new OverlappedError(
            'OVL_ERR_PIPE_PROTOCOL',
            `the server on ${this.path} is a message-mode server (it sent a framed READY): connect in message mode (mode 'message', --mode message)`,
          );
        }
      }
      return data;
    } finally {
      if (shared) this.#readBusy = false;
    }
  }

  async #read(buffer: Buffer): Promise<Buffer> {
    let parts: Buffer[] | null = null;
    for (;;) {
      const ov = new Overlapped();
      this.#conn.read(buffer, ov);
      try {
        const bytes = await getOverlappedResult(ov, { wait: true });
        const piece = Buffer.from(buffer.subarray(0, bytes));
        if (parts === null) return piece;
        parts.push(piece);
        return Buffer.concat(parts);
      } catch (err) {
        if (!isCode(err, 'OVL_ERR_MORE_DATA')) throw err;
        parts ??= [];
        parts.push(Buffer.from(buffer.subarray(0, ov.bytes)));
      }
    }
  }

  /**
   * `TransactNamedPipe`: writes `request` and reads the reply. Concurrent
   * calls are queued, so each gets its own reply.
   */
  transact(request: Uint8Array | string): Promise<Buffer> {
    const run = async () => {
      const [, reply] = await Promise.all([this.write(request), this.read()]);
      return reply;
    };
    const result = this.#chain.then(run, run);
    this.#chain = result.catch(() => {});
    return result;
  }

  /** Closes the connection; pending calls reject with `OVL_ERR_ABORTED`. Idempotent. */
  close(): void {
    this.#conn.close();
  }
}
