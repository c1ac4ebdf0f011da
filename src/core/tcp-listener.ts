import {
  type Endpoint,
  type Engine,
  type EngineListener,
  type EngineOption,
  Readiness,
} from '../engines/contract.js';
import type { CompletionRoutine } from './apc.js';
import { add, counters } from './counters.js';
import { attachEngine } from './delivery.js';
import { resolveEngine } from './engine-option.js';
import { check } from './errors.js';
import { Handle } from './handle.js';
import { checkHost } from './host-address.js';
import type { Overlapped } from './overlapped.js';
import {
  DEFAULT_PROXY_TIMEOUT_MS,
  ProxyAcceptor,
  type ProxyErrorHandler,
  type ProxySettings,
} from './proxy/proxy-acceptor.js';
import { PROXY_PROTOCOLS, type ProxyProtocol } from './proxy/proxy-header.js';
import { SourceAllowList } from './proxy/source-allow-list.js';
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
  /**
   * Every accepted connection must begin with a PROXY protocol header of
   * this version (`'any'`: v1 or v2), read before the connection is handed
   * to an accept; its socket's `remoteAddress` is then the client the header
   * names and `proxiedBy` the balancer. A connection without a valid header
   * is reset and reported to `onProxyError`. Default: off.
   */
  proxyProtocol?: ProxyProtocol;
  /** The whole header must arrive within this many ms of the accept. Default 3000. */
  proxyTimeoutMs?: number;
  /** Networks (`10.0.0.0/8`, `192.0.2.7`, `fd00::/8`) allowed to send a header; default: any. */
  proxyFrom?: readonly string[];
}

/** The PROXY protocol options of {@link ListenOptions}, for servers that pass them through. */
export type ProxyListenOptions = Pick<
  ListenOptions,
  'proxyProtocol' | 'proxyTimeoutMs' | 'proxyFrom'
>;

/** The PROXY protocol options set in `options`, and none of the others (for spreading into ListenOptions). */
export function pickProxyOptions(options: ProxyListenOptions): ProxyListenOptions {
  const picked: ProxyListenOptions = {};
  if (options.proxyProtocol !== undefined) picked.proxyProtocol = options.proxyProtocol;
  if (options.proxyTimeoutMs !== undefined) picked.proxyTimeoutMs = options.proxyTimeoutMs;
  if (options.proxyFrom !== undefined) picked.proxyFrom = options.proxyFrom;
  return picked;
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
  /** With `proxyProtocol`: what accepts go through, so each connection's header is read first. */
  readonly #proxy: ProxyAcceptor | null;

  private constructor(
    engine: Engine,
    listener: EngineListener,
    socketOptions: SocketOptions,
    proxy: ProxyAcceptor | null,
  ) {
    super(engine);
    this.#listener = listener;
    this.#socketOptions = socketOptions;
    this.#proxy = proxy;
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
    const proxy = proxySettings(options);
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
    const front = proxy === null ? null : new ProxyAcceptor(listener, proxy);
    return new TcpListener(engine, listener, socketOptions, front);
  }

  /** The PROXY protocol version every connection must begin with, or null (off). */
  get proxyProtocol(): ProxyProtocol | null {
    return this.#proxy?.protocol ?? null;
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
    if (this.#proxy === null) this.#listener.accept(ov);
    else this.#proxy.accept(ov as Overlapped<unknown>);
  }

  /**
   * Waits until a connection is there to take with {@link TcpListener.tryAccept}
   * (`Readiness.READABLE` in `ov.bytes`), as select's read set and FD_ACCEPT
   * learn it. Cancel or close abort it.
   */
  poll<T>(ov: Overlapped<T>, routine?: CompletionRoutine<T>): void {
    this.beginOperation(ov, 'poll', 0, routine);
    if (this.#proxy === null) this.#listener.poll(ov, Readiness.READABLE);
    else this.#proxy.poll(ov as Overlapped<unknown>);
  }

  /**
   * Non-blocking accept: a waiting connection (not associated with any
   * port), or null when none is there now. Posted accepts are served first.
   * Throws an OsError (EMFILE, ENFILE, …) when accepting fails.
   */
  tryAccept(): TcpSocket | null {
    check(!this.closed, 'OVL_ERR_HANDLE_CLOSED');
    const proxy = this.#proxy;
    const stream = proxy === null ? this.#listener.tryAccept() : proxy.tryAccept();
    if (stream === null) return null;
    add(counters.accepted, this.engineIndex);
    const header = proxy === null ? null : proxy.takeHeader(stream);
    return TcpSocket.fromStream(this.engine, stream, this.#socketOptions, header);
  }

  protected cancelPending(ov: Overlapped<unknown> | null): boolean {
    return this.#proxy === null ? this.#listener.cancel(ov) : this.#proxy.cancel(ov);
  }

  /**
   * With `proxyProtocol`: told of each connection reset for its header
   * (`OVL_ERR_PROXY_HEADER`, `OVL_ERR_PROXY_TIMEOUT`, `OVL_ERR_PROXY_SOURCE`)
   * and its peer as `address:port`. Servers log it, rate-limited.
   */
  set onProxyError(callback: ProxyErrorHandler | null) {
    if (this.#proxy !== null) this.#proxy.onError = callback;
  }

  /** Connections reading their PROXY header now (0 without `proxyProtocol`). */
  get proxyHandshakes(): number {
    return this.#proxy?.handshakes ?? 0;
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
    if (!this.markClosed()) return;
    if (this.#proxy === null) this.#listener.close();
    else this.#proxy.close();
  }

  /** @internal */
  override operationDone(ov: Overlapped<unknown>): void {
    super.operationDone(ov);
    const stream = ov.result;
    if (stream !== null) {
      ov.result = null;
      add(counters.accepted, this.engineIndex);
      const header = this.#proxy?.takeHeader(stream) ?? null;
      ov.socket = TcpSocket.fromStream(this.engine, stream, this.#socketOptions, header);
    }
  }
}

/** Checks the PROXY protocol options; null when the protocol is off. */
function proxySettings(options: ListenOptions): ProxySettings | null {
  const { proxyProtocol, proxyTimeoutMs = DEFAULT_PROXY_TIMEOUT_MS, proxyFrom = [] } = options;
  if (proxyProtocol === undefined) return null;
  check(
    PROXY_PROTOCOLS.includes(proxyProtocol),
    'OVL_ERR_INVALID_ARGUMENT',
    `proxyProtocol must be one of ${PROXY_PROTOCOLS.join(', ')}, got ${String(proxyProtocol)}`,
  );
  check(
    Number.isSafeInteger(proxyTimeoutMs) && proxyTimeoutMs >= 1,
    'OVL_ERR_INVALID_ARGUMENT',
    `proxyTimeoutMs must be a whole number of ms >= 1, got ${String(proxyTimeoutMs)}`,
  );
  return {
    protocol: proxyProtocol,
    timeoutMs: proxyTimeoutMs,
    allow: new SourceAllowList(proxyFrom),
  };
}
