/**
 * What the three echo servers (completion port, event objects, completion
 * routines) share: options and their defaults, the listener, the per-handle
 * and per-I/O records, the connection limit and log lines, the echo step
 * (recv → send all of it, finishing partial sends → recv), and graceful stop.
 *
 * A model supplies how completions reach it and how it posts the next
 * operation; the base keeps the bookkeeping identical, so the three differ
 * only in the part that is the model.
 */

import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import type { CompletionRoutine } from '../../core/apc.js';
import { countLimitClose } from '../../core/counters.js';
import {
  checkTimeouts,
  Deadline,
  deadlines,
  describeDeadline,
  STOP_QUIET_MS,
} from '../../core/deadlines.js';
import { check, OverlappedError } from '../../core/errors.js';
import { Overlapped } from '../../core/overlapped.js';
import {
  type ListenOptions,
  type ProxyListenOptions,
  pickProxyOptions,
  TcpListener,
} from '../../core/tcp-listener.js';
import type { TcpSocket } from '../../core/tcp-socket.js';
import type { BufferLease, Endpoint, EngineOption } from '../../engines/contract.js';
import { AcceptStorm, proxyErrorLog, RateLimitedWarning } from '../rate-limited-log.js';

export const ECHO_DEFAULTS = {
  host: '127.0.0.1',
  port: 5150,
  bufferSize: 8192,
  maxConnections: 10_000,
  /** Accepts kept posted at once, so bursts of connections do not wait on one another. */
  pendingAccepts: 16,
  stopDeadlineMs: 5000,
  /**
   * While stopping, a connection whose recv waited this long with nothing
   * arriving (every byte read was echoed) is quiet, and is closed with a FIN.
   */
  quietMs: STOP_QUIET_MS,
} as const;

/**
 * `proxyProtocol`, `proxyTimeoutMs`, `proxyFrom`: every connection begins
 * with a PROXY header (see ListenOptions); the connect lines then name the
 * client it gives, and bad headers get one rate-limited warning.
 */
export interface EchoServerOptions extends ProxyListenOptions {
  /** `'node'`, `'uring'` or an Engine; default: this thread's engine. */
  engine?: EngineOption;
  host?: string;
  port?: number;
  /** Completion-port model: worker loops draining the port. Default: 2 x CPUs, as in the seeds. */
  workers?: number;
  /** Completion-port model: port concurrency. Default: CPUs. */
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
   * Pooled receive mode: no buffer per connection; each recv borrows (a
   * slice of) a pool buffer only when data arrives, and the echo is sent
   * from it before it goes back. Idle connections hold no receive buffer. The default for
   * the overlapped models unless `bufferSize` is given (a buffer of that size
   * per connection, as the seeds' server has); true with `bufferSize` is
   * refused. The other models keep no buffer per connection either way.
   */
  pooled?: boolean;
  /**
   * Closes a connection that moved no byte in either direction for this
   * many ms (its pending operation completes with `OVL_ERR_TIMEOUT`). 0 or
   * absent: off (the default).
   */
  idleTimeoutMs?: number;
  /**
   * Resets a connection whose echo the client took no byte of for this many
   * ms (it does not read). 0 or absent: off (the default).
   */
  writeTimeoutMs?: number;
}

/** Per-I/O data: the buffer and how far the current echo got. */
export interface EchoIo {
  /** The connection's buffer; in pooled mode, the lent pool buffer holding the echo (or empty). */
  buffer: Buffer;
  /** Pooled mode: the lease of `buffer` until the echo is sent. */
  lease: BufferLease | null;
  bytesRecv: number;
  bytesSent: number;
  /**
   * The connection this record belongs to, as `CONTAINING_RECORD` finds it in
   * C: a completion routine is handed only the Overlapped.
   */
  connection: EchoConnection | null;
  /** The connection's idle or write deadline, when either is on (and its quiet period while stopping). */
  deadline: Deadline | null;
  /** Recvs completed with data: a stop's quiet check sees from it whether bytes came in. */
  recvs: number;
}

/** Per-handle data of one connection. Models extend it with what they need. */
export interface EchoConnection {
  readonly socket: TcpSocket;
  /** `address:port` of the client, for log lines; empty when info lines are off (saves a string per connection). */
  readonly peer: string;
  /** The connection's one Overlapped: it alternates between recv and send. */
  readonly io: Overlapped<EchoIo>;
}

/**
 * What the echo step asks the model to post next: `'send'` the unsent bytes
 * ({@link unsent}), `'recv'` into the buffer, or nothing (`'closed'`: the
 * connection was closed and freed).
 */
export type EchoStep = 'send' | 'recv' | 'closed';

/** The interface every echo model's server has. */
export interface EchoService {
  readonly address: Endpoint;
  readonly connections: number;
  readonly refused: number;
  /** Bytes read from clients and bytes echoed back, since start (models that count them). */
  readonly bytesReceived?: number;
  readonly bytesEchoed?: number;
  /** Connections reset because the stop deadline found them busy (models that drain on stop). */
  readonly resetAtStop?: number;
  /** The overlapped models: whether recvs borrow pool buffers (see EchoServerOptions.pooled). */
  readonly pooled?: boolean;
  stop(options?: { deadlineMs?: number }): Promise<void>;
}

/** `address:port` (IPv6 in brackets), for log lines. */
export function describeEndpoint(endpoint: Endpoint | null): string {
  if (endpoint === null) return 'unknown';
  return endpoint.family === 'IPv6'
    ? `[${endpoint.address}]:${endpoint.port}`
    : `${endpoint.address}:${endpoint.port}`;
}

export function isAborted(error: Error | null): boolean {
  return error instanceof OverlappedError && error.code === 'OVL_ERR_ABORTED';
}

/** What a deadline close needs of a socket (a TcpSocket, or a model's socket over one). */
export interface DeadlineClosable {
  failPendingWith(error: OverlappedError): void;
  close(): void;
  destroy(): void;
}

/** A deadline closed the connection; its one info line is already logged. */
export function isTimeout(error: Error | null): boolean {
  return error instanceof OverlappedError && error.code === 'OVL_ERR_TIMEOUT';
}

/**
 * Closes a connection whose deadline passed, with one info line: its pending
 * operations complete with `OVL_ERR_TIMEOUT`. An idle connection gets a FIN;
 * one the client does not read from is reset (a FIN would wait behind the
 * unsent bytes, and the close would linger).
 */
export function closeOnDeadline(
  socket: DeadlineClosable,
  reason: 'idle' | 'write',
  timeoutMs: number,
  peer: string,
  logger: Logger | undefined,
): void {
  const what = describeDeadline(reason, timeoutMs);
  logger?.info({ peer, reason, timeoutMs }, `deadline passed: closing the connection: ${what}`);
  socket.failPendingWith(new OverlappedError('OVL_ERR_TIMEOUT', `${reason} deadline: ${what}`));
  if (reason === 'write') socket.destroy();
  else socket.close();
}

/** Validated options with defaults filled in. */
export interface EchoSettings {
  readonly bufferSize: number;
  readonly maxConnections: number;
  readonly workers: number;
  readonly concurrency: number;
  readonly pooled: boolean;
  readonly logger: Logger | undefined;
  /** 0: off. */
  readonly idleTimeoutMs: number;
  /** 0: off. */
  readonly writeTimeoutMs: number;
}

const EMPTY = Buffer.alloc(0);

/** Checks the options and listens (127.0.0.1:5150 unless told otherwise). */
export async function listenForEcho(
  options: EchoServerOptions,
): Promise<{ listener: TcpListener; settings: EchoSettings }> {
  const cpus = availableParallelism();
  check(
    options.pooled !== true || options.bufferSize === undefined,
    'OVL_ERR_INVALID_ARGUMENT',
    'pooled receives lend pool buffers, bufferSize sets a buffer per connection: give one or the other',
  );
  const settings: EchoSettings = {
    bufferSize: options.bufferSize ?? ECHO_DEFAULTS.bufferSize,
    maxConnections: options.maxConnections ?? ECHO_DEFAULTS.maxConnections,
    workers: options.workers ?? 2 * cpus,
    concurrency: options.concurrency ?? cpus,
    pooled: options.pooled ?? options.bufferSize === undefined,
    logger: options.logger,
    idleTimeoutMs: options.idleTimeoutMs ?? 0,
    writeTimeoutMs: options.writeTimeoutMs ?? 0,
  };
  for (const name of ['workers', 'concurrency', 'bufferSize', 'maxConnections'] as const) {
    const value = settings[name];
    check(
      Number.isSafeInteger(value) && value >= 1,
      'OVL_ERR_INVALID_ARGUMENT',
      `${name} must be a whole number >= 1, got ${String(value)}`,
    );
  }
  checkTimeouts(settings);
  const listenOptions: ListenOptions = {
    engine: options.engine,
    host: options.host ?? ECHO_DEFAULTS.host,
    port: options.port ?? ECHO_DEFAULTS.port,
    // Never more sends in flight than one buffer: a slow reader stalls only itself.
    maxPendingSendBytes: settings.bufferSize,
    noDelay: options.noDelay ?? true,
    ...pickProxyOptions(options),
  };
  if (options.backlog !== undefined) listenOptions.backlog = options.backlog;
  const listener = await TcpListener.listen(listenOptions);
  listener.onProxyError = proxyErrorLog(settings.logger);
  return { listener, settings };
}

/**
 * The shared part of an echo server. `stop()` is graceful: stop accepting,
 * close connections waiting for data, let echoes in flight finish, and close
 * whatever is left when the deadline passes.
 */
export abstract class EchoServerBase<C extends EchoConnection> implements EchoService {
  protected readonly listener: TcpListener;
  protected readonly settings: EchoSettings;
  protected readonly logger: Logger | undefined;
  readonly #connections = new Set<C>();
  readonly #logPeers: boolean;
  #stopping: Promise<void> | null = null;
  /** Set as stop() begins: #stopping is assigned only once #stop's first part has run. */
  #stopRequested = false;
  #drained: (() => void) | null = null;
  /** Connections refused because of maxConnections, since start. */
  refused = 0;
  /** Bytes received and bytes sent back, since start: equal once every echo is done. */
  bytesReceived = 0;
  bytesEchoed = 0;
  /** Connections still busy when the stop deadline passed, and so reset. */
  resetAtStop = 0;

  get pooled(): boolean {
    return this.settings.pooled;
  }

  protected constructor(listener: TcpListener, settings: EchoSettings) {
    this.listener = listener;
    this.settings = settings;
    this.logger = settings.logger;
    this.#logPeers = settings.logger?.isLevelEnabled('info') ?? false;
    this.#storm = new AcceptStorm(settings.logger);
    this.#refusals = new RateLimitedWarning(
      settings.logger,
      'connections refused at maxConnections',
    );
    listener.onAcceptError = (error, retryMs) => this.#storm.failed(error, retryMs);
  }

  readonly #storm: AcceptStorm;
  readonly #refusals: RateLimitedWarning;

  /** The bound address (the real port when 0 was asked for). */
  get address(): Endpoint {
    return this.listener.address;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#connections.size;
  }

  /** True once `stop()` was called. */
  protected get stopping(): boolean {
    return this.#stopRequested;
  }

  /**
   * Stops gracefully and loses nothing already received: no new
   * connections; every connection is still served, and is closed with a FIN
   * once it is quiet (its recv waited {@link ECHO_DEFAULTS.quietMs} with
   * nothing arriving, so every byte it sent was echoed and nothing is
   * unsent). A connection still busy at `deadlineMs` is reset (no linger
   * behind unsent bytes), so the stop ends then. Resolves when every
   * connection is closed and the model's loops have returned. Idempotent:
   * later calls return the same promise.
   */
  stop(options: { deadlineMs?: number } = {}): Promise<void> {
    this.#stopRequested = true;
    this.#stopping ??= this.#stop(options.deadlineMs ?? ECHO_DEFAULTS.stopDeadlineMs);
    return this.#stopping;
  }

  async #stop(deadlineMs: number): Promise<void> {
    this.listener.close();
    const drained = new Promise<void>((resolve) => {
      this.#drained = resolve;
    });
    if (this.#connections.size === 0) this.#drained?.();
    for (const conn of this.#connections) {
      const state = conn.io.data;
      state.deadline ??= new Deadline(() => this.#expired(conn));
      // A recv waiting now may be quiet already; a send in flight is checked once it completes.
      if (conn.io.operation === 'recv') this.#armDeadline(conn, 'recv');
      else deadlines.disarm(state.deadline);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(resolve, deadlineMs, 'deadline');
    });
    if ((await Promise.race([drained, deadline])) === 'deadline') {
      this.logger?.warn(
        { connections: this.#connections.size, deadlineMs },
        'stop deadline passed: resetting the connections still busy',
      );
      // Their pending operations complete (aborted) through the model, which frees them.
      for (const conn of this.#connections) {
        this.resetAtStop++;
        conn.socket.destroy();
      }
      await drained;
    }
    clearTimeout(timer);
    // The listener's aborted accepts complete on a later turn; let them land first.
    while (this.listener.pendingOperations > 0) await new Promise((r) => setImmediate(r));
    await this.finish();
  }

  /** Ends the model's loops; called once every connection is closed and no accept is pending. */
  protected abstract finish(): Promise<void>;

  /** Creates the model's per-handle record for an admitted socket. */
  protected abstract createConnection(socket: TcpSocket, peer: string, io: Overlapped<EchoIo>): C;

  /**
   * Handles a completed accept: the new socket becomes a connection, or is
   * reset when the server is stopping or full. Returns the connection (its
   * first recv is the caller's to post), or null.
   */
  protected admit(socket: TcpSocket | null, error: Error | null): C | null {
    if (socket === null) {
      if (error !== null && !isAborted(error)) this.#storm.failed(error, 0);
      return null;
    }
    this.#storm.accepted();
    if (this.stopping) {
      socket.destroy();
      return null;
    }
    if (this.#connections.size >= this.settings.maxConnections) {
      const peer = describeEndpoint(socket.remoteAddress);
      this.refused++;
      countLimitClose('max_connections');
      this.#refusals.warn(
        { peer, maxConnections: this.settings.maxConnections },
        'connection refused: at maxConnections',
      );
      socket.destroy();
      return null;
    }
    const io = new Overlapped<EchoIo>({
      buffer: this.settings.pooled ? EMPTY : Buffer.allocUnsafe(this.settings.bufferSize),
      lease: null,
      bytesRecv: 0,
      bytesSent: 0,
      connection: null,
      deadline: null,
      recvs: 0,
    });
    // Only info lines name the peer: with them off, a connection keeps no string for it.
    const peer = this.#logPeers ? describeEndpoint(socket.remoteAddress) : '';
    const conn = this.createConnection(socket, peer, io);
    io.data.connection = conn;
    if (this.settings.idleTimeoutMs > 0 || this.settings.writeTimeoutMs > 0) {
      io.data.deadline = new Deadline(() => this.#expired(conn));
      this.#armDeadline(conn, 'recv');
    }
    this.#connections.add(conn);
    this.logger?.info({ peer, connections: this.#connections.size }, 'connected');
    return conn;
  }

  /**
   * Arms `conn`'s deadline for the operation about to be posted: the write
   * limit covers a send, idle the rest; while stopping, a recv is given
   * the quiet period and a send no deadline (the stop's own covers it).
   */
  #armDeadline(conn: C, next: 'send' | 'recv'): void {
    const deadline = conn.io.data.deadline;
    if (deadline === null) return;
    if (this.stopping) {
      if (next === 'recv') deadlines.arm(deadline, ECHO_DEFAULTS.quietMs);
      else deadlines.disarm(deadline);
      return;
    }
    const { idleTimeoutMs, writeTimeoutMs } = this.settings;
    const ms = next === 'send' && writeTimeoutMs > 0 ? writeTimeoutMs : idleTimeoutMs;
    if (ms > 0) deadlines.arm(deadline, ms);
    else deadlines.disarm(deadline);
  }

  #expired(conn: C): void {
    if (!this.#connections.has(conn) || !conn.io.pending) return;
    if (this.stopping) {
      // Quiet: the recv waited with nothing arriving. Its abort completes through the model.
      if (conn.io.operation !== 'recv') return;
      // Timers run before the loop polls for I/O: bytes that arrived meanwhile are not
      // delivered yet. Look again after this turn's poll phase; a recv completed since means
      // the connection was not quiet (its next recv re-arms the period).
      const recvs = conn.io.data.recvs;
      setImmediate(() => {
        const io = conn.io;
        if (this.#connections.has(conn) && io.pending && io.operation === 'recv') {
          if (io.data.recvs === recvs) conn.socket.close();
        }
      });
      return;
    }
    const sending = conn.io.operation === 'send';
    const { idleTimeoutMs, writeTimeoutMs } = this.settings;
    const reason = sending && writeTimeoutMs > 0 ? 'write' : 'idle';
    closeOnDeadline(
      conn.socket,
      reason,
      reason === 'write' ? writeTimeoutMs : idleTimeoutMs,
      conn.peer,
      this.logger,
    );
  }

  /**
   * The echo step, run on each completion of `conn.io`: records what moved
   * and says what to post next. A zero-byte recv (end of stream) or an error
   * closes and frees the connection.
   */
  protected step(conn: C, error: Error | null, bytes: number): EchoStep {
    const io = conn.io;
    const state = io.data;
    if (error !== null) {
      if (!isAborted(error) && !isTimeout(error)) {
        this.logger?.info({ peer: conn.peer, err: error.message }, 'connection error');
      }
      this.close(conn);
      return 'closed';
    }
    if (conn.socket.closed) {
      // Closed (a deadline, or the stop's reset) after this completion was queued: it ends here.
      this.close(conn);
      return 'closed';
    }
    if (io.operation === 'recv') {
      if (bytes === 0) {
        this.close(conn);
        return 'closed';
      }
      if (this.settings.pooled) {
        state.lease = io.lease;
        state.buffer = io.lease?.view ?? EMPTY;
      }
      state.bytesRecv = bytes;
      state.bytesSent = 0;
      state.recvs++;
      this.bytesReceived += bytes;
    } else {
      state.bytesSent += bytes;
      this.bytesEchoed += bytes;
    }
    if (state.bytesSent < state.bytesRecv) {
      // Each completed piece is progress: the write limit starts again.
      if (state.deadline !== null) this.#armDeadline(conn, 'send');
      return 'send';
    }
    // Stopping or not, the connection reads on: what the client already sent is echoed too.
    release(state);
    if (state.deadline !== null) this.#armDeadline(conn, 'recv');
    return 'recv';
  }

  /** Posts the next recv of `conn`: into its buffer, or pooled; to `routine` if given. */
  protected postRecv(conn: C, routine?: CompletionRoutine<EchoIo>): void {
    const io = conn.io;
    if (this.settings.pooled) conn.socket.recvPooled(io, routine);
    else conn.socket.recv(io.data.buffer, io, routine);
  }

  /** Closes and frees `conn` (idempotent); the model may extend it to drop its own records. */
  protected close(conn: C): void {
    if (!this.#connections.delete(conn)) return;
    if (conn.io.data.deadline !== null) deadlines.disarm(conn.io.data.deadline);
    conn.socket.close();
    // Called only from a delivered completion: no send of the leased buffer is pending.
    release(conn.io.data);
    this.logger?.info({ peer: conn.peer, connections: this.#connections.size }, 'disconnected');
    if (this.#connections.size === 0) this.#drained?.();
  }
}

/** Pooled mode: the echo is sent (or abandoned); its pool buffer goes back. */
function release(state: EchoIo): void {
  if (state.lease === null) return;
  state.lease.release();
  state.lease = null;
  state.buffer = EMPTY;
}

/** The bytes of `io` still to send back. */
export function unsent(io: Overlapped<EchoIo>): Buffer {
  const state = io.data;
  return state.buffer.subarray(state.bytesSent, state.bytesRecv);
}
