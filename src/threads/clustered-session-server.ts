/**
 * Every core on the `node` engine: one process per worker, with `cluster`.
 *
 * The node engine's sockets belong to their thread's libuv loop, so an
 * acceptor cannot hand them to worker threads, and Node 20 has no
 * `reusePort` (22.12 adds it) for a listener per thread. What Node does
 * offer is `cluster`: the primary process (the one that calls `start`)
 * owns the listening socket, every worker process listens "on" the same
 * port through it (`sharedListener`), and the primary hands each new
 * connection to the next worker in turn (cluster's round-robin scheduling,
 * the default on Linux; the reasons for round robin are the same as for
 * threads: see threaded-session-server.ts).
 *
 * Differences from the uring threads, all because processes share no memory:
 * - broadcast and `sendTo` between workers go through the primary over IPC,
 *   and the bytes are copied into each receiving process (one copy per
 *   process, not one shared copy);
 * - each worker is a whole Node process (tens of MiB), not a thread;
 * - the handler module is imported by each worker process, exactly as by
 *   each worker thread, with the same `ThreadContext`.
 * A worker that throws resets its sessions and the server stops, as with
 * threads.
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { check, OverlappedError } from '../core/errors.js';
import type { ClusterMessage, ClusterWorkerSetup } from './cluster-worker.js';
import { localKeyOf, MAX_THREADS, threadOf } from './thread-protocol.js';
import type {
  ThreadedSessionServerOptions,
  ThreadedStopReport,
  ThreadReport,
} from './threaded-session-server.js';
import { type StoppedMessage, stopWorkers } from './worker-stop.js';

const WORKER_FILE = fileURLToPath(new URL('./cluster-worker.js', import.meta.url));

interface ProcessState {
  readonly worker: Worker;
  readonly report: ThreadReport;
  readonly exited: Promise<void>;
  stopped: ((m: StoppedMessage) => void) | null;
  early: StoppedMessage | null;
  alive: boolean;
}

/** Sessions on every core for the node engine: a cluster of worker processes. */
export class ClusteredSessionServer {
  readonly threads: number;
  readonly port: number;
  readonly #workers: ProcessState[];
  readonly #onError: (error: Error) => void;
  #stopping: Promise<ThreadedStopReport> | null = null;
  failure: Error | null = null;

  private constructor(port: number, workers: ProcessState[], onError: (error: Error) => void) {
    this.port = port;
    this.#workers = workers;
    this.threads = workers.length;
    this.#onError = onError;
  }

  /** Forks the workers and resolves once every one listens. Only in a cluster primary. */
  static async start(options: ThreadedSessionServerOptions): Promise<ClusteredSessionServer> {
    const threads = options.threads;
    check(
      Number.isInteger(threads) && threads >= 1 && threads <= MAX_THREADS,
      'OVL_ERR_INVALID_ARGUMENT',
      `threads must be a whole number from 1 to ${MAX_THREADS}, got ${String(threads)}`,
    );
    check(cluster.isPrimary, 'OVL_ERR_NOT_SUPPORTED', 'a cluster worker cannot start a cluster');
    const onError =
      options.onError ??
      ((error: Error) =>
        process.stderr.write(`overlapped cluster: ${error.stack ?? error.message}\n`));
    cluster.setupPrimary({ exec: WORKER_FILE, args: [] });
    const handlers = options.handlers instanceof URL ? options.handlers.href : options.handlers;
    const states: ProcessState[] = [];
    const listening: Promise<number>[] = [];
    for (let thread = 0; thread < threads; thread++) {
      const setup: ClusterWorkerSetup = {
        thread,
        threads,
        host: options.host ?? '127.0.0.1',
        port: options.port ?? 0,
        handlers,
        handlerOptions: options.handlerOptions,
        session: options.session ?? {},
      };
      const worker = cluster.fork({ OVERLAPPED_CLUSTER_SETUP: JSON.stringify(setup) });
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      const state: ProcessState = {
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
      };
      states.push(state);
      listening.push(
        new Promise<number>((resolve, reject) => {
          const onMessage = (m: ClusterMessage) => {
            if (m.kind === 'listening') {
              worker.off('message', onMessage);
              resolve(m.port);
            }
          };
          worker.on('message', onMessage);
          exited.then(() => reject(new Error(`cluster worker ${thread} exited before listening`)));
        }),
      );
    }
    let ports: number[];
    try {
      ports = await Promise.all(listening);
    } catch (err) {
      for (const s of states) s.worker.kill();
      await Promise.all(states.map((s) => s.exited));
      throw err;
    }
    const server = new ClusteredSessionServer(ports[0] as number, states, onError);
    for (const state of states) server.#watch(state);
    return server;
  }

  get address(): { address: string; port: number } {
    return { address: '127.0.0.1', port: this.port };
  }

  /** Worker processes still running. */
  get running(): number {
    return this.#workers.filter((w) => w.alive).length;
  }

  get stopping(): boolean {
    return this.#stopping !== null;
  }

  /** Sends `bytes` to every open session of every worker (one copy per process). */
  broadcast(bytes: Uint8Array): void {
    const b64 = Buffer.from(bytes).toString('base64');
    for (const s of this.#workers) this.#send(s, { kind: 'broadcast', bytes: b64, except: -1 });
  }

  /** Sends `bytes` to the session under the global `key`, in its process. */
  sendTo(key: number, bytes: Uint8Array): void {
    const state = this.#workers[threadOf(key)];
    if (state !== undefined) {
      this.#send(state, {
        kind: 'send',
        key: localKeyOf(key),
        bytes: Buffer.from(bytes).toString('base64'),
      });
    }
  }

  /** Stops every worker (each drains its sessions, reset at `deadlineMs`). Idempotent. */
  stop(options: { deadlineMs?: number } = {}): Promise<ThreadedStopReport> {
    this.#stopping ??= this.#stop(options.deadlineMs ?? 10_000);
    return this.#stopping;
  }

  async #stop(deadlineMs: number): Promise<ThreadedStopReport> {
    const report = await stopWorkers(
      this.#workers,
      (state) => this.#send(state, { kind: 'stop', deadlineMs }),
      (state) => state.worker.kill(),
    );
    // No acceptor here: a worker was assigned what it accepted from the shared listener.
    for (const t of report.threads) t.assigned = t.accepted;
    return report;
  }

  #watch(state: ProcessState): void {
    state.worker.on('message', (m: ClusterMessage) => {
      switch (m.kind) {
        case 'stopped':
          if (state.stopped === null) state.early = m;
          else state.stopped(m);
          break;
        case 'failed': {
          const error = new Error(m.message);
          error.stack = m.stack;
          this.#failed(state, error);
          break;
        }
        case 'broadcast':
          for (const other of this.#workers) if (other !== state) this.#send(other, m);
          break;
        case 'send': {
          const target = this.#workers[threadOf(m.key)];
          if (target !== undefined) {
            this.#send(target, { kind: 'send', key: localKeyOf(m.key), bytes: m.bytes });
          }
          break;
        }
      }
    });
    // EPIPE on the IPC channel of a worker that is exiting: its exit says what matters.
    state.worker.on('error', () => {});
    state.worker.on('exit', (code) => {
      const unexpected = state.alive && this.#stopping === null;
      state.alive = false;
      if (unexpected) this.#failed(state, new Error(`worker process exited with code ${code}`));
    });
  }

  #failed(state: ProcessState, error: Error): void {
    if (state.report.error !== null) return;
    state.report.error = error;
    this.failure ??= error;
    this.#onError(
      new OverlappedError(
        'OVL_ERR_THREAD_FAILED',
        `session worker process ${state.report.thread} failed (${error.message}): stopping the server; the other workers drain their sessions`,
        { cause: error },
      ),
    );
    this.stop();
  }

  #send(state: ProcessState, message: ClusterMessage): void {
    if (state.alive && state.worker.isConnected()) state.worker.send(message);
  }
}
