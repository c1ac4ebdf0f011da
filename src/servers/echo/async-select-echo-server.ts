/**
 * The echo server on WSAAsyncSelect, as the seeds' AsyncSelectServer: one
 * window, one window procedure, every socket's network events posted to it
 * as `WM_SOCKET` messages.
 *
 * - FD_ACCEPT: accept what waits; each new socket is selected for
 *   FD_READ | FD_WRITE | FD_CLOSE.
 * - FD_READ: recv once and send it back. While a backlog waits to be sent,
 *   the recv is not made (no new FD_READ comes until it is): the procedure
 *   notes `recvPosted`, as the seeds do, and posts itself an FD_READ once
 *   the backlog is gone.
 * - FD_WRITE: send the backlog (a send that found no room re-enabled it).
 * - FD_CLOSE, or any event with an error: close the socket.
 *
 * The window serves any number of sockets (no 64 limit); every message is
 * one queue entry, handled in the order the events happened.
 */
import type { TcpListener } from '../../core/tcp-listener.js';
import {
  asyncSelect,
  createWindow,
  type MessageWindow,
  WM_USER,
  WSAGETSELECTERROR,
  WSAGETSELECTEVENT,
  WSAMAKESELECTREPLY,
} from '../../models/async-select.js';
import { FD_ACCEPT, FD_CLOSE, FD_READ, FD_WRITE } from '../../models/network-events.js';
import type { NonBlockingSocket } from '../../models/nonblocking.js';
import { type EchoServerOptions, type EchoSettings, listenForEcho } from './echo-base.js';
import {
  connectionFields,
  type ReadinessConnection,
  ReadinessEchoBase,
} from './readiness-echo-base.js';

/** The window message that carries network events. */
export const WM_SOCKET = WM_USER + 1;

interface AsyncSelectConnection extends ReadinessConnection {
  /** An FD_READ came while a backlog waited: recv once the backlog is sent. */
  recvPosted: boolean;
}

export class AsyncSelectEchoServer extends ReadinessEchoBase<AsyncSelectConnection> {
  readonly #window: MessageWindow;
  #loop: Promise<void> = Promise.resolve();

  private constructor(listener: TcpListener, settings: EchoSettings) {
    super(listener, settings);
    this.#window = createWindow(this.#windowProc);
  }

  static async start(options: EchoServerOptions): Promise<AsyncSelectEchoServer> {
    const { listener, settings } = await listenForEcho(options);
    const server = new AsyncSelectEchoServer(listener, settings);
    asyncSelect(server.listener, server.#window, WM_SOCKET, FD_ACCEPT | FD_CLOSE);
    server.#loop = server.#window.run();
    return server;
  }

  /** Messages waiting in the window's queue. */
  get queuedMessages(): number {
    return this.#window.queued;
  }

  protected override async finish(): Promise<void> {
    this.#window.destroy();
    await this.#loop;
  }

  protected override createConnection(
    socket: NonBlockingSocket,
    peer: string,
  ): AsyncSelectConnection {
    asyncSelect(socket, this.#window, WM_SOCKET, FD_READ | FD_WRITE | FD_CLOSE);
    return { ...connectionFields(socket, peer), recvPosted: false };
  }

  /** FD_ACCEPT was used up by the accept that failed: post one, as if it came again. */
  protected override resumeAccepting(): void {
    this.#window.postMessage(WM_SOCKET, this.listener, WSAMAKESELECTREPLY(FD_ACCEPT, 0));
  }

  readonly #windowProc = (
    window: MessageWindow,
    message: number,
    wParam: unknown,
    lParam: number,
  ): void => {
    if (message !== WM_SOCKET) return;
    const event = WSAGETSELECTEVENT(lParam);
    if (event === FD_ACCEPT) {
      if (!this.stopping) this.acceptWaiting();
      return;
    }
    // A message queued for a socket closed since then finds no connection.
    const conn = this.connectionsBySocket.get(wParam as NonBlockingSocket);
    if (conn === undefined) return;
    if (WSAGETSELECTERROR(lParam) !== 0) {
      this.close(conn);
      return;
    }
    switch (event) {
      case FD_READ:
        if (conn.backlog !== null) conn.recvPosted = true;
        else this.readable(conn);
        break;
      case FD_WRITE:
        if (this.writable(conn) === 'read' && conn.recvPosted) {
          conn.recvPosted = false;
          window.postMessage(WM_SOCKET, conn.socket, WSAMAKESELECTREPLY(FD_READ, 0));
        }
        break;
      case FD_CLOSE:
        this.close(conn);
        break;
    }
  };
}
