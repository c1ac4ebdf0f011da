/**
 * Every core: one acceptor and N session worker threads, each worker with
 * its own engine and completion port (the seeds' "IOCP server with acceptor
 * thread": the acceptor binds each socket to a worker's port).
 *
 * The acceptor (the thread that calls `start`) listens on its own engine,
 * accepts, detaches each connection's descriptor and hands it to a worker,
 * which adopts it into its engine (`engine.adopt`, uring) and serves it as
 * a session of its `SessionServer` until it ends. A session never moves.
 *
 * Spreading: round robin. The acceptor cannot see a worker's load without
 * asking it, and an answer is stale by the time it arrives; with sessions
 * that cost about the same, turns spread them evenly and cost nothing.
 * (Least-loaded would pay off for sessions of very uneven cost; it needs
 * counts posted back by the workers.)
 *
 * Engines: only an engine whose descriptors can leave their event loop can
 * hand connections to threads (`uring`). The `node` engine cannot: a
 * node:net socket belongs to its thread's libuv loop. Node offers two other
 * shapes there: a listener per worker sharing the port (`reusePort`, Node
 * 22.12 and later only; this package supports Node 20, which lacks it), or
 * one process per core (`cluster`), where broadcast and `sendTo` cross
 * processes: that is clustered-session-server.ts. `start` here refuses the
 * node engine with `OVL_ERR_NOT_SUPPORTED` saying so;
 * `startSessionThreads` picks the right one for the engine.
 *
 * A worker that throws (an uncaught exception in its thread) is reported
 * through `onError` and the whole server stops: the other workers drain
 * their sessions; the failed thread's sessions are gone with it. Serving
 * the other half silently would hide the failure.
 */
import { Worker } from 'node:worker_threads';
import { type Completion, CompletionPort } from '../core/completion-port.js';
import { check, OverlappedError } from '../core/errors.js';
import { Overlapped } from '../core/overlapped.js';
import { DEFAULT_BACKLOG, TcpListener } from '../core/tcp-listener.js';
import type { Endpoint } from '../engines/contract.js';
import { chooseEngine } from '../engines/select.js';
import type { SessionServerOptions } from '../servers/session/session-server.js';
import {
  type FromWorker,
  localKeyOf,
  MAX_THREADS,
  shareBytes,
  type ToWorker,
  threadOf,
} from './thread-protocol.js';
import { type StoppedMessage, stopWorkers } from './worker-stop.js';

export interface ThreadedSessionServerOptions {
  /** Worker threads, 1 to 64. */
  threads: number;
  /** `node` or `uring`; default: `OVERLAPPED_ENGINE`, else the fastest here. Must have `adopt`. */
  engine?: string;
  host?: string;
  port?: number;
  backlog?: number;
  /**
   * The handler module (a URL or absolute file URL string) whose default
   * export is a `ThreadHandlersFactory`: each worker imports it and calls it
   * once (hooks cannot cross threads, a module can).
   */
  handlers: string | URL;
  /** Given to the factory as `context.options` (structured-cloned). */
  handlerOptions?: unknown;
  /** Per-worker session options (caps, policy, marks). */
  session?: Omit<SessionServerOptions, 'engine' | 'handlers' | 'onError' | 'host' | 'port'>;
  /** A worker failed, or an accept did; default: stderr. */
  onError?(error: Error): void;
}

/** Per thread, what a stop found. */
export interface ThreadReport {
  thread: number;
  /** Connections the acceptor handed to this thread. */
  assigned: number;
  /** Sessions the thread served (0 when it failed before reporting). */
  accepted: number;
  drained: number;
  reset: number;
  /** The thread's CPU time in microseconds (user + system), -1 where unknown. */
  cpuMicros: number;
  /** Set when the thread failed. */
  error: Error | null;
}

export interface ThreadedStopReport {
  drained: number;
  reset: number;
  threads: ThreadReport[];
}

interface WorkerState {
  readonly worker: Worker;
  readonly report: ThreadReport;
  /** Resolves once the thread has exited. */
  readonly exited: Promise<void>;
  stopped: ((message: StoppedMessage) => void) | null;
  /** The thread's `stopped` report when it came before the stop asked (a failed thread's). */
  early: StoppedMessage | null;
  alive: boolean;
}

const WORKER_URL = new URL('./session-thread-worker.js', import.meta.url);

/** Sessions on every core: an acceptor thread and N session worker threads. */
export class ThreadedSessionServer {
  readonly threads: number;
  readonly #listener: TcpListener;
  readonly #port: CompletionPort<'listener', unknown>;
  readonly #workers: WorkerState[];
  readonly #onError: (error: Error) => void;
  #next = 0;
  #stopping: Promise<ThreadedStopReport> | null = null;
  #loop: Promise<void> = Promise.resolve();
  /** The first worker failure, if any. */
  failure: Error | null = null;

  private constructor(
    listener: TcpListener,
    port: CompletionPort<'listener', unknown>,
    workers: WorkerState[],
    onError: (error: Error) => void,
  ) {
    this.#listener = listener;
    this.#port = port;
    this.#workers = workers;
    this.threads = workers.length;
    this.#onError = onError;
  }

  /** Starts the workers, then listens. Rejects on the node engine (see the notes above). */
  static async start(options: ThreadedSessionServerOptions): Promise<ThreadedSessionServer> {
    const threads = options.threads;
    check(
      Number.isInteger(threads) && threads >= 1 && threads <= MAX_THREADS,
      'OVL_ERR_INVALID_ARGUMENT',
      `threads must be a whole number from 1 to ${MAX_THREADS}, got ${String(threads)}`,
    );
    const choice = chooseEngine(options.engine);
    const engine = choice.engine;
    check(
      engine.adopt !== undefined,
      'OVL_ERR_NOT_SUPPORTED',
      `the ${engine.name} engine cannot hand connections to worker threads (a node:net socket belongs to its thread's event loop; reusePort needs Node 22.12+, this is ${process.versions.node}): use the uring engine, or ClusteredSessionServer (one process per core)`,
    );
    const onError =
      options.onError ??
      ((error: Error) =>
        process.stderr.write(`overlapped threads: ${error.stack ?? error.message}\n`));
    const handlers = options.handlers instanceof URL ? options.handlers.href : options.handlers;
    const workers: WorkerState[] = [];
    for (let thread = 0; thread < threads; thread++) {
      const worker = new Worker(WORKER_URL, {
        workerData: {
          thread,
          threads,
          engine: engine.name,
          handlers,
          handlerOptions: options.handlerOptions,
          session: options.session ?? {},
        },
      });
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      workers.push({
        worker,
        exited,
        stopped: null,
        early: null,
        alive: true,
        report: {
          thread,
          assigned: 0,
          accepted: 0,
          drained: 0,
          reset: 0,
          cpuMicros: -1,
          error: null,
        },
      });
    }
    let listener: TcpListener;
    try {
      listener = await TcpListener.listen({
        engine,
        host: options.host ?? '127.0.0.1',
        port: options.port ?? 0,
        backlog: options.backlog ?? DEFAULT_BACKLOG,
      });
    } catch (err) {
      await Promise.all(workers.map((w) => w.worker.terminate()));
      throw err;
    }
    const port = new CompletionPort<'listener', unknown>({ concurrency: 1 });
    port.associate(listener, 'listener');
    const server = new ThreadedSessionServer(listener, port, workers, onError);
    for (const state of workers) server.#watch(state);
    for (let i = 0; i < 16; i++) listener.accept(new Overlapped());
    server.#loop = server.#acceptLoop();
    return server;
  }

  get address(): Endpoint {
    return this.#listener.address;
  }

  /** Connections handed to each thread so far. */
  get assigned(): number[] {
    return this.#workers.map((w) => w.report.assigned);
  }

  /** Worker threads still running. */
  get running(): number {
    return this.#workers.filter((w) => w.alive).length;
  }

  get stopping(): boolean {
    return this.#stopping !== null;
  }

  /** Sends `bytes` to every open session on every thread: one shared copy. */
  broadcast(bytes: Uint8Array): void {
    const shared = shareBytes(bytes);
    this.#toAll({ kind: 'broadcast', bytes: shared, except: -1 });
  }

  /** Sends `bytes` to the session under the global `key`, on its thread (nothing when stale). */
  sendTo(key: number, bytes: Uint8Array): void {
    this.#to(threadOf(key), { kind: 'send', key: localKeyOf(key), bytes: shareBytes(bytes) });
  }

  /** Posts `value` to thread `thread`'s port: its handlers' `onPost(key, value)` gets it. */
  post(thread: number, key: unknown, value?: unknown): void {
    this.#to(thread, { kind: 'post', key, value });
  }

  /**
   * Stops accepting, lets every thread drain its sessions (reset at
   * `deadlineMs`), and ends every thread. Idempotent.
   */
  stop(options: { deadlineMs?: number } = {}): Promise<ThreadedStopReport> {
    this.#stopping ??= this.#stop(options.deadlineMs ?? 10_000);
    return this.#stopping;
  }

  async #stop(deadlineMs: number): Promise<ThreadedStopReport> {
    this.#listener.close();
    this.#port.close();
    await this.#loop;
    return stopWorkers(
      this.#workers,
      (state) => state.worker.postMessage({ kind: 'stop', deadlineMs } satisfies ToWorker),
      (state) => state.worker.terminate(),
    );
  }

  #watch(state: WorkerState): void {
    const { worker } = state;
    worker.on('message', (message: FromWorker) => {
      switch (message.kind) {
        case 'stopped':
          if (state.stopped === null) state.early = message;
          else state.stopped(message);
          break;
        case 'failed': {
          const error = new Error(message.message);
          error.stack = message.stack;
          this.#failed(state, error);
          break;
        }
        case 'broadcast':
          for (const other of this.#workers) {
            if (other !== state) this.#send(other, message);
          }
          break;
        case 'send':
          this.#to(threadOf(message.key), {
            kind: 'send',
            key: localKeyOf(message.key),
            bytes: message.bytes,
          });
          break;
      }
    });
    worker.on('error', (error) => {
      state.alive = false;
      this.#failed(state, error);
    });
    worker.on('exit', () => {
      state.alive = false;
    });
  }

  #failed(state: WorkerState, error: Error): void {
    if (state.report.error !== null) return;
    state.report.error = error;
    this.failure ??= error;
    this.#onError(
      new OverlappedError(
        'OVL_ERR_THREAD_FAILED',
        `session worker thread ${state.report.thread} failed (${error.message}): stopping the server; the other threads drain their sessions`,
        { cause: error },
      ),
    );
    this.stop();
  }

  #to(thread: number, message: ToWorker): void {
    const state = this.#workers[thread];
    if (state !== undefined) this.#send(state, message);
  }

  #toAll(message: ToWorker): void {
    for (const state of this.#workers) this.#send(state, message);
  }

  #send(state: WorkerState, message: ToWorker): void {
    if (state.alive) state.worker.postMessage(message);
  }

  async #acceptLoop(): Promise<void> {
    const worker = this.#port.worker();
    for (;;) {
      let batch: Completion<'listener', unknown>[];
      try {
        batch = await worker.dequeueMany({ max: 64 });
      } catch (err) {
        if (err instanceof OverlappedError && err.code === 'OVL_ERR_PORT_CLOSED') return;
        throw err;
      }
      for (const c of batch) this.#accepted(c.overlapped as Overlapped);
    }
  }

  #accepted(ov: Overlapped): void {
    const socket = ov.socket;
    if (ov.error !== null || socket === null) {
      if (this.#stopping === null) {
        this.#onError(ov.error ?? new Error('accept completed without a socket'));
        setTimeout(() => {
          if (this.#stopping === null) this.#listener.accept(ov);
        }, 100);
      }
      return;
    }
    if (this.#stopping !== null) {
      socket.destroy();
      return;
    }
    this.#listener.accept(ov);
    const state = this.#pick();
    if (state === null) {
      socket.destroy();
      return;
    }
    state.report.assigned++;
    this.#send(state, { kind: 'adopt', fd: socket.detach() });
  }

  /** Round robin over the threads still running. */
  #pick(): WorkerState | null {
    for (let i = 0; i < this.#workers.length; i++) {
      const state = this.#workers[this.#next] as WorkerState;
      this.#next = (this.#next + 1) % this.#workers.length;
      if (state.alive) return state;
    }
    return null;
  }
}
