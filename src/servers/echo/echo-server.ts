/**
 * The completion-port echo server of the seeds (port 5150, 8 KiB buffers,
 * 2 x CPUs worker loops), on overlapped's core.
 *
 * Per-handle data ({@link Connection}): the socket and the peer address.
 * Per-I/O data ({@link EchoIo}): the buffer, bytes received and bytes sent.
 * Each connection has one Overlapped that alternates between recv and send:
 * a recv completion sends back what arrived; a send completion either sends
 * the rest (partial send) or, once every received byte is sent, posts the
 * next recv. A zero-byte recv (end of stream) or an error closes the
 * connection and frees its records.
 *
 * With `pooled`, a connection owns no receive buffer: each recv is a pooled
 * recv, the echo is sent from the lent pool buffer, and the buffer goes back
 * to the pool once the echo is sent, before the next recv is posted.
 */
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { type Completion, CompletionPort, type PortWorker } from '../../core/completion-port.js';
import { check, OverlappedError } from '../../core/errors.js';
import { Overlapped } from '../../core/overlapped.js';
import { TcpListener } from '../../core/tcp-listener.js';
import type { TcpSocket } from '../../core/tcp-socket.js';
import type { BufferLease, Endpoint, Engine } from '../../engines/contract.js';

export const ECHO_DEFAULTS = {
  host: '127.0.0.1',
  port: 5150,
  bufferSize: 8192,
  maxConnections: 10_000,
  /** Accepts kept posted at once, so bursts of connections do not wait on one another. */
  pendingAccepts: 16,
  stopDeadlineMs: 5000,
} as const;

export interface EchoServerOptions {
  engine: Engine;
  host?: string;
  port?: number;
  /** Worker loops draining the port. Default: 2 x CPUs, as in the seeds. */
  workers?: number;
  /** Port concurrency. Default: CPUs. */
  concurrency?: number;
  /** Bytes per connection's receive buffer. Default 8192. */
  bufferSize?: number;
  /** Connections served at once; further clients are reset at once. Default 10000. */
  maxConnections?: number;
  backlog?: number;
  /**
   * TCP_NODELAY on accepted connections. Default true: the server echoes a
   * large message in buffer-sized pieces, and Nagle's algorithm would hold
   * each piece after the first until the client's delayed ACK (about 40 ms).
   */
  noDelay?: boolean;
  /** Receives one info line per connect and disconnect; warnings for refused clients. */
  logger?: Logger;
  /**
   * Pooled receive mode: no buffer per connection; each recv borrows an 8 KiB
   * pool buffer only when data arrives (`bufferSize` is then unused). Idle
   * connections hold no receive buffer. Default false.
   */
  pooled?: boolean;
}

/** Per-I/O data: the buffer and how far the current echo got. */
export interface EchoIo {
  /** The connection's buffer; in pooled mode, the lent pool buffer holding the echo (or empty). */
  buffer: Buffer;
  /** Pooled mode: the lease of `buffer` until the echo is sent. */
  lease: BufferLease | null;
  bytesRecv: number;
  bytesSent: number;
}

/** Per-handle data: the completion key of each connection. */
interface Connection {
  readonly socket: TcpSocket;
  readonly peer: string;
  readonly io: Overlapped<EchoIo>;
}

type Key = Connection | typeof LISTENER;
const LISTENER = Symbol('listener');
const EMPTY = Buffer.alloc(0);

function describe(endpoint: Endpoint | null): string {
  if (endpoint === null) return 'unknown';
  return endpoint.family === 'IPv6'
    ? `[${endpoint.address}]:${endpoint.port}`
    : `${endpoint.address}:${endpoint.port}`;
}

function isAborted(error: Error | null): boolean {
  return error instanceof OverlappedError && error.code === 'OVL_ERR_ABORTED';
}

/**
 * A running echo server. `stop()` is graceful: stop accepting, let echoes in
 * flight finish (idle connections are closed at once), and close whatever is
 * left when the deadline passes.
 */
export class EchoServer {
  readonly #port: CompletionPort<Key, unknown>;
  readonly #listener: TcpListener;
  readonly #connections = new Set<Connection>();
  readonly #bufferSize: number;
  readonly #maxConnections: number;
  readonly #logger: Logger | undefined;
  readonly #pooled: boolean;
  readonly #workers: Promise<void>[] = [];
  #stopping: Promise<void> | null = null;
  #drained: (() => void) | null = null;
  /** Connections refused because of maxConnections, since start. */
  refused = 0;

  private constructor(
    port: CompletionPort<Key, unknown>,
    listener: TcpListener,
    options: EchoServerOptions,
  ) {
    this.#port = port;
    this.#listener = listener;
    this.#bufferSize = options.bufferSize ?? ECHO_DEFAULTS.bufferSize;
    this.#maxConnections = options.maxConnections ?? ECHO_DEFAULTS.maxConnections;
    this.#logger = options.logger;
    this.#pooled = options.pooled === true;
  }

  /** Listens and starts the worker loops. Rejects with an OsError (EADDRINUSE, …). */
  static async start(options: EchoServerOptions): Promise<EchoServer> {
    const cpus = availableParallelism();
    const workers = options.workers ?? 2 * cpus;
    const bufferSize = options.bufferSize ?? ECHO_DEFAULTS.bufferSize;
    const maxConnections = options.maxConnections ?? ECHO_DEFAULTS.maxConnections;
    for (const [name, value, min] of [
      ['workers', workers, 1],
      ['bufferSize', bufferSize, 1],
      ['maxConnections', maxConnections, 1],
    ] as const) {
      check(
        Number.isSafeInteger(value) && value >= min,
        'OVL_ERR_INVALID_ARGUMENT',
        `${name} must be a whole number >= ${min}, got ${String(value)}`,
      );
    }
    const port = new CompletionPort<Key, unknown>({ concurrency: options.concurrency ?? cpus });
    const listenOptions: Parameters<typeof TcpListener.listen>[0] = {
      engine: options.engine,
      host: options.host ?? ECHO_DEFAULTS.host,
      port: options.port ?? ECHO_DEFAULTS.port,
      // Never more sends in flight than one buffer: a slow reader stalls only itself.
      maxPendingSendBytes: bufferSize,
    };
    if (options.backlog !== undefined) listenOptions.backlog = options.backlog;
    listenOptions.noDelay = options.noDelay ?? true;
    const listener = await TcpListener.listen(listenOptions);
    port.associate(listener, LISTENER);
    const server = new EchoServer(port, listener, options);
    for (let i = 0; i < ECHO_DEFAULTS.pendingAccepts; i++) listener.accept(new Overlapped());
    for (let i = 0; i < workers; i++) server.#workers.push(server.#work(port.worker()));
    return server;
  }

  /** The bound address (the real port when 0 was asked for). */
  get address(): Endpoint {
    return this.#listener.address;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#connections.size;
  }

  /**
   * Stops gracefully: no new connections; connections waiting for data are
   * closed; echoes in flight finish, until `deadlineMs`, after which the rest
   * are closed. Resolves when every connection is closed and every worker
   * has returned. Idempotent: later calls return the same promise.
   */
  stop(options: { deadlineMs?: number } = {}): Promise<void> {
    this.#stopping ??= this.#stop(options.deadlineMs ?? ECHO_DEFAULTS.stopDeadlineMs);
    return this.#stopping;
  }

  async #stop(deadlineMs: number): Promise<void> {
    this.#listener.close();
    const drained = new Promise<void>((resolve) => {
      this.#drained = resolve;
    });
    if (this.#connections.size === 0) this.#drained?.();
    for (const conn of this.#connections) {
      // An idle connection has its recv posted: cancelling it ends that connection.
      if (conn.io.operation === 'recv') conn.socket.cancel(conn.io);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(resolve, deadlineMs, 'deadline');
    });
    if ((await Promise.race([drained, deadline])) === 'deadline') {
      this.#logger?.warn(
        { connections: this.#connections.size, deadlineMs },
        'stop deadline passed: closing the remaining connections',
      );
      // Their pending operations complete (aborted) through the workers, which free them.
      for (const conn of this.#connections) conn.socket.close();
      await drained;
    }
    clearTimeout(timer);
    // The listener's aborted accepts are delivered on the next tick; let them land first.
    while (this.#listener.pendingOperations > 0) await new Promise((r) => setImmediate(r));
    this.#port.close();
    await Promise.all(this.#workers);
  }

  async #work(worker: PortWorker<Key, unknown>): Promise<void> {
    for (;;) {
      let batch: Completion<Key, unknown>[];
      try {
        batch = await worker.dequeueMany({ max: 64 });
      } catch (err) {
        if (err instanceof OverlappedError && err.code === 'OVL_ERR_PORT_CLOSED') return;
        throw err;
      }
      for (let i = 0; i < batch.length; i++) {
        const c = batch[i] as Completion<Key, unknown>;
        if (c.key === LISTENER) this.#onAccept(c.overlapped as Overlapped);
        else this.#onIo(c.key, c);
      }
    }
  }

  #onAccept(ov: Overlapped): void {
    const socket = ov.socket;
    if (this.#stopping !== null) {
      socket?.destroy();
      return;
    }
    if (socket !== null) this.#open(socket);
    else if (ov.error !== null && !isAborted(ov.error)) {
      this.#logger?.warn({ err: ov.error }, 'accept failed');
    }
    this.#listener.accept(ov);
  }

  #open(socket: TcpSocket): void {
    const peer = describe(socket.remoteAddress);
    if (this.#connections.size >= this.#maxConnections) {
      this.refused++;
      this.#logger?.warn(
        { peer, maxConnections: this.#maxConnections },
        'connection refused: at maxConnections',
      );
      socket.destroy();
      return;
    }
    const io = new Overlapped<EchoIo>({
      buffer: this.#pooled ? EMPTY : Buffer.allocUnsafe(this.#bufferSize),
      lease: null,
      bytesRecv: 0,
      bytesSent: 0,
    });
    const conn: Connection = { socket, peer, io };
    this.#connections.add(conn);
    this.#port.associate(socket, conn);
    this.#logger?.info({ peer, connections: this.#connections.size }, 'connected');
    this.#postRecv(conn);
  }

  #postRecv(conn: Connection): void {
    const io = conn.io;
    if (this.#pooled) conn.socket.recvPooled(io);
    else conn.socket.recv(io.data.buffer, io);
  }

  /** Pooled mode: the echo is sent (or abandoned); its pool buffer goes back. */
  #release(state: EchoIo): void {
    if (state.lease === null) return;
    state.lease.release();
    state.lease = null;
    state.buffer = EMPTY;
  }

  #onIo(conn: Connection, c: Completion<Key, unknown>): void {
    const io = conn.io;
    const state = io.data;
    if (c.error !== null) {
      if (!isAborted(c.error)) {
        this.#logger?.info({ peer: conn.peer, err: c.error.message }, 'connection error');
      }
      this.#close(conn);
      return;
    }
    if (io.operation === 'recv') {
      if (c.bytes === 0) {
        this.#close(conn);
        return;
      }
      if (this.#pooled) {
        state.lease = io.lease;
        state.buffer = io.lease?.view ?? EMPTY;
      }
      state.bytesRecv = c.bytes;
      state.bytesSent = 0;
    } else {
      state.bytesSent += c.bytes;
    }
    if (state.bytesSent < state.bytesRecv) {
      conn.socket.send(state.buffer.subarray(state.bytesSent, state.bytesRecv), io);
    } else if (this.#stopping !== null) {
      this.#close(conn);
    } else {
      this.#release(state);
      this.#postRecv(conn);
    }
  }

  #close(conn: Connection): void {
    if (!this.#connections.delete(conn)) return;
    conn.socket.close();
    // Called only from a delivered completion: no send of the leased buffer is pending.
    this.#release(conn.io.data);
    this.#logger?.info({ peer: conn.peer, connections: this.#connections.size }, 'disconnected');
    if (this.#connections.size === 0) this.#drained?.();
  }
}
