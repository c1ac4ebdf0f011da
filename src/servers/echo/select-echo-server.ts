/**
 * The echo server on `select`, as in the seeds' select server: each loop
 * fills a read set (its connections with nothing left to send, and the
 * listener while it has room) and a write set (connections with a
 * backlog), calls `select`, then makes the calls that will not block:
 * `accept` and `recv` on what is readable, `send` on what is writable.
 *
 * A set holds FD_SETSIZE (64) sockets, so a loop serves at most 63 clients
 * plus the listener, and the server opens another loop when every loop is
 * full. Every loop with room has the listener in its read set, so a new
 * client wakes those loops and one of them takes it (the others find
 * WSAEWOULDBLOCK: a spurious wake-up, as select allows).
 */
import type { TcpListener } from '../../core/tcp-listener.js';
import { INFINITE } from '../../core/waits.js';
import type { NonBlockingSocket } from '../../models/nonblocking.js';
import { FD_SETSIZE, FdSet, select } from '../../models/select.js';
import { type EchoServerOptions, type EchoSettings, listenForEcho } from './echo-base.js';
import {
  connectionFields,
  type ReadinessConnection,
  ReadinessEchoBase,
} from './readiness-echo-base.js';

/** One select loop: its connections and its two sets, reused on every call. */
class SelectLoop {
  static readonly CAPACITY = FD_SETSIZE - 1;
  readonly conns = new Set<SelectConnection>();
  readonly read = new FdSet();
  readonly write = new FdSet();
  done: Promise<void> = Promise.resolve();
  get full(): boolean {
    return this.conns.size >= SelectLoop.CAPACITY;
  }
}

interface SelectConnection extends ReadinessConnection {
  readonly loop: SelectLoop;
}

export class SelectEchoServer extends ReadinessEchoBase<SelectConnection> {
  readonly #loops = new Set<SelectLoop>();
  readonly #finished: Promise<void>[] = [];
  /** The loop whose select reported the listener: it takes the new clients while it has room. */
  #accepting: SelectLoop | null = null;
  /** Loops opened since start (one per 63 clients at the peak). */
  selectLoops = 0;

  private constructor(listener: TcpListener, settings: EchoSettings) {
    super(listener, settings);
  }

  static async start(options: EchoServerOptions): Promise<SelectEchoServer> {
    const { listener, settings } = await listenForEcho(options);
    const server = new SelectEchoServer(listener, settings);
    server.#open();
    return server;
  }

  protected override async finish(): Promise<void> {
    for (;;) {
      const pending = this.#finished.splice(0);
      if (pending.length === 0) return;
      await Promise.all(pending);
    }
  }

  protected override createConnection(socket: NonBlockingSocket, peer: string): SelectConnection {
    let loop = this.#accepting;
    if (loop === null || loop.full) loop = this.#roomy() ?? this.#open();
    const conn: SelectConnection = { ...connectionFields(socket, peer), loop };
    loop.conns.add(conn);
    return conn;
  }

  protected override close(conn: SelectConnection): void {
    conn.loop.conns.delete(conn);
    super.close(conn);
  }

  /** Every loop waits with a timeout while accepting backs off; one that ended is opened again. */
  protected override resumeAccepting(): void {
    if (this.hasRoom && this.#roomy() === null) this.#open();
  }

  #roomy(): SelectLoop | null {
    for (const loop of this.#loops) if (!loop.full) return loop;
    return null;
  }

  #open(): SelectLoop {
    const loop = new SelectLoop();
    this.#loops.add(loop);
    this.selectLoops++;
    loop.done = this.#run(loop);
    this.#finished.push(loop.done);
    return loop;
  }

  async #run(loop: SelectLoop): Promise<void> {
    const { read, write } = loop;
    for (;;) {
      read.clear();
      write.clear();
      const listening = this.accepting && !loop.full;
      if (listening) read.add(this.listener);
      for (const conn of loop.conns) (conn.backlog === null ? read : write).add(conn.socket);
      if (loop.conns.size === 0 && (!listening || this.#othersListen(loop))) break;
      // Backing off: the listener is left out until accepting resumes, so wake up then.
      const pausedMs = this.stopping || loop.full ? 0 : this.backoffLeftMs;
      await select({ read, write }, pausedMs > 0 ? Math.ceil(pausedMs) : INFINITE);
      for (const handle of read) {
        if (handle === this.listener) {
          this.#accepting = loop;
          this.acceptWaiting();
          this.#accepting = null;
        } else {
          const conn = this.connectionsBySocket.get(handle as NonBlockingSocket);
          if (conn !== undefined) this.readable(conn);
        }
      }
      for (const handle of write) {
        const conn = this.connectionsBySocket.get(handle as NonBlockingSocket);
        if (conn !== undefined) this.writable(conn);
      }
      if (this.hasRoom && this.#roomy() === null) this.#open();
    }
    this.#loops.delete(loop);
  }

  /** True when another loop has room, so an empty `loop` may end. */
  #othersListen(loop: SelectLoop): boolean {
    for (const other of this.#loops) if (other !== loop && !other.full) return true;
    return false;
  }
}
