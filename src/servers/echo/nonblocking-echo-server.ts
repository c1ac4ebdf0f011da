/**
 * The echo server on non-blocking sockets alone (the polling model of the
 * seeds' table): nothing tells it when a socket is ready, so one loop sweeps
 * them all, trying `accept` on the listener and `recv` (or `send`, while a
 * backlog waits) on every connection. A call that cannot proceed returns
 * WSAEWOULDBLOCK at once and the sweep moves on.
 *
 * When a whole sweep moved nothing, the loop sleeps `sweepIntervalMs`
 * before the next one, so an idle server does not spin a core; that sleep
 * is also the latency a request may wait when it arrives on an idle server.
 * A busy sweep only yields to the event loop (so the engine can deliver what
 * arrived) and sweeps again. Every sweep costs a call per socket whether or
 * not it has anything: the model's cost grows with idle connections.
 */

import { check } from '../../core/errors.js';
import type { TcpListener } from '../../core/tcp-listener.js';
import type { NonBlockingSocket } from '../../models/nonblocking.js';
import { type EchoServerOptions, type EchoSettings, listenForEcho } from './echo-base.js';
import {
  connectionFields,
  type ReadinessConnection,
  ReadinessEchoBase,
} from './readiness-echo-base.js';

export const DEFAULT_SWEEP_INTERVAL_MS = 1;

export interface NonBlockingEchoOptions extends EchoServerOptions {
  /** Sleep after a sweep that found nothing, in ms (default 1): idle CPU against idle latency. */
  sweepIntervalMs?: number;
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class NonBlockingEchoServer extends ReadinessEchoBase<ReadinessConnection> {
  readonly sweepIntervalMs: number;
  #loop: Promise<void> = Promise.resolve();
  #finished = false;
  /** Sweeps made since start, and those that found nothing (for tests and the report). */
  sweeps = 0;
  idleSweeps = 0;

  private constructor(listener: TcpListener, settings: EchoSettings, sweepIntervalMs: number) {
    super(listener, settings);
    this.sweepIntervalMs = sweepIntervalMs;
  }

  /** Listens and starts the sweep loop. Rejects with an OsError (EADDRINUSE, …). */
  static async start(options: NonBlockingEchoOptions): Promise<NonBlockingEchoServer> {
    const { sweepIntervalMs = DEFAULT_SWEEP_INTERVAL_MS, ...rest } = options;
    check(
      Number.isFinite(sweepIntervalMs) && sweepIntervalMs >= 1 && sweepIntervalMs <= 1000,
      'OVL_ERR_INVALID_ARGUMENT',
      `sweepIntervalMs must be from 1 to 1000, got ${String(sweepIntervalMs)}`,
    );
    const { listener, settings } = await listenForEcho(rest);
    const server = new NonBlockingEchoServer(listener, settings, sweepIntervalMs);
    server.#loop = server.#sweepLoop();
    return server;
  }

  protected override async finish(): Promise<void> {
    this.#finished = true;
    await this.#loop;
  }

  protected override createConnection(socket: NonBlockingSocket, peer: string) {
    return connectionFields(socket, peer);
  }

  /** The sweep tries `accept` on every pass, so nothing is needed to resume. */
  protected override resumeAccepting(): void {}

  async #sweepLoop(): Promise<void> {
    while (!this.#finished) {
      const before = this.progress;
      if (!this.stopping) this.acceptWaiting();
      for (const conn of this.connectionsBySocket.values()) {
        if (conn.backlog !== null) this.writable(conn);
        else this.readable(conn);
      }
      this.sweeps++;
      if (this.progress === before) {
        this.idleSweeps++;
        await sleep(this.sweepIntervalMs);
      } else {
        await yieldToLoop();
      }
    }
  }
}
