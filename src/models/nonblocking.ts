/**
 * The non-blocking socket mode (`ioctlsocket(s, FIONBIO, &on)`): `recv`,
 * `send` and `accept` return at once, moving what can be moved now, and
 * return {@link WOULD_BLOCK} (Winsock's `SOCKET_ERROR` with
 * `WSAEWOULDBLOCK`, `OVL_ERR_WOULD_BLOCK` in the registry) when nothing can.
 *
 * This mode is the ground the notification models stand on: `select`,
 * `WSAAsyncSelect` and `WSAEventSelect` only say *when* to call these; the
 * calls themselves are the ones here. Used alone, a server learns nothing
 * and must ask: the polling model of the seeds' table, whose echo server
 * sweeps every socket and sleeps a little when a whole sweep found nothing.
 *
 * Under the hood a non-blocking socket is a core {@link TcpSocket} used
 * through its try-calls (the engine contract's "non-blocking attempts"):
 * `MSG_DONTWAIT` system calls on the uring engine, the engine's own buffers
 * on node. Readiness is learnt through `TcpSocket.poll`, which the
 * notification models post for you.
 */
import { OverlappedError } from '../core/errors.js';
import { Overlapped } from '../core/overlapped.js';
import { TcpListener } from '../core/tcp-listener.js';
import { type TcpSocket, WOULD_BLOCK } from '../core/tcp-socket.js';
import { type Endpoint, Readiness } from '../engines/contract.js';

export { WOULD_BLOCK };

/** `FIONBIO`: the ioctlsocket command that turns non-blocking mode on or off. */
export const FIONBIO = 0x8004667e;

/**
 * What a notification model (WSAAsyncSelect, WSAEventSelect) needs to hear
 * of the calls made on a socket: the calls that re-enable its events.
 * @internal
 */
export interface SelectionHooks {
  /** After `recv`: `result` is its return value, or the error it threw. */
  afterRecv(result: number | Error): void;
  /** After `send`: `result` is its return value, or the error it threw. */
  afterSend(result: number | Error): void;
  /** After `accept` on a listener: the new socket (to inherit the selection), or null. */
  afterAccept(socket: NonBlockingSocket | null): void;
  /** The socket was closed: drop the selection. */
  closed(): void;
}

/**
 * Readiness bits a poll reported and no call has used up since (for
 * `select`: a socket reported readable stays so until `recv` is called).
 * @internal
 */
export interface ReadinessRecord {
  known: number;
  /** select's per-socket state (its posted polls), made on the socket's first select. */
  tracker: object | null;
}

/** Anything the notification models watch: a connected socket or a listener. */
export type NonBlockingHandle = NonBlockingSocket | NonBlockingListener;

/** What a recv or accept uses up of known readiness; a short send uses up WRITABLE. */
const READ_BITS = Readiness.READABLE | Readiness.HANGUP | Readiness.ERROR;
const WRITE_BIT = Readiness.WRITABLE;

function isAbortedOrClosed(err: unknown): boolean {
  return (
    err instanceof OverlappedError &&
    (err.code === 'OVL_ERR_ABORTED' || err.code === 'OVL_ERR_HANDLE_CLOSED')
  );
}

/** A connected socket in non-blocking mode. Make one with {@link setNonBlocking}. */
export class NonBlockingSocket {
  /** The core socket underneath (its overlapped calls are still there: do not mix them in). */
  readonly socket: TcpSocket;
  /** @internal The selection of WSAAsyncSelect/WSAEventSelect on this socket, if any. */
  selection: SelectionHooks | null = null;
  /** @internal Readiness known to `select`. */
  readonly readiness: ReadinessRecord = { known: 0, tracker: null };
  #shutdownOv: Overlapped | null = null;

  /** @internal Use {@link setNonBlocking}. */
  constructor(socket: TcpSocket) {
    this.socket = socket;
  }

  get remoteAddress(): Endpoint | null {
    return this.socket.remoteAddress;
  }

  get localAddress(): Endpoint | null {
    return this.socket.localAddress;
  }

  get closed(): boolean {
    return this.socket.closed;
  }

  /**
   * `recv`: copies what has arrived into `buffer` and returns the count;
   * 0 means the peer closed its side; {@link WOULD_BLOCK} means nothing is
   * there now. Throws the connection's OsError (ECONNRESET, …).
   */
  recv(buffer: Uint8Array): number {
    this.readiness.known &= ~READ_BITS;
    const selection = this.selection;
    if (selection === null) return this.socket.tryRecv(buffer);
    let n: number;
    try {
      n = this.socket.tryRecv(buffer);
    } catch (err) {
      if (!isAbortedOrClosed(err)) selection.afterRecv(err as Error);
      throw err;
    }
    selection.afterRecv(n);
    return n;
  }

  /**
   * `send`: the OS takes what fits now and the count is returned (fewer than
   * `data.byteLength` is a partial send: send the rest later), or
   * {@link WOULD_BLOCK} when nothing fits. `data` is yours again at once.
   * Throws the connection's OsError (EPIPE, ECONNRESET, …).
   */
  send(data: Uint8Array): number {
    const selection = this.selection;
    let n: number;
    try {
      n = this.socket.trySend(data);
    } catch (err) {
      if (selection !== null && !isAbortedOrClosed(err)) selection.afterSend(err as Error);
      throw err;
    }
    if (n === WOULD_BLOCK || n < data.byteLength) this.readiness.known &= ~WRITE_BIT;
    if (selection !== null) selection.afterSend(n);
    return n;
  }

  /** `shutdown(SD_SEND)`: FIN after every byte sent so far; receiving goes on. Idempotent. */
  shutdown(): void {
    if (this.#shutdownOv !== null || this.socket.closed) return;
    this.#shutdownOv = new Overlapped();
    this.socket.shutdown(this.#shutdownOv);
  }

  /** `closesocket`: bytes the OS took are still delivered, then FIN. Idempotent. */
  close(): void {
    if (this.socket.closed) return;
    this.selection?.closed();
    this.selection = null;
    this.socket.close();
  }

  /** Closes abortively: the peer sees a reset. Idempotent. */
  destroy(): void {
    this.selection?.closed();
    this.selection = null;
    this.socket.destroy();
  }
}

/** A listening socket in non-blocking mode. Make one with {@link setNonBlocking}. */
export class NonBlockingListener {
  readonly listener: TcpListener;
  /** @internal */
  selection: SelectionHooks | null = null;
  /** @internal */
  readonly readiness: ReadinessRecord = { known: 0, tracker: null };

  /** @internal Use {@link setNonBlocking}. */
  constructor(listener: TcpListener) {
    this.listener = listener;
  }

  get address(): Endpoint {
    return this.listener.address;
  }

  get closed(): boolean {
    return this.listener.closed;
  }

  /**
   * `accept`: a waiting connection, already in non-blocking mode (and, under
   * WSAAsyncSelect/WSAEventSelect, with the listener's selection), or null
   * (`WSAEWOULDBLOCK`) when none waits. Throws an OsError such as EMFILE.
   */
  accept(): NonBlockingSocket | null {
    this.readiness.known &= ~READ_BITS;
    const selection = this.selection;
    let socket: TcpSocket | null;
    try {
      socket = this.listener.tryAccept();
    } catch (err) {
      // A failed accept re-enables FD_ACCEPT too (MSDN: any call to the re-enabling function, even one that fails).
      if (selection !== null && !isAbortedOrClosed(err)) selection.afterAccept(null);
      throw err;
    }
    const accepted = socket === null ? null : new NonBlockingSocket(socket);
    if (selection !== null) selection.afterAccept(accepted);
    return accepted;
  }

  /** Stops listening. Idempotent. */
  close(): void {
    if (this.listener.closed) return;
    this.selection?.closed();
    this.selection = null;
    this.listener.close();
  }
}

/**
 * `ioctlsocket(s, FIONBIO, &1)`: puts a socket (or listener) in non-blocking
 * mode. A socket in this mode is used only through the returned object: its
 * overlapped calls must not be mixed in. There is no way back, as a socket
 * under WSAAsyncSelect cannot be made blocking again either.
 */
export function setNonBlocking(socket: TcpSocket): NonBlockingSocket;
export function setNonBlocking(listener: TcpListener): NonBlockingListener;
export function setNonBlocking(handle: TcpSocket | TcpListener): NonBlockingHandle {
  return handle instanceof TcpListener
    ? new NonBlockingListener(handle)
    : new NonBlockingSocket(handle);
}
