/**
 * The echo server on overlapped I/O signalled by event objects, as in the
 * seeds' event-model server.
 *
 * The acceptor keeps accepts posted, each signalling its own event, and
 * waits on those. Each accepted socket gets a manual-reset event on its one
 * Overlapped, its first recv, and a place in an {@link EventWaitSet}: the
 * event array of one I/O loop, whose slot 0 tells the loop a socket was
 * added. The loop waits on the array, resets the signalled event, reads the
 * result with `getOverlappedResult`, and posts the next step (send all that
 * arrived, finishing partial sends, then recv). A wait covers 64 events, so
 * the server opens another loop for every 63 connections.
 */
import { AutoResetEvent, ManualResetEvent } from '../../core/events.js';
import { Overlapped } from '../../core/overlapped.js';
import type { TcpListener } from '../../core/tcp-listener.js';
import type { TcpSocket } from '../../core/tcp-socket.js';
import { getOverlappedResult, waitForMultipleEvents } from '../../core/waits.js';
import { EventWaitSet } from '../../models/event-wait-set.js';
import {
  ECHO_DEFAULTS,
  type EchoConnection,
  type EchoIo,
  EchoServerBase,
  type EchoServerOptions,
  type EchoSettings,
  listenForEcho,
  unsent,
} from './echo-base.js';

/** Per-handle data: the connection and the wait set (I/O loop) that serves it. */
interface EventConnection extends EchoConnection {
  readonly set: EventWaitSet<EventConnection>;
}

/**
 * `getOverlappedResult` of a finished operation: its bytes, or 0 for a failed
 * one, whose error the caller reads from `ov.error` (no try/catch, no result
 * object per completion).
 */
const isPending = (ov: Overlapped<unknown>): boolean => ov.pending;
const isSignaled = (event: AutoResetEvent): boolean => event.signaled;

function bytesOf(ov: Overlapped<unknown>): number {
  return ov.error === null ? getOverlappedResult(ov) : 0;
}

export class EventsEchoServer extends EchoServerBase<EventConnection> {
  readonly #sets: EventWaitSet<EventConnection>[] = [];
  readonly #loops: Promise<void>[] = [];
  #acceptor: Promise<void> = Promise.resolve();

  private constructor(listener: TcpListener, settings: EchoSettings) {
    super(listener, settings);
  }

  /** Listens and starts the acceptor. Rejects with an OsError (EADDRINUSE, …). */
  static async start(options: EchoServerOptions): Promise<EventsEchoServer> {
    const { listener, settings } = await listenForEcho(options);
    const server = new EventsEchoServer(listener, settings);
    server.#acceptor = server.#accept();
    return server;
  }

  /** I/O loops running: one per 63 connections at their peak. */
  get waitLoops(): number {
    return this.#loops.length;
  }

  protected override async finish(): Promise<void> {
    await this.#acceptor;
    for (const set of this.#sets) set.close();
    await Promise.all(this.#loops);
  }

  protected override createConnection(
    socket: TcpSocket,
    peer: string,
    io: Overlapped<EchoIo>,
  ): EventConnection {
    let set = this.#sets.find((s) => !s.full);
    if (set === undefined) {
      set = new EventWaitSet<EventConnection>();
      this.#sets.push(set);
      this.#loops.push(this.#serve(set));
    }
    io.event = new ManualResetEvent();
    return { socket, peer, io, set };
  }

  protected override close(conn: EventConnection): void {
    conn.set.remove(conn);
    super.close(conn);
  }

  async #accept(): Promise<void> {
    const accepts = Array.from({ length: ECHO_DEFAULTS.pendingAccepts }, () => {
      const ov = new Overlapped();
      ov.event = new AutoResetEvent();
      return ov;
    });
    const events = accepts.map((ov) => ov.event as AutoResetEvent);
    for (const ov of accepts) this.listener.accept(ov);
    // After stop() the listener is closed: the aborted accepts signal their events; then return.
    while (accepts.some(isPending) || events.some(isSignaled)) {
      const ov = accepts[(await waitForMultipleEvents(events)) as number] as Overlapped;
      const conn = this.admit(ov.socket, ov.error);
      if (conn !== null) {
        this.postRecv(conn);
        conn.set.add(conn.io.event as ManualResetEvent, conn);
      }
      if (!this.stopping) this.listener.accept(ov);
    }
  }

  async #serve(set: EventWaitSet<EventConnection>): Promise<void> {
    for (;;) {
      // Drain what is signalled already; block only when nothing is.
      const conn = set.take();
      if (conn === undefined) {
        if (set.closed) return;
        await set.wait();
        continue;
      }
      const step = this.step(conn, conn.io.error, bytesOf(conn.io));
      if (step === 'send') conn.socket.send(unsent(conn.io), conn.io);
      else if (step === 'recv') this.postRecv(conn);
    }
  }
}
