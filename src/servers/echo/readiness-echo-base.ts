/**
 * What the echo servers of the readiness models (non-blocking polling,
 * select, WSAAsyncSelect, WSAEventSelect) share: the connection records,
 * the limit and log lines, graceful stop, and the echo step on a
 * non-blocking socket.
 *
 * The step is the seeds' one for these models: when the socket is readable,
 * `recv` once into the server's one scratch buffer and `send` it straight
 * back; what the OS did not take waits in the connection's own buffer,
 * reading stops (flow control) and the socket is watched for writability
 * until that backlog is sent. An idle connection therefore holds no buffer
 * at all: the scratch buffer is shared, since non-blocking calls return
 * before anything else runs.
 *
 * Deadlines are the overlapped models' (--idle-timeout, --write-timeout),
 * re-armed whenever a call moves bytes. Accepting backs off when the process
 * is out of descriptors: a listener that stays readable while `accept`
 * fails would otherwise wake its model for ever (select spins, and the
 * notification models would never hear of it again).
 */

import type { Logger } from 'pino';
import { AcceptBackoff } from '../../core/accept-backoff.js';
import { countLimitClose } from '../../core/counters.js';
import { Deadline, deadlines } from '../../core/deadlines.js';
import type { TcpListener } from '../../core/tcp-listener.js';
import type { Endpoint } from '../../engines/contract.js';
import {
  type NonBlockingListener,
  type NonBlockingSocket,
  setNonBlocking,
  WOULD_BLOCK,
} from '../../models/nonblocking.js';
import { AcceptStorm, RateLimitedWarning } from '../rate-limited-log.js';
import {
  closeOnDeadline,
  describeEndpoint,
  ECHO_DEFAULTS,
  type EchoService,
  type EchoSettings,
} from './echo-base.js';

/** Per-handle data of one connection of a readiness model. */
export interface ReadinessConnection {
  readonly socket: NonBlockingSocket;
  /** `address:port` of the client; empty when info lines are off. */
  readonly peer: string;
  /** Echo bytes the OS has not taken yet (a copy), or null: then the connection reads. */
  backlog: Buffer | null;
  /** How much of `backlog` is sent. */
  backlogSent: number;
  /** Bytes received on this connection: a stop sees from it whether the connection went quiet. */
  received: number;
  /** The idle or write deadline, when either is on; re-armed by every call that moves bytes. */
  deadline: Deadline | null;
}

/** A new connection record's base fields, for a model's {@link ReadinessEchoBase.createConnection}. */
export function connectionFields(socket: NonBlockingSocket, peer: string): ReadinessConnection {
  return { socket, peer, backlog: null, backlogSent: 0, received: 0, deadline: null };
}

/**
 * What the step asks the model to watch next: `'read'` (readable), `'write'`
 * (writable: a backlog waits), or nothing (`'closed'`).
 */
export type ReadinessStep = 'read' | 'write' | 'closed';

/** Accepts taken per accept readiness, so a flood of connects cannot starve the connections. */
const ACCEPTS_PER_WAKE = 16;

export abstract class ReadinessEchoBase<C extends ReadinessConnection> implements EchoService {
  protected readonly listener: NonBlockingListener;
  protected readonly settings: EchoSettings;
  protected readonly logger: Logger | undefined;
  /** Every open connection, by its socket (the notification models are told the socket). */
  protected readonly connectionsBySocket = new Map<NonBlockingSocket, C>();
  readonly #logPeers: boolean;
  readonly #scratch: Buffer;
  #stopping: Promise<void> | null = null;
  /** Bumped by every recv or send that moved bytes: the polling model's "did a sweep find anything". */
  protected progress = 0;
  #drained: (() => void) | null = null;
  /** Set as stop() begins, before #stop's first await assigns #stopping. */
  #stopRequested = false;
  refused = 0;
  /** Bytes received and bytes sent back, since start: equal once every echo is done. */
  bytesReceived = 0;
  bytesEchoed = 0;
  /** Connections still busy when the stop deadline passed, and so reset. */
  resetAtStop = 0;

  protected constructor(listener: TcpListener, settings: EchoSettings) {
    this.listener = setNonBlocking(listener);
    this.settings = settings;
    this.logger = settings.logger;
    this.#logPeers = settings.logger?.isLevelEnabled('info') ?? false;
    this.#scratch = Buffer.allocUnsafe(settings.bufferSize);
    this.#storm = new AcceptStorm(settings.logger);
    this.#refusals = new RateLimitedWarning(
      settings.logger,
      'connections refused at maxConnections',
    );
    listener.onAcceptError = (error, retryMs) => this.#storm.failed(error, retryMs);
  }

  readonly #storm: AcceptStorm;
  readonly #refusals: RateLimitedWarning;
  readonly #backoff = new AcceptBackoff();
  /** Set while accepting backs off; referenced, so a server with nothing else pending stays up. */
  #backoffTimer: ReturnType<typeof setTimeout> | null = null;

  get address(): Endpoint {
    return this.listener.address;
  }

  get connections(): number {
    return this.connectionsBySocket.size;
  }

  protected get stopping(): boolean {
    return this.#stopRequested;
  }

  /** True while the model should watch the listener: not stopping, and not backing off. */
  protected get accepting(): boolean {
    return !this.#stopRequested && this.#backoffTimer === null;
  }

  /** Until accepting resumes after a back-off, in ms (0 when not backing off). */
  protected get backoffLeftMs(): number {
    return this.#backoffTimer === null ? 0 : Math.max(1, this.#backoffUntil - performance.now());
  }

  #backoffUntil = 0;

  /**
   * A back-off ended: the model looks at the listener again (an accept that
   * finds nothing waiting is harmless), since no readiness will say so.
   */
  protected abstract resumeAccepting(): void;

  /**
   * Stops gracefully and loses nothing already received: no new
   * connections; every connection is still served, and is closed with a FIN
   * once it is quiet (no backlog, and nothing received for
   * {@link ECHO_DEFAULTS.quietMs}); one still busy at `deadlineMs` is reset.
   * Idempotent.
   */
  stop(options: { deadlineMs?: number } = {}): Promise<void> {
    this.#stopRequested = true;
    this.#stopping ??= this.#stop(options.deadlineMs ?? ECHO_DEFAULTS.stopDeadlineMs);
    return this.#stopping;
  }

  /**
   * While stopping: checks `conn` every quiet period, and closes it (a FIN)
   * once it owes no backlog and received nothing since the previous check.
   */
  #watchQuiet(conn: C): void {
    if (conn.deadline !== null) deadlines.disarm(conn.deadline);
    let seen = conn.received;
    const deadline = new Deadline(() => {
      if (!this.connectionsBySocket.has(conn.socket)) return;
      if (conn.backlog === null && conn.received === seen) {
        // Timers run before the loop polls for I/O: look again after this turn's poll phase.
        setImmediate(() => {
          if (!this.connectionsBySocket.has(conn.socket)) return;
          if (conn.backlog === null && conn.received === seen) this.close(conn);
          else {
            seen = conn.received;
            deadlines.arm(deadline, ECHO_DEFAULTS.quietMs);
          }
        });
        return;
      }
      seen = conn.received;
      deadlines.arm(deadline, ECHO_DEFAULTS.quietMs);
    });
    deadlines.arm(deadline, ECHO_DEFAULTS.quietMs);
  }

  async #stop(deadlineMs: number): Promise<void> {
    this.listener.close();
    if (this.#backoffTimer !== null) clearTimeout(this.#backoffTimer);
    this.#backoffTimer = null;
    const drained = new Promise<void>((resolve) => {
      this.#drained = resolve;
    });
    for (const conn of this.connectionsBySocket.values()) this.#watchQuiet(conn);
    if (this.connectionsBySocket.size === 0) this.#drained?.();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(resolve, deadlineMs, 'deadline');
    });
    if ((await Promise.race([drained, deadline])) === 'deadline') {
      this.logger?.warn(
        { connections: this.connectionsBySocket.size, deadlineMs },
        'stop deadline passed: resetting the connections still busy',
      );
      for (const conn of [...this.connectionsBySocket.values()]) {
        this.resetAtStop++;
        // A reset, not a FIN behind unsent bytes: the stop ends now, with no linger.
        conn.socket.destroy();
        this.close(conn);
      }
    }
    clearTimeout(timer);
    await this.finish();
  }

  /** Ends the model's loops; called once every connection is closed. */
  protected abstract finish(): Promise<void>;

  /** Makes the model's record for an admitted socket and starts watching it. */
  protected abstract createConnection(socket: NonBlockingSocket, peer: string): C;

  /**
   * Takes the connections waiting on the listener (up to a bound per call,
   * so a flood of connects cannot starve the connections already served);
   * each becomes a connection, or is reset when the server is full.
   * Returns how many were taken.
   */
  protected acceptWaiting(): number {
    let taken = 0;
    while (taken < ACCEPTS_PER_WAKE && this.accepting) {
      let socket: NonBlockingSocket | null;
      try {
        socket = this.listener.accept();
      } catch (err) {
        this.#backOff(err as Error);
        return taken;
      }
      if (socket === null) break;
      this.#backoff.succeeded();
      this.#storm.accepted();
      taken++;
      this.progress++;
      this.#admit(socket);
    }
    return taken;
  }

  #backOff(error: Error): void {
    const delay = this.#backoff.failed();
    this.#storm.failed(error, delay);
    this.#backoffUntil = performance.now() + delay;
    this.#backoffTimer = setTimeout(() => {
      this.#backoffTimer = null;
      if (!this.stopping) this.resumeAccepting();
    }, delay);
  }

  #admit(socket: NonBlockingSocket): void {
    if (this.connectionsBySocket.size >= this.settings.maxConnections) {
      this.refused++;
      countLimitClose('max_connections');
      this.#refusals.warn(
        {
          peer: describeEndpoint(socket.remoteAddress),
          maxConnections: this.settings.maxConnections,
        },
        'connection refused: at maxConnections',
      );
      socket.destroy();
      return;
    }
    const peer = this.#logPeers ? describeEndpoint(socket.remoteAddress) : '';
    const conn = this.createConnection(socket, peer);
    this.connectionsBySocket.set(socket, conn);
    const { idleTimeoutMs, writeTimeoutMs } = this.settings;
    if (idleTimeoutMs > 0 || writeTimeoutMs > 0) {
      conn.deadline = new Deadline(() => this.#expired(conn));
      this.#rearm(conn);
    }
    this.logger?.info({ peer, connections: this.connectionsBySocket.size }, 'connected');
  }

  /** True when the server has room for another connection (and is not stopping). */
  protected get hasRoom(): boolean {
    return !this.stopping && this.connectionsBySocket.size < this.settings.maxConnections;
  }

  /**
   * Bytes moved on `conn` (or it just connected): its deadline starts again,
   * the write limit while a backlog waits for the client to read, idle
   * otherwise. While stopping, the stop's quiet watch stands in for both.
   */
  #rearm(conn: C): void {
    const deadline = conn.deadline;
    if (deadline === null || this.stopping) return;
    const { idleTimeoutMs, writeTimeoutMs } = this.settings;
    const ms = conn.backlog !== null && writeTimeoutMs > 0 ? writeTimeoutMs : idleTimeoutMs;
    if (ms > 0) deadlines.arm(deadline, ms);
    else deadlines.disarm(deadline);
  }

  #expired(conn: C): void {
    if (!this.connectionsBySocket.has(conn.socket) || this.stopping) return;
    const { idleTimeoutMs, writeTimeoutMs } = this.settings;
    const write = conn.backlog !== null && writeTimeoutMs > 0;
    closeOnDeadline(
      {
        failPendingWith: (error) => conn.socket.socket.failPendingWith(error),
        close: () => this.close(conn),
        destroy: () => {
          conn.socket.destroy();
          this.close(conn);
        },
      },
      write ? 'write' : 'idle',
      write ? writeTimeoutMs : idleTimeoutMs,
      conn.peer,
      this.logger,
    );
  }

  /**
   * The socket is readable: one `recv`, echoed at once; what the OS does not
   * take becomes the backlog. End of stream or an error closes the connection.
   */
  protected readable(conn: C): ReadinessStep {
    if (conn.backlog !== null) return 'write';
    const scratch = this.#scratch;
    let n: number;
    try {
      n = conn.socket.recv(scratch);
      if (n === WOULD_BLOCK) return 'read';
      if (n === 0) {
        this.close(conn);
        return 'closed';
      }
      conn.received += n;
      this.bytesReceived += n;
      let sent = conn.socket.send(n === scratch.length ? scratch : scratch.subarray(0, n));
      if (sent === WOULD_BLOCK) sent = 0;
      this.bytesEchoed += sent;
      this.progress++;
      if (sent === n) {
        this.#rearm(conn);
        return 'read';
      }
      conn.backlog = Buffer.from(scratch.subarray(sent, n));
      conn.backlogSent = 0;
      this.#rearm(conn);
      // A short send did not say WSAEWOULDBLOCK: keep sending until it does (or all is gone),
      // since only a WSAEWOULDBLOCK re-enables FD_WRITE.
      return this.writable(conn);
    } catch (err) {
      this.#failed(conn, err as Error);
      return 'closed';
    }
  }

  /** The socket is writable: sends what it can of the backlog; reads again once it is gone. */
  protected writable(conn: C): ReadinessStep {
    const backlog = conn.backlog;
    if (backlog === null) return 'read';
    try {
      while (conn.backlogSent < backlog.length) {
        const sent = conn.socket.send(
          conn.backlogSent === 0 ? backlog : backlog.subarray(conn.backlogSent),
        );
        if (sent === WOULD_BLOCK) return 'write';
        conn.backlogSent += sent;
        this.bytesEchoed += sent;
        this.progress++;
        this.#rearm(conn);
      }
    } catch (err) {
      this.#failed(conn, err as Error);
      return 'closed';
    }
    conn.backlog = null;
    conn.backlogSent = 0;
    this.#rearm(conn);
    // Stopping or not, the connection reads on: what the client already sent is echoed too.
    return 'read';
  }

  #failed(conn: C, err: Error): void {
    this.logger?.info({ peer: conn.peer, err: err.message }, 'connection error');
    this.close(conn);
  }

  /** Closes and frees `conn` (idempotent); models extend it to drop their own records. */
  protected close(conn: C): void {
    if (!this.connectionsBySocket.delete(conn.socket)) return;
    conn.socket.close();
    conn.backlog = null;
    if (conn.deadline !== null) deadlines.disarm(conn.deadline);
    this.logger?.info(
      { peer: conn.peer, connections: this.connectionsBySocket.size },
      'disconnected',
    );
    if (this.connectionsBySocket.size === 0) this.#drained?.();
  }
}
