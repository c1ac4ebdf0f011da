import {
  type Endpoint,
  type Engine,
  type EngineOption,
  type EngineStream,
  Readiness,
  WOULD_BLOCK,
} from '../engines/contract.js';
import type { CompletionRoutine } from './apc.js';
import { add, counters } from './counters.js';
import { attachEngine, completeLater } from './delivery.js';
import { resolveEngine } from './engine-option.js';
import { check, OverlappedError, UsageError } from './errors.js';
import { Handle } from './handle.js';
import { checkHost } from './host-address.js';
import type { Overlapped } from './overlapped.js';
import type { ProxyHeader } from './proxy/proxy-header.js';

/** Default cap on bytes of sends posted and not yet completed, per socket. */
export const DEFAULT_MAX_PENDING_SEND_BYTES = 1024 * 1024;

export interface SocketOptions {
  /**
   * TCP_NODELAY: send small writes at once rather than coalescing them while
   * earlier data is unacknowledged (Nagle). Default false, as in Node and
   * Winsock; latency-bound protocols (games, RPC) usually want true.
   */
  noDelay?: boolean;
  /**
   * Cap on bytes of sends posted and not completed. A send that would pass it
   * (while others are pending) completes with `OVL_ERR_SEND_QUEUE_FULL`.
   * Default {@link DEFAULT_MAX_PENDING_SEND_BYTES}.
   */
  maxPendingSendBytes?: number;
}

export interface ConnectOptions extends SocketOptions {
  /** `'node'`, `'uring'` or an Engine; default: this thread's engine. */
  engine?: EngineOption;
  host?: string;
  port: number;
}

function totalLength(data: Uint8Array | readonly Uint8Array[]): number {
  if (ArrayBuffer.isView(data)) return data.byteLength;
  let n = 0;
  for (const part of data as readonly Uint8Array[]) {
    check(
      ArrayBuffer.isView(part),
      'OVL_ERR_INVALID_ARGUMENT',
      'send() takes a Uint8Array or an array of them',
    );
    n += part.byteLength;
  }
  return n;
}

const POLLABLE = Readiness.READABLE | Readiness.WRITABLE | Readiness.HANGUP;

export { WOULD_BLOCK };

function isQueueFull(error: Error | null): boolean {
  return error instanceof OverlappedError && error.code === 'OVL_ERR_SEND_QUEUE_FULL';
}

/**
 * A connected stream socket (TCP, or a pipe connection): WSARecv, WSASend,
 * shutdown, CancelIoEx and closesocket, as overlapped operations.
 *
 * Every operation takes an {@link Overlapped} and completes later, exactly
 * once, on the port the socket is associated with. The buffers you pass stay
 * the engine's until that completion is delivered: do not touch them before.
 */
export class TcpSocket extends Handle {
  readonly #stream: EngineStream;
  readonly maxPendingSendBytes: number;
  #pendingSendBytes = 0;
  readonly #proxy: ProxyHeader | null;

  /**
   * @internal An accepted connection (TcpListener). Private constructor and a
   * stripped factory: the published types show no way to construct a socket.
   */
  static fromStream(
    engine: Engine,
    stream: EngineStream,
    options: SocketOptions,
    proxy: ProxyHeader | null = null,
  ): TcpSocket {
    return new TcpSocket(engine, stream, options, proxy);
  }

  /** Sockets come from `accept` or {@link TcpSocket.connect}. */
  private constructor(
    engine: Engine,
    stream: EngineStream,
    options: SocketOptions = {},
    proxy: ProxyHeader | null = null,
  ) {
    super(engine);
    this.#stream = stream;
    this.#proxy = proxy;
    add(counters.connectionsOpen, this.engineIndex);
    const max = options.maxPendingSendBytes ?? DEFAULT_MAX_PENDING_SEND_BYTES;
    check(
      Number.isSafeInteger(max) && max >= 1,
      'OVL_ERR_INVALID_ARGUMENT',
      `maxPendingSendBytes must be a whole number >= 1, got ${String(max)}`,
    );
    this.maxPendingSendBytes = max;
    if (options.noDelay) stream.setNoDelay(true);
  }

  /**
   * Starts a connection (ConnectEx). The socket is returned at once so it can
   * be associated with a port; `ov` completes when the connection is made or
   * has failed (`ECONNREFUSED`, …).
   */
  static connect(options: ConnectOptions, ov: Overlapped<unknown>): TcpSocket {
    const { host = '127.0.0.1', port } = options;
    checkHost(host);
    check(
      Number.isInteger(port) && port >= 1 && port <= 65535,
      'OVL_ERR_INVALID_ARGUMENT',
      `port must be a whole number from 1 to 65535, got ${String(port)}`,
    );
    check(!ov.pending, 'OVL_ERR_OVERLAPPED_IN_USE');
    const engine = resolveEngine(options.engine);
    attachEngine(engine);
    const socket = new TcpSocket(engine, engine.connectTcp(ov, host, port), options);
    // The engine completes `ov` only after this call returns (rule 1), so marking it now is safe.
    socket.beginOperation(ov, 'connect');
    return socket;
  }

  /**
   * Takes over a connected socket's descriptor from another thread (the
   * other half of {@link TcpSocket.detach}): an acceptor thread detaches
   * what it accepted and a worker thread adopts it into its own engine.
   * Only on engines that have `adopt` (uring).
   */
  static adopt(engine: Engine, fd: number, options: SocketOptions = {}): TcpSocket {
    check(
      engine.adopt !== undefined,
      'OVL_ERR_NOT_SUPPORTED',
      `the ${engine.name} engine cannot adopt a descriptor from another thread`,
    );
    attachEngine(engine);
    return new TcpSocket(engine, engine.adopt(fd), options);
  }

  get localAddress(): Endpoint | null {
    return this.#stream.localEndpoint;
  }

  /**
   * The peer: the client named by the PROXY header when the listener reads
   * one (`proxyProtocol`) and it names one, else the connection's own peer.
   */
  get remoteAddress(): Endpoint | null {
    return this.#proxy?.source ?? this.#stream.remoteEndpoint;
  }

  /**
   * The load balancer the connection came through (the TCP peer) when the
   * listener read a PROXY header for it; null otherwise.
   */
  get proxiedBy(): Endpoint | null {
    return this.#proxy === null ? null : this.#stream.remoteEndpoint;
  }

  /** The PROXY header the connection began with (its version, command, source and destination), or null. */
  get proxyHeader(): ProxyHeader | null {
    return this.#proxy;
  }

  /** Turns TCP_NODELAY on or off (see {@link SocketOptions.noDelay}). */
  setNoDelay(enabled = true): void {
    check(!this.closed, 'OVL_ERR_HANDLE_CLOSED');
    this.#stream.setNoDelay(enabled);
  }

  /** Bytes of sends posted and not yet completed. */
  get pendingSendBytes(): number {
    return this.#pendingSendBytes;
  }

  /** Received bytes the engine holds that no recv has asked for (bounded by the engine). */
  get unreadBytes(): number {
    return this.#stream.unreadBytes;
  }

  /**
   * Receives into `buffer` (WSARecv). Completes as soon as at least one byte
   * is there, with `bytes` set; 0 bytes and no error means the peer closed
   * its side (end of stream). With `routine`, the completion goes to it, run
   * in this thread's next alertable wait, instead of to the port.
   */
  recv<T>(buffer: Uint8Array, ov: Overlapped<T>, routine?: CompletionRoutine<T>): void {
    check(
      ArrayBuffer.isView(buffer) && buffer.byteLength > 0,
      'OVL_ERR_INVALID_ARGUMENT',
      'recv() needs a non-empty Uint8Array (a zero-length recv could not be told from end of stream)',
    );
    this.beginOperation(ov, 'recv', buffer.byteLength, routine);
    this.#stream.recv(ov, buffer);
  }

  /**
   * Receives without a buffer of yours (pooled receive mode): the engine
   * lends a pool buffer only when data arrives, so an idle connection holds
   * none. On completion `ov.lease.view` holds the `bytes` received (at most
   * MAX_POOLED_RECV_BYTES, 64 KiB); call `ov.lease.release()` when done
   * with it. 0 bytes and no error is end of stream, with no lease. With
   * `routine`, the completion goes to it (see {@link TcpSocket.recv}).
   */
  recvPooled<T>(ov: Overlapped<T>, routine?: CompletionRoutine<T>): void {
    this.beginOperation(ov, 'recv', 0, routine);
    this.#stream.recvPooled(ov);
  }

  /**
   * Sends one buffer, or several gathered into one operation (WSASend with
   * several WSABUFs). Completes when the OS has taken the bytes; `bytes` less
   * than `ov.requested` means a partial send, and the rest is yours to send.
   * With `routine`, the completion goes to it (see {@link TcpSocket.recv}).
   */
  send<T>(
    data: Uint8Array | readonly Uint8Array[],
    ov: Overlapped<T>,
    routine?: CompletionRoutine<T>,
  ): void {
    const size = totalLength(data);
    this.beginOperation(ov, 'send', size, routine);
    if (this.#pendingSendBytes > 0 && this.#pendingSendBytes + size > this.maxPendingSendBytes) {
      completeLater(ov as Overlapped<unknown>, new UsageError('OVL_ERR_SEND_QUEUE_FULL'));
      return;
    }
    this.#pendingSendBytes += size;
    this.#stream.send(ov, data, size);
  }

  /**
   * Waits for readiness (the primitive below select, WSAAsyncSelect and
   * WSAEventSelect): completes once, with `ov.bytes` set to the
   * {@link Readiness} bits that hold, as soon as any of `events` does
   * (`ERROR` is reported whether asked for or not). Cancel or close abort
   * it. With `routine`, the completion goes to it (see {@link TcpSocket.recv}).
   */
  poll<T>(events: number, ov: Overlapped<T>, routine?: CompletionRoutine<T>): void {
    check(
      Number.isInteger(events) && events > 0 && (events & ~POLLABLE) === 0,
      'OVL_ERR_INVALID_ARGUMENT',
      'poll() takes a non-empty mask of Readiness.READABLE, WRITABLE and HANGUP',
    );
    this.beginOperation(ov, 'poll', 0, routine);
    this.#stream.poll(ov, events);
  }

  /**
   * Non-blocking receive (recv on a socket in FIONBIO mode): copies what is
   * there now into `buffer` and returns the count, 0 at end of stream, or
   * {@link WOULD_BLOCK} when nothing is there (or a posted recv is waiting
   * for it). Throws the connection's OsError (ECONNRESET, …).
   */
  tryRecv(buffer: Uint8Array): number {
    check(!this.closed, 'OVL_ERR_HANDLE_CLOSED');
    check(
      ArrayBuffer.isView(buffer) && buffer.byteLength > 0,
      'OVL_ERR_INVALID_ARGUMENT',
      'tryRecv() needs a non-empty Uint8Array (a zero-length recv could not be told from end of stream)',
    );
    return this.#stream.tryRecv(buffer);
  }

  /**
   * Non-blocking send: the OS takes what fits now (1 to all of `data`'s
   * bytes: a partial send is not an error) and the count is returned, or
   * {@link WOULD_BLOCK} when nothing fits (or posted sends are still
   * pending). `data` is yours again when this returns. Throws the
   * connection's OsError (EPIPE, ECONNRESET, …).
   */
  trySend(data: Uint8Array): number {
    check(!this.closed, 'OVL_ERR_HANDLE_CLOSED');
    check(ArrayBuffer.isView(data), 'OVL_ERR_INVALID_ARGUMENT', 'trySend() takes a Uint8Array');
    if (data.byteLength === 0) return 0;
    return this.#stream.trySend(data);
  }

  /**
   * Hands the connection's descriptor over, for a thread that does blocking
   * I/O on it (`engine.blocking`); this socket is closed and the descriptor
   * is the caller's to close. Only on engines whose descriptors can leave
   * the event loop (uring), and only with nothing pending.
   */
  detach(): number {
    check(!this.closed, 'OVL_ERR_HANDLE_CLOSED');
    const stream = this.#stream;
    check(
      stream.detach !== undefined,
      'OVL_ERR_NOT_SUPPORTED',
      `the ${this.engine.name} engine cannot hand a connection's descriptor to another thread`,
    );
    check(
      this.pendingOperations === 0 && stream.unreadBytes === 0,
      'OVL_ERR_INVALID_ARGUMENT',
      'detach() needs a socket with no operation pending and nothing received unread',
    );
    const fd = stream.detach();
    this.markClosed();
    return fd;
  }

  /** Half-closes (shutdown(SD_SEND)) after every earlier send; receiving goes on. */
  shutdown(ov: Overlapped<unknown>): void {
    this.beginOperation(ov, 'shutdown');
    this.#stream.shutdown(ov);
  }

  protected cancelPending(ov: Overlapped<unknown> | null): boolean {
    return this.#stream.cancel(ov);
  }

  protected override markClosed(): boolean {
    if (!super.markClosed()) return false;
    add(counters.connectionsOpen, this.engineIndex, -1);
    return true;
  }

  /**
   * Closes the socket (closesocket): pending operations complete with
   * `OVL_ERR_ABORTED`; bytes the OS already took are still delivered, then FIN.
   * Idempotent.
   */
  close(): void {
    if (this.markClosed()) this.#stream.close(false);
  }

  /**
   * Closes abortively: the peer sees a reset (RST). Idempotent. After `close()` it
   * cuts a lingering graceful close short (sends the OS was still taking complete
   * aborted, and the peer sees a reset); when nothing lingers it does nothing.
   */
  destroy(): void {
    this.markClosed();
    this.#stream.close(true);
  }

  /** @internal */
  override operationDone(ov: Overlapped<unknown>): void {
    super.operationDone(ov);
    if (ov.operation === 'send') {
      if (!isQueueFull(ov.error)) this.#pendingSendBytes -= ov.requested;
    } else if (ov.operation === 'connect') {
      ov.result = null;
      if (ov.error === null) ov.socket = this;
    }
  }
}
