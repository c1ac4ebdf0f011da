/**
 * The echo server on WSAEventSelect, as the seeds' EventSelectServer: each
 * socket's network events are recorded and set its event object; loops wait
 * on the events with `waitForMultipleEvents` and ask `enumNetworkEvents`
 * what happened.
 *
 * The acceptor waits on the listener's event (FD_ACCEPT); each accepted
 * socket gets an event of its own, FD_READ | FD_WRITE | FD_CLOSE, and a
 * place in an {@link EventWaitSet}: one I/O loop's event array, 63 sockets
 * plus its own wake-up event, since a wait covers at most 64 events. The
 * echo step is the readiness models' one; a FD_READ that comes while a
 * backlog waits is remembered and served once the backlog is sent.
 */
import { ManualResetEvent } from '../../core/events.js';
import type { TcpListener } from '../../core/tcp-listener.js';
import { waitForMultipleEvents } from '../../core/waits.js';
import { enumNetworkEvents, eventSelect } from '../../models/event-select.js';
import { EventWaitSet } from '../../models/event-wait-set.js';
import { FD_ACCEPT, FD_CLOSE, FD_READ, FD_WRITE } from '../../models/network-events.js';
import type { NonBlockingSocket } from '../../models/nonblocking.js';
import { type EchoServerOptions, type EchoSettings, listenForEcho } from './echo-base.js';
import {
  connectionFields,
  type ReadinessConnection,
  ReadinessEchoBase,
} from './readiness-echo-base.js';

interface EventSelectConnection extends ReadinessConnection {
  readonly event: ManualResetEvent;
  readonly set: EventWaitSet<EventSelectConnection>;
  recvPosted: boolean;
}

export class EventSelectEchoServer extends ReadinessEchoBase<EventSelectConnection> {
  readonly #sets: EventWaitSet<EventSelectConnection>[] = [];
  readonly #loops: Promise<void>[] = [];
  readonly #listenerEvent = new ManualResetEvent();
  #acceptor: Promise<void> = Promise.resolve();
  #retryAccept = false;

  private constructor(listener: TcpListener, settings: EchoSettings) {
    super(listener, settings);
  }

  static async start(options: EchoServerOptions): Promise<EventSelectEchoServer> {
    const { listener, settings } = await listenForEcho(options);
    const server = new EventSelectEchoServer(listener, settings);
    eventSelect(server.listener, server.#listenerEvent, FD_ACCEPT | FD_CLOSE);
    server.#acceptor = server.#accept();
    return server;
  }

  /** I/O loops running: one per 63 connections at their peak. */
  get waitLoops(): number {
    return this.#loops.length;
  }

  protected override async finish(): Promise<void> {
    this.#listenerEvent.set();
    await this.#acceptor;
    for (const set of this.#sets) set.close();
    await Promise.all(this.#loops);
  }

  protected override createConnection(
    socket: NonBlockingSocket,
    peer: string,
  ): EventSelectConnection {
    let set = this.#sets.find((s) => !s.full);
    if (set === undefined) {
      set = new EventWaitSet<EventSelectConnection>();
      this.#sets.push(set);
      this.#loops.push(this.#serve(set));
    }
    const event = new ManualResetEvent();
    const conn = { ...connectionFields(socket, peer), event, set, recvPosted: false };
    eventSelect(socket, event, FD_READ | FD_WRITE | FD_CLOSE);
    set.add(event, conn);
    return conn;
  }

  protected override close(conn: EventSelectConnection): void {
    conn.set.remove(conn);
    super.close(conn);
  }

  /** A back-off ended: the acceptor tries `accept` once even though no FD_ACCEPT is recorded. */
  protected override resumeAccepting(): void {
    this.#retryAccept = true;
    this.#listenerEvent.set();
  }

  async #accept(): Promise<void> {
    const events = [this.#listenerEvent];
    while (!this.stopping) {
      await waitForMultipleEvents(events);
      const { events: fired } = enumNetworkEvents(this.listener, this.#listenerEvent);
      if (fired & FD_ACCEPT || this.#retryAccept) {
        this.#retryAccept = false;
        this.acceptWaiting();
      }
    }
  }

  async #serve(set: EventWaitSet<EventSelectConnection>): Promise<void> {
    for (;;) {
      const conn = set.take();
      if (conn === undefined) {
        if (set.closed) return;
        await set.wait();
        continue;
      }
      const { events, errors } = enumNetworkEvents(conn.socket, conn.event);
      if (errors.size > 0) {
        this.close(conn);
        continue;
      }
      if (events & FD_WRITE && this.writable(conn) === 'read' && conn.recvPosted) {
        conn.recvPosted = false;
        this.readable(conn);
      }
      if (events & FD_READ) {
        if (conn.backlog !== null) conn.recvPosted = true;
        else this.readable(conn);
      }
      if (events & FD_CLOSE) this.close(conn);
    }
  }
}
