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
 */
import { type Completion, CompletionPort, type PortWorker } from '../../core/completion-port.js';
import { OverlappedError } from '../../core/errors.js';
import { Overlapped } from '../../core/overlapped.js';
import type { TcpListener } from '../../core/tcp-listener.js';
import type { TcpSocket } from '../../core/tcp-socket.js';
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

export { ECHO_DEFAULTS, type EchoIo, type EchoServerOptions } from './echo-base.js';

type Key = EchoConnection | typeof LISTENER;
const LISTENER = Symbol('listener');

/** The completion-port echo server. */
export class EchoServer extends EchoServerBase<EchoConnection> {
  readonly #port: CompletionPort<Key, unknown>;
  readonly #workers: Promise<void>[] = [];

  private constructor(
    port: CompletionPort<Key, unknown>,
    listener: TcpListener,
    settings: EchoSettings,
  ) {
    super(listener, settings);
    this.#port = port;
  }

  /** Listens and starts the worker loops. Rejects with an OsError (EADDRINUSE, …). */
  static async start(options: EchoServerOptions): Promise<EchoServer> {
    const { listener, settings } = await listenForEcho(options);
    const port = new CompletionPort<Key, unknown>({ concurrency: settings.concurrency });
    port.associate(listener, LISTENER);
    const server = new EchoServer(port, listener, settings);
    for (let i = 0; i < ECHO_DEFAULTS.pendingAccepts; i++) listener.accept(new Overlapped());
    for (let i = 0; i < settings.workers; i++) server.#workers.push(server.#work(port.worker()));
    return server;
  }

  protected override async finish(): Promise<void> {
    this.#port.close();
    await Promise.all(this.#workers);
  }

  protected override createConnection(
    socket: TcpSocket,
    peer: string,
    io: Overlapped<EchoIo>,
  ): EchoConnection {
    const conn = { socket, peer, io };
    this.#port.associate(socket, conn);
    return conn;
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
    const conn = this.admit(ov.socket, ov.error);
    if (conn !== null) this.postRecv(conn);
    if (!this.stopping) this.listener.accept(ov);
  }

  #onIo(conn: EchoConnection, c: Completion<Key, unknown>): void {
    const step = this.step(conn, c.error, c.bytes);
    if (step === 'send') conn.socket.send(unsent(conn.io), conn.io);
    else if (step === 'recv') this.postRecv(conn);
  }
}
