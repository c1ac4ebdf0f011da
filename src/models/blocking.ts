/**
 * The blocking model: a thread per connection, as the seeds' blocking
 * server. An acceptor hands each accepted connection to a `worker_threads`
 * thread of its own, which runs your handler with a {@link BlockingSocket}:
 * `recv` blocks that thread until bytes arrive, `send` until every byte is
 * written, and nothing else is disturbed. When the handler returns, the
 * connection is closed and the thread waits for the next one (threads are
 * kept and reused: starting one costs milliseconds and megabytes).
 *
 * At most `maxThreads` connections are served at once. Past that, the
 * acceptor stops accepting, so new clients wait in the listen backlog (they
 * are not reset) until a thread is free, and the log says so once.
 *
 * On the uring engine each thread gets the connection's descriptor and
 * makes real blocking system calls on it. The node engine cannot hand a
 * socket to another thread: there the thread blocks in `Atomics.wait` while
 * this thread does the I/O for it (`mode` says which; see ./blocking-socket.ts).
 *
 * The handler is a module (so that each thread can load it): its default
 * export is `(socket: BlockingSocket, options) => void`, and it runs
 * synchronously; `options` is `handlerOptions`, copied to each thread.
 */

import { MessageChannel, Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { countLimitClose } from '../core/counters.js';
import {
  checkTimeouts,
  Deadline,
  deadlines,
  describeDeadline,
  STOP_QUIET_MS,
} from '../core/deadlines.js';
import { check, OverlappedError } from '../core/errors.js';
import { Overlapped } from '../core/overlapped.js';
import type { TcpListener } from '../core/tcp-listener.js';
import type { TcpSocket } from '../core/tcp-socket.js';
import { getOverlappedResult } from '../core/waits.js';
import type { BlockingDescriptorIo, Endpoint } from '../engines/contract.js';
import {
  type BlockingMode,
  encodeProxyError,
  PROXY_DATA_BYTES,
  Progress,
  ProxyCall,
} from './blocking-socket.js';

export type { BlockingMode, BlockingSocket } from './blocking-socket.js';

/** Default cap on threads, and so on connections served at once. */
export const DEFAULT_MAX_THREADS = 64;

export interface ThreadPerConnectionOptions {
  listener: TcpListener;
  /** The handler module: a file URL (or path) whose default export serves one connection. */
  handler: URL | string;
  /** Copied to each thread and passed to the handler (structured clone). */
  handlerOptions?: unknown;
  /** Threads, and so connections, at once. Default {@link DEFAULT_MAX_THREADS}. */
  maxThreads?: number;
  /** Connections past this are accepted and reset at once (default: no limit below maxThreads). */
  maxConnections?: number;
  /** Info lines per connect and disconnect, a warning when the thread cap is reached. */
  logger?: Logger;
  /**
   * Ends a connection whose calls moved no byte either way for this many ms:
   * its thread's `recv` sees end of stream (a FIN follows once the handler
   * returns). 0 or absent: off.
   */
  idleTimeoutMs?: number;
  /**
   * Resets a connection whose thread has waited this many ms in a `send`
   * the client takes nothing of: the send fails. 0 or absent: off.
   */
  writeTimeoutMs?: number;
}

/** One connection being served, and its thread. */
interface Served {
  readonly thread: Thread;
  readonly peer: string;
  /** uring: the descriptor the thread blocks on. */
  readonly fd: number;
  /** node: the socket this thread does the I/O of. */
  readonly socket: TcpSocket | null;
  /** node: the shared area's views, and the one record the thread's calls are made with (one at a time). */
  readonly control: Int32Array | null;
  readonly data: Uint8Array | null;
  readonly io: Overlapped | null;
  /** node: a recv is posted for the thread (a graceful stop cancels it once quiet). */
  receiving: boolean;
  /** A graceful stop has begun: the connection is watched for going quiet. */
  ending: boolean;
  /** Quiet while stopping: the thread's recv sees end of stream from now on. */
  cut: boolean;
  /** uring: the thread's progress record (./blocking-socket.ts, `Progress`). */
  readonly progress: BigInt64Array | null;
  /** node: bytes this thread received and sent, counted here where the I/O is made. */
  received: number;
  sent: number;
  /** Bytes received at the stop's previous look. */
  seen: number;
  /** node: a send is posted for the thread. */
  sending: boolean;
  /** node: when a call last moved bytes (ms since the epoch). */
  last: number;
  /** The idle or write deadline, when either is on. */
  deadline: Deadline | null;
  /** A write deadline reset the connection: its thread's failure is not news. */
  timedOut: boolean;
}

interface Thread {
  readonly worker: Worker;
  served: Served | null;
  /** Resolves when the worker has exited. */
  readonly exited: Promise<void>;
}

const WORKER_URL = new URL('./blocking-worker.js', import.meta.url);

function describe(endpoint: Endpoint | null): string {
  if (endpoint === null) return 'unknown';
  return endpoint.family === 'IPv6'
    ? `[${endpoint.address}]:${endpoint.port}`
    : `${endpoint.address}:${endpoint.port}`;
}

/** A server with a thread per connection. Start one with {@link ThreadPerConnectionServer.start}. */
export class ThreadPerConnectionServer {
  readonly listener: TcpListener;
  readonly maxThreads: number;
  readonly maxConnections: number;
  /** How threads reach their connections: real descriptors, or calls proxied to this thread. */
  readonly mode: BlockingMode;
  readonly #io: BlockingDescriptorIo | undefined;
  readonly #handler: string;
  readonly #handlerOptions: unknown;
  readonly #logger: Logger | undefined;
  readonly #idleTimeoutMs: number;
  readonly #writeTimeoutMs: number;
  readonly #threads = new Set<Thread>();
  readonly #idle: Thread[] = [];
  #busy = 0;
  #slotFree: (() => void) | null = null;
  #drained: (() => void) | null = null;
  #acceptor: Promise<void> = Promise.resolve();
  #stopping: Promise<void> | null = null;
  #warnedAtCap = false;
  /** Connections refused because of maxConnections. */
  refused = 0;
  /** Threads started since start (the rest of the connections reused one). */
  threadsStarted = 0;
  /** Bytes received from clients and sent to them, by connections that ended. */
  #receivedBefore = 0;
  #sentBefore = 0;
  /** Connections still busy when the stop deadline passed, and so cut. */
  resetAtStop = 0;

  private constructor(options: ThreadPerConnectionOptions) {
    this.listener = options.listener;
    this.maxThreads = options.maxThreads ?? DEFAULT_MAX_THREADS;
    this.maxConnections = options.maxConnections ?? Number.POSITIVE_INFINITY;
    this.#io = options.listener.engine.blocking;
    this.mode = this.#io === undefined ? 'proxied' : 'descriptor';
    this.#handler = options.handler instanceof URL ? options.handler.href : options.handler;
    this.#handlerOptions = options.handlerOptions;
    this.#logger = options.logger;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 0;
    this.#writeTimeoutMs = options.writeTimeoutMs ?? 0;
  }

  /** Starts accepting on `listener` and serving each connection on a thread of its own. */
  static start(options: ThreadPerConnectionOptions): ThreadPerConnectionServer {
    const max = options.maxThreads ?? DEFAULT_MAX_THREADS;
    check(
      Number.isSafeInteger(max) && max >= 1 && max <= 10_000,
      'OVL_ERR_INVALID_ARGUMENT',
      `maxThreads must be a whole number from 1 to 10000, got ${String(max)}`,
    );
    checkTimeouts(options);
    const server = new ThreadPerConnectionServer(options);
    server.#acceptor = server.#accept();
    return server;
  }

  /** Connections being served now (one per busy thread). */
  get connections(): number {
    return this.#busy;
  }

  /** Threads alive: serving a connection or waiting for the next one. */
  get threads(): number {
    return this.#threads.size;
  }

  get address(): Endpoint {
    return this.listener.address;
  }

  /** Bytes received from clients since start (connections served now included). */
  get bytesReceived(): number {
    let total = this.#receivedBefore;
    for (const thread of this.#threads)
      if (thread.served !== null) total += received(thread.served);
    return total;
  }

  /** Bytes sent to clients since start (connections served now included). */
  get bytesSent(): number {
    let total = this.#sentBefore;
    for (const thread of this.#threads) if (thread.served !== null) total += sent(thread.served);
    return total;
  }

  async #accept(): Promise<void> {
    const ov = new Overlapped();
    while (this.#stopping === null) {
      if (this.#busy >= this.maxThreads) {
        if (!this.#warnedAtCap) {
          this.#warnedAtCap = true;
          this.#logger?.warn(
            { maxThreads: this.maxThreads },
            'every thread is serving a connection (--max-threads): new clients wait in the listen backlog until one is free',
          );
        }
        await new Promise<void>((resolve) => {
          this.#slotFree = resolve;
        });
        continue;
      }
      this.listener.accept(ov);
      try {
        await getOverlappedResult(ov, { wait: true });
      } catch (err) {
        if (err instanceof OverlappedError && err.code === 'OVL_ERR_ABORTED') return;
        this.#logger?.warn({ err }, 'accept failed');
        continue;
      }
      const socket = ov.socket as TcpSocket;
      if (this.#stopping !== null) {
        socket.destroy();
        return;
      }
      if (this.#busy >= this.maxConnections) {
        this.refused++;
        countLimitClose('max_connections');
        this.#logger?.warn(
          { peer: describe(socket.remoteAddress), maxConnections: this.maxConnections },
          'connection refused: at maxConnections',
        );
        socket.destroy();
        continue;
      }
      this.#hand(socket);
    }
  }

  #thread(): Thread {
    const idle = this.#idle.pop();
    if (idle !== undefined) return idle;
    const worker = new Worker(WORKER_URL, {
      workerData: { handler: this.#handler, options: this.#handlerOptions },
    });
    let exited: () => void = () => {};
    const thread: Thread = {
      worker,
      served: null,
      exited: new Promise<void>((resolve) => {
        exited = resolve;
      }),
    };
    worker.on('message', (message: { kind: string; error?: string }) => {
      if (message.kind === 'error') {
        if (thread.served?.timedOut) return;
        this.#logger?.info({ peer: thread.served?.peer, err: message.error }, 'connection error');
      } else if (message.kind === 'done') {
        this.#finished(thread);
      }
    });
    worker.on('error', (err) => {
      this.#logger?.error({ err }, 'a connection thread failed');
    });
    worker.on('exit', () => {
      this.#threads.delete(thread);
      const i = this.#idle.indexOf(thread);
      if (i >= 0) this.#idle.splice(i, 1);
      if (thread.served !== null) this.#finished(thread);
      exited();
    });
    this.#threads.add(thread);
    this.threadsStarted++;
    return thread;
  }

  #hand(socket: TcpSocket): void {
    const peer = describe(socket.remoteAddress);
    const thread = this.#thread();
    this.#busy++;
    if (this.#io !== undefined) {
      const fd = socket.detach();
      const progress = new SharedArrayBuffer(Progress.BYTES);
      thread.served = {
        ...servedFields(thread, peer),
        fd,
        progress: new BigInt64Array(progress),
      };
      thread.worker.postMessage({ kind: 'descriptor', fd, peer, progress });
    } else {
      const shared = new SharedArrayBuffer(ProxyCall.CONTROL_BYTES + PROXY_DATA_BYTES);
      const { port1, port2 } = new MessageChannel();
      const served: Served = {
        ...servedFields(thread, peer),
        socket,
        control: new Int32Array(shared, 0, ProxyCall.CONTROL_BYTES / 4),
        data: new Uint8Array(shared, ProxyCall.CONTROL_BYTES, PROXY_DATA_BYTES),
        io: new Overlapped(),
      };
      thread.served = served;
      port1.on('message', () => {
        void this.#proxy(served);
      });
      port1.unref();
      thread.worker.postMessage({ kind: 'proxied', shared, port: port2, peer }, [port2]);
    }
    const served = thread.served as Served;
    if (this.#idleTimeoutMs > 0 || this.#writeTimeoutMs > 0) {
      served.deadline = new Deadline(() => this.#expired(served));
      deadlines.arm(served.deadline, this.#idleTimeoutMs || this.#writeTimeoutMs);
    }
    this.#logger?.info({ peer, connections: this.#busy }, 'connected');
  }

  /** Makes the call a proxied thread asked for, then wakes it with the result. */
  async #proxy(served: Served): Promise<void> {
    const control = served.control as Int32Array;
    const data = served.data as Uint8Array;
    let result: number;
    try {
      result = await proxyCall(
        served,
        Atomics.load(control, ProxyCall.OP),
        Atomics.load(control, ProxyCall.LENGTH),
      );
    } catch (err) {
      result = encodeProxyError(data, err as Error);
    }
    Atomics.store(control, ProxyCall.LENGTH, result);
    Atomics.store(control, ProxyCall.STATE, ProxyCall.DONE);
    Atomics.notify(control, ProxyCall.STATE);
  }

  /** The handler returned (or its thread died): close the connection, free the thread. */
  #finished(thread: Thread): void {
    const served = thread.served;
    if (served === null) return;
    thread.served = null;
    if (served.deadline !== null) deadlines.disarm(served.deadline);
    this.#receivedBefore += received(served);
    this.#sentBefore += sent(served);
    if (served.socket !== null) {
      if (served.timedOut) served.socket.destroy();
      else served.socket.close();
    } else {
      this.#io?.close(served.fd, served.timedOut);
    }
    this.#busy--;
    this.#logger?.info({ peer: served.peer, connections: this.#busy }, 'disconnected');
    if (this.#threads.has(thread)) this.#idle.push(thread);
    const slotFree = this.#slotFree;
    this.#slotFree = null;
    slotFree?.();
    if (this.#busy === 0) this.#drained?.();
  }

  /**
   * Stops gracefully and loses nothing already received: no new
   * connections; each connection is served on until it is quiet (its thread
   * waited in `recv` for {@link STOP_QUIET_MS} with nothing arriving, so
   * every byte it sent was read and answered), and then that recv sees end
   * of stream, so the handler returns and the connection ends with a FIN. At
   * `deadlineMs` the connections still served are cut (their blocked calls
   * fail) and a thread still running a second later is terminated. Resolves
   * when every thread has exited. Idempotent.
   */
  stop(options: { deadlineMs?: number } = {}): Promise<void> {
    this.#stopping ??= this.#stop(options.deadlineMs ?? 5000);
    return this.#stopping;
  }

  /**
   * A connection's deadline came due. Its thread's calls say when they last
   * moved bytes, so the deadline is re-armed for what is left of the limit
   * when they did since it was armed, and acts only once a whole limit has
   * passed without progress: idle ends its recvs (end of stream, so the
   * handler returns and a FIN follows); write fails the send it is blocked
   * in and resets the connection.
   */
  #expired(served: Served): void {
    if (served.thread.served !== served || served.cut || this.#stopping !== null) return;
    const writing = isSending(served) && this.#writeTimeoutMs > 0;
    const limit = writing ? this.#writeTimeoutMs : this.#idleTimeoutMs;
    const quietFor = Date.now() - lastProgress(served);
    const deadline = served.deadline as Deadline;
    if (limit === 0 || quietFor < limit) {
      deadlines.arm(deadline, Math.max(1, limit === 0 ? this.#writeTimeoutMs : limit - quietFor));
      return;
    }
    const reason = writing ? 'write' : 'idle';
    const what = describeDeadline(reason, limit);
    this.#logger?.info(
      { peer: served.peer, reason, timeoutMs: limit },
      `deadline passed: closing the connection: ${what}`,
    );
    if (writing) {
      served.timedOut = true;
      if (served.socket !== null) {
        served.socket.failPendingWith(
          new OverlappedError('OVL_ERR_TIMEOUT', `write deadline: ${what}`),
        );
        served.socket.destroy();
      } else {
        this.#io?.shutdown(served.fd, 2);
      }
      return;
    }
    served.cut = true;
    if (served.socket === null) this.#io?.shutdown(served.fd, 0);
    else if (served.receiving) served.socket.cancel(served.io as Overlapped);
  }

  /**
   * While stopping: ends the recv of each connection that received nothing
   * since the previous look and waits in recv now. On node the look is taken
   * again after this turn's poll phase, since timers run before it and bytes
   * that arrived meanwhile are not delivered yet.
   */
  #cutQuiet(): void {
    for (const thread of this.#threads) {
      const served = thread.served;
      if (served === null || served.cut) continue;
      const now = received(served);
      if (now !== served.seen || !inRecv(served)) {
        served.seen = now;
        continue;
      }
      if (served.socket === null) {
        served.cut = true;
        // SHUT_RD: the blocked recv returns 0 at once, and every later one too.
        this.#io?.shutdown(served.fd, 0);
        continue;
      }
      setImmediate(() => {
        if (thread.served !== served || served.cut) return;
        if (received(served) !== now || !served.receiving) return;
        served.cut = true;
        served.socket?.cancel(served.io as Overlapped);
      });
    }
  }

  async #stop(deadlineMs: number): Promise<void> {
    this.listener.close();
    this.#slotFree?.();
    await this.#acceptor;
    const drained = new Promise<void>((resolve) => {
      this.#drained = resolve;
    });
    if (this.#busy === 0) this.#drained?.();
    for (const thread of this.#threads) {
      const served = thread.served;
      if (served === null) continue;
      served.ending = true;
      served.seen = received(served);
    }
    // One timer for every connection: a stop is rare, and a look costs a few loads each.
    const quiet = setInterval(() => this.#cutQuiet(), STOP_QUIET_MS);
    const deadline = (ms: number) =>
      new Promise<'deadline'>((resolve) => setTimeout(resolve, ms, 'deadline').unref());
    const outcome = await Promise.race([drained, deadline(deadlineMs)]);
    clearInterval(quiet);
    if (outcome === 'deadline') {
      this.#logger?.warn(
        { connections: this.#busy, deadlineMs },
        'stop deadline passed: cutting the remaining connections',
      );
      for (const thread of this.#threads) {
        const served = thread.served;
        if (served === null) continue;
        this.resetAtStop++;
        if (served.socket === null) this.#io?.shutdown(served.fd, 2);
        else served.socket.destroy();
      }
      if ((await Promise.race([drained, deadline(1000)])) === 'deadline') {
        for (const thread of this.#threads)
          if (thread.served !== null) void thread.worker.terminate();
      }
    }
    const threads = [...this.#threads];
    for (const thread of threads) void thread.worker.terminate();
    await Promise.all(threads.map((thread) => thread.exited));
  }
}

/** The fields every connection record starts with. */
function servedFields(thread: Thread, peer: string): Served {
  return {
    thread,
    peer,
    fd: -1,
    socket: null,
    control: null,
    data: null,
    io: null,
    receiving: false,
    ending: false,
    cut: false,
    progress: null,
    received: 0,
    sent: 0,
    seen: 0,
    sending: false,
    last: Date.now(),
    deadline: null,
    timedOut: false,
  };
}

function lastProgress(served: Served): number {
  const progress = served.progress;
  return progress === null ? served.last : Number(Atomics.load(progress, Progress.LAST));
}

function isSending(served: Served): boolean {
  const progress = served.progress;
  return progress === null ? served.sending : Atomics.load(progress, Progress.IN_SEND) === 1n;
}

function received(served: Served): number {
  const progress = served.progress;
  return progress === null ? served.received : Number(Atomics.load(progress, Progress.RECEIVED));
}

function sent(served: Served): number {
  const progress = served.progress;
  return progress === null ? served.sent : Number(Atomics.load(progress, Progress.SENT));
}

/** Whether `served`'s thread waits in recv now. */
function inRecv(served: Served): boolean {
  const progress = served.progress;
  return progress === null ? served.receiving : Atomics.load(progress, Progress.IN_RECV) === 1n;
}

/** One proxied call on the main thread's socket: recv into, or send from, the shared area. */
async function proxyCall(served: Served, op: number, length: number): Promise<number> {
  const socket = served.socket as TcpSocket;
  const data = served.data as Uint8Array;
  const ov = served.io as Overlapped;
  if (op === ProxyCall.RECV) {
    if (served.cut) return 0;
    served.receiving = true;
    socket.recv(data.subarray(0, length), ov);
    try {
      const n = await getOverlappedResult(ov, { wait: true });
      served.received += n;
      if (n > 0) served.last = Date.now();
      return n;
    } catch (err) {
      // A graceful stop cancels a quiet recv: the thread sees end of stream.
      if (served.cut && err instanceof OverlappedError && err.code === 'OVL_ERR_ABORTED') {
        return 0;
      }
      throw err;
    } finally {
      served.receiving = false;
    }
  }
  if (op === ProxyCall.SEND) {
    let done = 0;
    served.sending = true;
    try {
      while (done < length) {
        socket.send(done === 0 ? data.subarray(0, length) : data.subarray(done, length), ov);
        const n = await getOverlappedResult(ov, { wait: true });
        done += n;
        served.sent += n;
        served.last = Date.now();
      }
    } finally {
      served.sending = false;
    }
    return done;
  }
  socket.shutdown(ov);
  await getOverlappedResult(ov, { wait: true });
  return 0;
}
