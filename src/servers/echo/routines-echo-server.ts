/**
 * The echo server on completion routines and an alertable wait, as in the
 * seeds' completion-routine server.
 *
 * Nothing is associated with a port and no event is waited on: every
 * operation is posted with a routine, and one loop sleeps in
 * `sleepEx(INFINITE, true)`, where the routines run. The accept routine
 * posts the new socket's first recv and the next accept; the recv routine
 * posts the send; the send routine posts the rest of a partial send or the
 * next recv; a zero-byte recv or an error closes and frees the connection.
 */
import { queueUserApc } from '../../core/apc.js';
import { Overlapped } from '../../core/overlapped.js';
import type { TcpListener } from '../../core/tcp-listener.js';
import type { TcpSocket } from '../../core/tcp-socket.js';
import { INFINITE, sleepEx } from '../../core/waits.js';
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

export class RoutinesEchoServer extends EchoServerBase<EchoConnection> {
  #loop: Promise<void> = Promise.resolve();
  #finished = false;

  private constructor(listener: TcpListener, settings: EchoSettings) {
    super(listener, settings);
  }

  /** Listens, posts the accepts and enters the alertable loop. Rejects with an OsError. */
  static async start(options: EchoServerOptions): Promise<RoutinesEchoServer> {
    const { listener, settings } = await listenForEcho(options);
    const server = new RoutinesEchoServer(listener, settings);
    for (let i = 0; i < ECHO_DEFAULTS.pendingAccepts; i++) {
      listener.accept(new Overlapped(), server.#onAccept);
    }
    server.#loop = server.#alertableLoop();
    return server;
  }

  protected override async finish(): Promise<void> {
    // A user APC wakes the loop from its infinite sleep. Queued after the routines of the
    // aborted accepts and recvs, it runs after them, so the loop leaves none behind.
    queueUserApc(() => {
      this.#finished = true;
    });
    await this.#loop;
  }

  protected override createConnection(
    socket: TcpSocket,
    peer: string,
    io: Overlapped<EchoIo>,
  ): EchoConnection {
    return { socket, peer, io };
  }

  async #alertableLoop(): Promise<void> {
    while (!this.#finished) await sleepEx(INFINITE, true);
  }

  readonly #onAccept = (error: Error | null, _bytes: number, ov: Overlapped): void => {
    const conn = this.admit(ov.socket, error);
    if (conn !== null) this.postRecv(conn, this.#onIo);
    if (!this.stopping) this.listener.accept(ov, this.#onAccept);
  };

  /** The recv routine and the send routine: one echo step each. */
  readonly #onIo = (error: Error | null, bytes: number, io: Overlapped<EchoIo>): void => {
    const conn = io.data.connection as EchoConnection;
    const step = this.step(conn, error, bytes);
    if (step === 'send') conn.socket.send(unsent(io), io, this.#onIo);
    else if (step === 'recv') this.postRecv(conn, this.#onIo);
  };
}
