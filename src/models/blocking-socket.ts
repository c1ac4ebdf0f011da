/**
 * The worker thread's side of the blocking model: a socket whose `recv`
 * blocks the calling thread until bytes arrive and whose `send` blocks
 * until every byte is written, as a Winsock socket in blocking mode.
 *
 * Two ways to get one, chosen by the engine that accepted the connection:
 * - `descriptor` (uring): the connection's descriptor itself was handed to
 *   this thread (descriptors belong to the process) and switched to blocking
 *   mode; `recv` and `send` are the plain system calls, made here, blocking
 *   this thread only.
 * - `proxied` (node): node:net sockets cannot leave the main thread, so
 *   this thread blocks in `Atomics.wait` on a shared buffer while the main
 *   thread does the I/O with overlapped calls and wakes it with the result.
 *   The calls block exactly as a blocking socket's would; the bytes cross a
 *   shared buffer of {@link PROXY_DATA_BYTES} on the way.
 */
import { constants } from 'node:os';
import type { MessagePort } from 'node:worker_threads';
import { OsError, UsageError } from '../core/errors.js';
import type { BlockingDescriptorIo } from '../engines/contract.js';

/** How a blocking socket reaches its connection (see the module comment). */
export type BlockingMode = 'descriptor' | 'proxied';

/** Bytes one proxied call moves at most (a larger send is split; a recv gets at most this). */
export const PROXY_DATA_BYTES = 64 * 1024;

/**
 * Words of a descriptor socket's progress record, shared with the acceptor
 * (a BigInt64Array): bytes received and sent, whether the thread is blocked
 * in `recv` or `send` now, and when a call last moved bytes (ms since the
 * epoch). A graceful stop reads them to see a connection go quiet (blocked
 * in recv, nothing received since its last look), and the deadlines to see
 * how long it has been idle. @internal
 */
export const Progress = {
  RECEIVED: 0,
  SENT: 1,
  IN_RECV: 2,
  IN_SEND: 3,
  LAST: 4,
  BYTES: 5 * 8,
} as const;

/** ProxyCall call codes and states in the shared control words. @internal */
export const ProxyCall = {
  /** control[STATE]: the worker waits on it while it is REQUEST. */
  STATE: 0,
  OP: 1,
  /** In: bytes asked or given. Out: the result (bytes, or -1 with an error in the data area). */
  LENGTH: 2,
  IDLE: 0,
  REQUEST: 1,
  DONE: 2,
  RECV: 1,
  SEND: 2,
  SHUTDOWN: 3,
  CONTROL_BYTES: 16,
} as const;

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value, name]),
);

/** An OsError from a -errno result, named as Node names it. */
function osError(result: number, syscall: string): OsError {
  const code = errnoNames.get(-result) ?? 'EIO';
  return new OsError(code, result, syscall, `${syscall} ${code}`);
}

/** A connected socket in blocking mode, used from the thread that serves it. */
export interface BlockingSocket {
  /** How this socket reaches its connection. */
  readonly mode: BlockingMode;
  /** `address:port` of the client. */
  readonly peer: string;
  /** Blocks until at least one byte is there; returns the count, 0 at end of stream. Throws an OsError. */
  recv(buffer: Uint8Array): number;
  /** Blocks until every byte of `data` is written; returns its length. Throws an OsError (EPIPE, ECONNRESET). */
  send(data: Uint8Array): number;
  /** `shutdown(SD_SEND)`: FIN after every byte sent; recv goes on. */
  shutdown(): void;
}

function checkBuffer(buffer: Uint8Array, call: string): void {
  if (!ArrayBuffer.isView(buffer) || buffer.byteLength === 0) {
    throw new UsageError('OVL_ERR_INVALID_ARGUMENT', `${call}() needs a non-empty Uint8Array`);
  }
}

/** A real blocking socket: the descriptor, in blocking mode, and the engine's blocking calls. @internal */
export class DescriptorSocket implements BlockingSocket {
  readonly mode = 'descriptor';
  #shut = false;
  readonly #progress: BigInt64Array;

  constructor(
    readonly fd: number,
    readonly peer: string,
    readonly io: BlockingDescriptorIo,
    progress: SharedArrayBuffer,
  ) {
    this.#progress = new BigInt64Array(progress);
    Atomics.store(this.#progress, Progress.LAST, BigInt(Date.now()));
    const result = io.setBlocking(fd, true);
    if (result < 0) throw osError(result, 'fcntl');
  }

  recv(buffer: Uint8Array): number {
    checkBuffer(buffer, 'recv');
    const progress = this.#progress;
    Atomics.store(progress, Progress.IN_RECV, 1n);
    const n = this.io.recv(this.fd, buffer);
    if (n > 0) {
      Atomics.add(progress, Progress.RECEIVED, BigInt(n));
      Atomics.store(progress, Progress.LAST, BigInt(Date.now()));
    }
    Atomics.store(progress, Progress.IN_RECV, 0n);
    if (n < 0) throw osError(n, 'recv');
    return n;
  }

  send(data: Uint8Array): number {
    if (data.byteLength === 0) return 0;
    const progress = this.#progress;
    Atomics.store(progress, Progress.IN_SEND, 1n);
    const n = this.io.send(this.fd, data);
    Atomics.store(progress, Progress.IN_SEND, 0n);
    if (n < 0) throw osError(n, 'send');
    Atomics.add(progress, Progress.SENT, BigInt(n));
    Atomics.store(progress, Progress.LAST, BigInt(Date.now()));
    return n;
  }

  shutdown(): void {
    if (this.#shut) return;
    this.#shut = true;
    const result = this.io.shutdown(this.fd, 1);
    if (result < 0 && -result !== constants.errno.ENOTCONN) throw osError(result, 'shutdown');
  }
}

/** The blocking equivalent on node: calls proxied to the main thread through shared memory. @internal */
export class ProxiedSocket implements BlockingSocket {
  readonly mode = 'proxied';
  readonly #control: Int32Array;
  readonly #data: Uint8Array;
  readonly #port: MessagePort;

  constructor(
    shared: SharedArrayBuffer,
    port: MessagePort,
    readonly peer: string,
  ) {
    this.#control = new Int32Array(shared, 0, ProxyCall.CONTROL_BYTES / 4);
    this.#data = new Uint8Array(shared, ProxyCall.CONTROL_BYTES);
    this.#port = port;
  }

  /** Asks the main thread to make the call, and blocks this thread until it has. */
  #call(op: number, length: number, syscall: string): number {
    const control = this.#control;
    Atomics.store(control, ProxyCall.OP, op);
    Atomics.store(control, ProxyCall.LENGTH, length);
    Atomics.store(control, ProxyCall.STATE, ProxyCall.REQUEST);
    this.#port.postMessage(op);
    while (Atomics.load(control, ProxyCall.STATE) === ProxyCall.REQUEST) {
      Atomics.wait(control, ProxyCall.STATE, ProxyCall.REQUEST);
    }
    Atomics.store(control, ProxyCall.STATE, ProxyCall.IDLE);
    const result = Atomics.load(control, ProxyCall.LENGTH);
    if (result >= 0) return result;
    const text = Buffer.from(this.#data.subarray(0, -result - 1)).toString('utf8');
    const { code, errno, message } = JSON.parse(text) as {
      code: string;
      errno: number;
      message: string;
    };
    throw new OsError(code, errno, syscall, message);
  }

  recv(buffer: Uint8Array): number {
    checkBuffer(buffer, 'recv');
    const n = this.#call(ProxyCall.RECV, Math.min(buffer.byteLength, PROXY_DATA_BYTES), 'recv');
    if (n > 0) buffer.set(this.#data.subarray(0, n));
    return n;
  }

  send(data: Uint8Array): number {
    for (let offset = 0; offset < data.byteLength; offset += PROXY_DATA_BYTES) {
      const part = data.subarray(offset, offset + PROXY_DATA_BYTES);
      this.#data.set(part);
      this.#call(ProxyCall.SEND, part.byteLength, 'send');
    }
    return data.byteLength;
  }

  shutdown(): void {
    this.#call(ProxyCall.SHUTDOWN, 0, 'shutdown');
  }
}

/** Writes a failed proxied call's error into the data area; returns the LENGTH word for it. @internal */
export function encodeProxyError(data: Uint8Array, error: Error): number {
  const e = error as Partial<OsError>;
  const text = JSON.stringify({
    code: typeof e.code === 'string' ? e.code : 'EIO',
    errno: typeof e.errno === 'number' ? e.errno : -5,
    message: error.message,
  });
  const n = Buffer.from(data.buffer, data.byteOffset, data.byteLength).write(text, 'utf8');
  return -(n + 1);
}
