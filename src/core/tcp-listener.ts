import {
  type Endpoint,
  type Engine,
  type EngineListener,
  type EngineOption,
  Readiness,
} from '../engines/contract.js';
import type { CompletionRoutine } from './apc.js';
import { attachEngine } from './delivery.js';
import { resolveEngine } from './engine-option.js';
import { check } from './errors.js';
import { Handle } from './handle.js';
import { checkHost } from './host-address.js';
import type { Overlapped } from './overlapped.js';
import { type SocketOptions, TcpSocket } from './tcp-socket.js';

/**
 * Default listen backlog: Linux's default `net.core.somaxconn` since 5.4 (the
 * kernel clamps a larger backlog to that sysctl). Node's 511 overflows when
 * thousands of clients connect at once: the kernel then drops their final ACK
 * and they reach accept() only after SYN-ACK retransmits, 1 s or more later.
 */
export const DEFAULT_BACKLOG = 4096;

export interface ListenOptions extends SocketOptions {
  /** `'node'`, `'uring'` or an Engine; default: this thread's engine. */
  engine?: EngineOption;
  /** Address to bind. Default 127.0.0.1: listen on every interface only when told to. */
  host?: string;
  /** Port to bind; 0 picks a free one (read it back from `address`). */
  port: number;
  /** Connections the OS and engine queue before an accept takes them. Default 4096. */
  backlog?: number;
  /** `node` engine in a `cluster` worker: share the primary's listening socket (see TcpListenOptions). */
  shared?: boolean;
}

/**
 * A listening TCP socket: bind + listen, then overlapped accepts (AcceptEx).
 * Each accept completes with `ov.socket` set to the new connection, which is
 * not associated with any port yet: associate it, then post its first recv.
 * Accepted sockets inherit the listener's {@link SocketOptions}.
 */
export class TcpListener extends Handle {
  readonly #listener: EngineListener;
  readonly #socketOptions: SocketOptions;

  private constructor(engine: Engine, listener: EngineListener, socketOptions: SocketOptions) {
    super(engine);
    this.#listener = listener;
    this.#socketOptions = socketOptions;
  }

  /** Binds and listens. Rejects with an OsError such as EADDRINUSE or EACCES. */
  static async listen(options: ListenOptions): Promise<TcpListener> {
    const { host = '127.0.0.1', port, backlog = DEFAULT_BACKLOG } = options;
    checkHost(host);
    check(
      Number.isInteger(port) && port >= 0 && port <= 65535,
      'OVL_ERR_INVALID_ARGUMENT',
      `port must be a whole number from 0 to 65535, got ${String(port)}`,
    );
    check(
      Number.isInteger(backlog) && backlog >= 1,
      'OVL_ERR_INVALID_ARGUMENT',
      `backlog must be a whole number >= 1, got ${String(backlog)}`,
    );
    const engine = resolveEngine(options.engine);
    attachEngine(engine);
    const listener = await engine.listenTcp({
      host,
      port,
      backlog,
      ...(options.shared === true ? { shared: true } : {}),
    });
    const socketOptions: SocketOptions = {};
    if (options.maxPendingSendBytes !== undefined) {
      socketOptions.maxPendingSendBytes = options.maxPendingSendBytes;
    }
    if (options.noDelay !== undefined) socketOptions.noDelay = options.noDelay;
    return new TcpListener(engine, listener, socketOptions);
  }

  /** The bound address and port (the real port when 0 was asked for). */
  get address(): Endpoint {
    return this.#listener.endpoint;
  }

  /**
   * Posts an accept; `ov.socket` holds the new connection when it completes.
   * With `routine`, the completion goes to it, run in this thread's next
   * alertable wait, instead of to the port.
   */
  accept<T>(ov: Overlapped<T>, routine?: CompletionRoutine<T>): void {
    this.beginOperation(ov, 'accept', 0, routine);
    this.#listener.accept(ov);
  }

  /**
   * Waits until a connection is there to take with {@link TcpListener.tryAccept}
   * (`Readiness.READABLE` in `ov.bytes`), as select's read set and FD_ACCEPT
   * learn it. Cancel or close abort it.
   */
  poll<T>(ov: Overlapped<T>, routine?: CompletionRoutine<T>): void {
    this.beginOperation(ov, 'poll', 0, routine);
    this.#listener.poll(ov, Readiness.READABLE);
  }

  /**
   * Non-blocking accept: a waiting connection (not associated with any
   * port), or null when none is there now. Posted accepts are served first.
   * Throws an OsError (EMFILE, ENFILE, …) when accepting fails.
   */
  tryAccept(): TcpSocket | null {
    check(!this.closed, 'OVL_ERR_HANDLE_CLOSED');
    const stream = this.#listener.tryAccept();
    return stream === null ? null : TcpSocket.fromStream(this.engine, stream, this.#socketOptions);
  }

  protected cancelPending(ov: Overlapped<unknown> | null): boolean {
    return this.#listener.cancel(ov);
  }

  /**
   * Told of each failed attempt to take a connection (EMFILE, ENFILE,
   * ENOBUFS, …) and the ms until the engine retries (0: at once, by the
   * OS's own handling); posted accepts stay pending meanwhile. Servers use
   * it to say once that they are out of descriptors.
   */
  set onAcceptError(callback: ((error: Error, retryMs: number) => void) | null) {
    this.#listener.onAcceptError = callback;
  }

  /** Stops listening; pending accepts complete with `OVL_ERR_ABORTED`. Idempotent. */
  close(): void {
    if (this.markClosed()) this.#listener.close();
  }

  /** @internal */
  override operationDone(ov: Overlapped<unknown>): void {
    super.operationDone(ov);
    const stream = ov.result;
    if (stream !== null) {
      ov.result = null;
      ov.socket = TcpSocket.fromStream(this.engine, stream, this.#socketOptions);
    }
  }
}
