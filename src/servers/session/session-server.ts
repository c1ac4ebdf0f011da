/**
 * The session framework of the seeds (`KIocp` + `KSocket`), on overlapped's
 * completion-port core, for every engine.
 *
 * One completion port per server. The listener and every session's socket
 * are associated with it (the session is the completion key: the per-handle
 * data), and one worker loop dequeues completions in batches and dispatches
 * them by key and by Overlapped (`KIocp::OnIoCompleted`): the session's recv
 * record to `onReceive`, its send record to the send queue and
 * `onSendCompleted`. Packets of your own posted with {@link SessionServer.post}
 * (PostQueuedCompletionStatus) come out of the same port, in order with the
 * I/O, to `onPost`.
 *
 * One loop, not a pool: handlers are synchronous JavaScript, so more loops
 * on one thread would only interleave them. Use `threads` (src/threads/) for
 * more cores.
 *
 * Threads: every handler runs on the thread that started the server, inside
 * its worker loop, one at a time; a session is never touched by two handlers
 * at once.
 */

import { type Completion, CompletionPort, type PortWorker } from '../../core/completion-port.js';
import { countLimitClose } from '../../core/counters.js';
import { checkTimeouts } from '../../core/deadlines.js';
import { check, OverlappedError } from '../../core/errors.js';
import { Overlapped } from '../../core/overlapped.js';
import type { ProxyErrorHandler } from '../../core/proxy/proxy-acceptor.js';
import {
  DEFAULT_BACKLOG,
  type ProxyListenOptions,
  pickProxyOptions,
  TcpListener,
} from '../../core/tcp-listener.js';
import type { TcpSocket } from '../../core/tcp-socket.js';
import type { Endpoint, Engine } from '../../engines/contract.js';
import { defaultEngine } from '../../engines/select.js';
import { type CloseReason, type QueuePolicy, Session, type SessionHost } from './session.js';
import { KeyRegistry } from './session-keys.js';

export type { CloseCode, CloseReason, QueuePolicy } from './session.js';
export { Session } from './session.js';

/** Defaults of {@link SessionServerOptions}; the README's limits table shows them. */
export const SESSION_DEFAULTS = {
  host: '127.0.0.1',
  maxSessions: 10_000,
  /**
   * 1 MiB of queued sends per session: several seconds of a chat or game
   * stream, so only a peer that has really stopped reading meets it; 10,000
   * sessions at the cap would hold 10 GiB, so lower it for big fan-outs.
   */
  maxQueuedBytes: 1024 * 1024,
  queuePolicy: 'disconnect' as QueuePolicy,
  /**
   * 64 KiB: more than one gathered send usually moves at once (the kernel's
   * initial send buffer on Linux is 16 KiB and grows to a few hundred), so a
   * producer that pauses here still leaves the socket enough to send while
   * it waits, and a paused producer holds at most this much per session.
   */
  highWaterMark: 64 * 1024,
  /**
   * 16 KiB: a quarter of the high-water mark, so `onWritable` does not flap
   * around one mark, and the queue still holds a send's worth when the
   * producer resumes.
   */
  lowWaterMark: 16 * 1024,
  /** Accepts kept posted, so a burst of clients is taken without a round trip per client. */
  pendingAccepts: 16,
  /** `stop()`'s default deadline: how long sessions get to drain before they are reset. */
  stopDeadlineMs: 10_000,
  /** Deadlines are the application's choice (a game lobby and a chat relay differ): off. */
  idleTimeoutMs: 0,
  writeTimeoutMs: 0,
} as const;

/**
 * The application's side. Every hook is optional and runs on the server's
 * thread, one at a time, inside the worker loop. A hook that throws resets
 * its session (`onClose` with `handler-failed`) and is reported to
 * `onError`; the server carries on.
 */
export interface SessionHandlers<D = unknown> {
  /**
   * A client connected (KSocket::OnAcceptConnection): the first hook of a
   * session, before any of its other hooks. `session.send` works from here.
   */
  onAccept?(session: Session<D>): void;
  /**
   * Bytes arrived (OnReceiveCompleted). `bytes` is a view of a pool buffer,
   * valid only during the call: copy what you keep. The next recv is posted
   * when the hook returns (under policy `'backpressure'`, once the session
   * is writable again), so a session's receives never overlap.
   * Not called after `close()`/`destroy()` or the peer's end.
   */
  onReceive?(session: Session<D>, bytes: Buffer): void;
  /**
   * A socket send completed (OnSendCompleted): `bytes` is how many it moved
   * (one call can cover many `send()` calls that were gathered). The buffers
   * are the framework's copies and already let go of.
   */
  onSendCompleted?(session: Session<D>, bytes: number): void;
  /**
   * Policy `'backpressure'`: the session's queued bytes fell to the
   * low-water mark after `session.writable` turned false; send again.
   */
  onWritable?(session: Session<D>): void;
  /**
   * The session ended (OnCloseSocket): exactly once, after every other hook
   * of the session and after its last completion; its key is deleted just
   * before, so `server.get(session.key)` is undefined here.
   */
  onClose?(session: Session<D>, reason: CloseReason): void;
  /**
   * A packet from {@link SessionServer.post} was dequeued: `key` and `value`
   * are exactly what was posted (not copied: nothing crosses a thread).
   */
  onPost?(key: unknown, value: unknown): void;
}

export interface SessionServerOptions<D = unknown> extends ProxyListenOptions {
  /** With `proxyProtocol`: told of each connection reset for its PROXY header (see TcpListener.onProxyError). */
  onProxyError?: ProxyErrorHandler;
  /** Default: this thread's engine (`defaultEngine()`). */
  engine?: Engine;
  host?: string;
  /** TCP port; 0 (the default) picks a free one (read it back from `address`). */
  port?: number;
  backlog?: number;
  handlers?: SessionHandlers<D>;
  /** Sessions at once; clients past it are reset at once. Default 10,000. */
  maxSessions?: number;
  /** Hard cap on one session's queued send bytes. Default 1 MiB. */
  maxQueuedBytes?: number;
  /** Default `'disconnect'` (see {@link QueuePolicy}). */
  queuePolicy?: QueuePolicy;
  /** Policy `'backpressure'`: `writable` turns false above this. Default 64 KiB. */
  highWaterMark?: number;
  /** Policy `'backpressure'`: `onWritable` fires at or below this. Default 16 KiB. */
  lowWaterMark?: number;
  /** `node` engine in a `cluster` worker: listen through the primary's shared socket. */
  sharedListener?: boolean;
  /** TCP_NODELAY on every session (default true: relayed messages leave at once). */
  noDelay?: boolean;
  /**
   * Closes a session (FIN) that moved no byte in either direction for this
   * many ms; `onClose` gets `timeout`. 0 or absent: off.
   */
  idleTimeoutMs?: number;
  /**
   * Resets a session whose peer took no byte of a send for this many ms;
   * `onClose` gets `timeout`. 0 or absent: off.
   */
  writeTimeoutMs?: number;
  /** Errors no session can be told of (a hook that threw, an accept that failed). Default: stderr. */
  onError?(error: Error, session: Session<D> | null): void;
}

/** Counters: plain increments, read when you like. */
export interface SessionStats {
  accepted: number;
  /** Clients reset at once because `maxSessions` were connected. */
  rejected: number;
  closed: number;
  /** Socket sends posted: each gathers every `send()` queued before it. */
  sends: number;
  /** Socket sends posted to finish a partial send (counted in `sends` too). */
  partialSends: number;
  bytesSent: number;
  receives: number;
  bytesReceived: number;
  /** Sends refused under policy `'drop'` (broadcast included). */
  dropped: number;
  /** Sessions reset because their queue passed the cap. */
  cutOff: number;
  /** Sessions a deadline ended (`idleTimeoutMs`, `writeTimeoutMs`). */
  timedOut: number;
}

export interface StopOptions {
  /** How long sessions get to drain before they are reset. Default 10 s. */
  deadlineMs?: number;
}

/** What a stop left behind: sessions that ended gracefully and those reset at the deadline. */
export interface StopReport {
  drained: number;
  reset: number;
}

const LISTENER = Symbol('listener');
const ENDED = Symbol('session-ended');

/** A user packet on the port: what {@link SessionServer.post} was given. */
class PostedPacket {
  constructor(
    readonly key: unknown,
    readonly value: unknown,
  ) {}
}

type PortKey = Session | PostedPacket | typeof LISTENER | typeof ENDED;

function positive(name: string, value: number): number {
  check(
    Number.isSafeInteger(value) && value >= 1,
    'OVL_ERR_INVALID_ARGUMENT',
    `${name} must be a whole number >= 1, got ${String(value)}`,
  );
  return value;
}

/** Checks the options; returns maxQueuedBytes. */
function validate(options: SessionServerOptions<never>): number {
  const policy = options.queuePolicy ?? SESSION_DEFAULTS.queuePolicy;
  check(
    policy === 'disconnect' || policy === 'drop' || policy === 'backpressure',
    'OVL_ERR_INVALID_ARGUMENT',
    `queuePolicy must be 'disconnect', 'drop' or 'backpressure', got ${String(policy)}`,
  );
  const max = positive('maxQueuedBytes', options.maxQueuedBytes ?? SESSION_DEFAULTS.maxQueuedBytes);
  const high = positive('highWaterMark', options.highWaterMark ?? SESSION_DEFAULTS.highWaterMark);
  const low = options.lowWaterMark ?? SESSION_DEFAULTS.lowWaterMark;
  check(
    Number.isSafeInteger(low) && low >= 0 && low < high && high <= max,
    'OVL_ERR_INVALID_ARGUMENT',
    `the marks must hold 0 <= lowWaterMark < highWaterMark <= maxQueuedBytes, got ${low}, ${high}, ${max}`,
  );
  positive('maxSessions', options.maxSessions ?? SESSION_DEFAULTS.maxSessions);
  checkTimeouts(options);
  return max;
}

/** A TCP server of sessions on a completion port. */
export class SessionServer<D = unknown> implements SessionHost, Iterable<Session<D>> {
  readonly engine: Engine;
  readonly policy: QueuePolicy;
  readonly maxQueuedBytes: number;
  readonly highWaterMark: number;
  readonly lowWaterMark: number;
  readonly maxSessions: number;
  readonly idleTimeoutMs: number;
  readonly writeTimeoutMs: number;
  readonly stats: SessionStats = {
    accepted: 0,
    rejected: 0,
    closed: 0,
    sends: 0,
    partialSends: 0,
    bytesSent: 0,
    receives: 0,
    bytesReceived: 0,
    dropped: 0,
    cutOff: 0,
    timedOut: 0,
  };
  /** Null for a server that only adopts sockets (a worker thread's: src/threads/). */
  readonly #listener: TcpListener | null;
  readonly #port: CompletionPort<PortKey, unknown>;
  readonly #handlers: SessionHandlers<D>;
  readonly #onError: (error: Error, session: Session<D> | null) => void;
  readonly #sessions = new KeyRegistry<Session<D>>();
  #loop: Promise<void> = Promise.resolve();
  #stopping: Promise<StopReport> | null = null;
  #reset = 0;
  #whenEmpty: (() => void) | null = null;
  #acceptBackoff: ReturnType<typeof setTimeout> | null = null;
  #acceptErrorSaid = false;

  private constructor(
    listener: TcpListener | null,
    engine: Engine,
    options: SessionServerOptions<D>,
  ) {
    this.#listener = listener;
    this.engine = engine;
    this.#handlers = options.handlers ?? {};
    this.#onError =
      options.onError ??
      ((error, session) =>
        process.stderr.write(
          `overlapped sessions: ${session === null ? '' : `session ${session.key}: `}${error.stack ?? error.message}\n`,
        ));
    this.policy = options.queuePolicy ?? SESSION_DEFAULTS.queuePolicy;
    this.maxQueuedBytes = options.maxQueuedBytes ?? SESSION_DEFAULTS.maxQueuedBytes;
    this.highWaterMark = options.highWaterMark ?? SESSION_DEFAULTS.highWaterMark;
    this.lowWaterMark = options.lowWaterMark ?? SESSION_DEFAULTS.lowWaterMark;
    this.maxSessions = options.maxSessions ?? SESSION_DEFAULTS.maxSessions;
    this.idleTimeoutMs = options.idleTimeoutMs ?? SESSION_DEFAULTS.idleTimeoutMs;
    this.writeTimeoutMs = options.writeTimeoutMs ?? SESSION_DEFAULTS.writeTimeoutMs;
    this.#port = new CompletionPort<PortKey, unknown>({ concurrency: 1 });
  }

  /** Listens and starts the worker loop. Rejects with an OsError (EADDRINUSE, …). */
  static async start<D = unknown>(
    options: SessionServerOptions<D> = {},
  ): Promise<SessionServer<D>> {
    const max = validate(options);
    const engine = options.engine ?? defaultEngine().engine;
    const listener = await TcpListener.listen({
      engine,
      host: options.host ?? SESSION_DEFAULTS.host,
      port: options.port ?? 0,
      backlog: options.backlog ?? DEFAULT_BACKLOG,
      shared: options.sharedListener === true,
      noDelay: options.noDelay ?? true,
      // The session queue is the cap that counts; one gathered send may carry all of it.
      maxPendingSendBytes: max,
      ...pickProxyOptions(options),
    });
    if (options.onProxyError !== undefined) listener.onProxyError = options.onProxyError;
    const server = new SessionServer<D>(listener, engine, options);
    server.#port.associate(listener, LISTENER);
    for (let i = 0; i < SESSION_DEFAULTS.pendingAccepts; i++) listener.accept(new Overlapped());
    server.#loop = server.#work(server.#port.worker());
    return server;
  }

  /**
   * A server without a listener: its sessions come from {@link SessionServer.adopt}
   * (a worker thread of src/threads/, fed by an acceptor thread). `host`,
   * `port` and `backlog` are not used.
   */
  static withoutListener<D = unknown>(options: SessionServerOptions<D> = {}): SessionServer<D> {
    validate(options);
    const server = new SessionServer<D>(null, options.engine ?? defaultEngine().engine, options);
    server.#loop = server.#work(server.#port.worker());
    return server;
  }

  /**
   * Makes a session of a connected socket this thread's engine owns (one
   * adopted from an acceptor thread): it runs exactly as an accepted one,
   * `onAccept` first. A server past `maxSessions`, or stopping, resets it
   * instead. The socket must not be associated with a port yet.
   */
  adopt(socket: TcpSocket): void {
    this.#admit(socket);
  }

  /** The bound address and port. */
  get address(): Endpoint {
    check(this.#listener !== null, 'OVL_ERR_INVALID_ARGUMENT', 'this server has no listener');
    return this.#listener.address;
  }

  /** Sessions connected (open or draining, until their `onClose`). */
  get size(): number {
    return this.#sessions.size;
  }

  /** True once `close()`, `destroy()` or `stop()` was called. */
  get stopping(): boolean {
    return this.#stopping !== null;
  }

  /** The session under `key`, or undefined once it ended: a stale key never finds a newer session. */
  get(key: number): Session<D> | undefined {
    return this.#sessions.get(key);
  }

  /** Every connected session (open or draining). Closing sessions while iterating is safe. */
  [Symbol.iterator](): Iterator<Session<D>> {
    return this.#sessions[Symbol.iterator]();
  }

  /**
   * Sends `bytes` to every open session that `filter` accepts. The bytes are
   * copied once and the one copy is queued on every session (nobody may
   * change it, and nobody does). Returns how many sessions took it; under
   * policy `'drop'` the refused ones are counted in `stats.dropped`, under
   * `'disconnect'` they are reset.
   */
  broadcast(bytes: Uint8Array, filter?: (session: Session<D>) => boolean): number {
    const shared = Buffer.from(bytes);
    let taken = 0;
    for (const session of this.#sessions) {
      if (!session.open || (filter !== undefined && !filter(session))) continue;
      try {
        if (session.enqueue(shared, false)) taken++;
      } catch (err) {
        if (err instanceof OverlappedError && err.code === 'OVL_ERR_SESSION_QUEUE_FULL') continue;

        throw err;
      }
    }
    return taken;
  }

  /**
   * PostQueuedCompletionStatus: queues a packet that the worker loop hands
   * to `onPost(key, value)`, after the completions already queued. Throws
   * `OVL_ERR_PORT_CLOSED` once the server has stopped.
   */
  post(key: unknown, value?: unknown): void {
    this.#port.post(new PostedPacket(key, value));
  }

  /** Graceful: stop accepting and let every session drain, for at most the default deadline. Idempotent. */
  close(): Promise<StopReport> {
    return this.stop();
  }

  /** Abortive: every session is reset now. Idempotent; after `close()` it cuts the drain short. */
  destroy(): Promise<StopReport> {
    const stopping = this.stop();
    this.#resetAll();
    return stopping;
  }

  /**
   * Stops accepting, closes every session gracefully (queued sends go out),
   * and resets those still draining when `deadlineMs` passes. Resolves once
   * every session's `onClose` ran and the worker loop ended. Idempotent: a
   * second call returns the first call's promise.
   */
  stop(options: StopOptions = {}): Promise<StopReport> {
    if (this.#stopping !== null) return this.#stopping;
    const deadlineMs = options.deadlineMs ?? SESSION_DEFAULTS.stopDeadlineMs;
    check(
      typeof deadlineMs === 'number' && deadlineMs >= 0,
      'OVL_ERR_INVALID_ARGUMENT',
      `deadlineMs must be a number >= 0, got ${String(deadlineMs)}`,
    );
    this.#stopping = this.#stop(deadlineMs);
    return this.#stopping;
  }

  async #stop(deadlineMs: number): Promise<StopReport> {
    if (this.#acceptBackoff !== null) clearTimeout(this.#acceptBackoff);
    this.#listener?.close();
    const before = this.stats.closed;
    const empty = new Promise<void>((resolve) => {
      this.#whenEmpty = resolve;
    });
    for (const session of this.#sessions) session.close();
    this.#checkEmpty();
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (Number.isFinite(deadlineMs)) {
      timer = setTimeout(() => this.#resetAll(), deadlineMs);
    }
    await empty;
    if (timer !== undefined) clearTimeout(timer);
    this.#port.close();
    await this.#loop;
    const ended = this.stats.closed - before;
    return { drained: ended - this.#reset, reset: this.#reset };
  }

  #resetAll(): void {
    // Every session still here has not ended: it is reset now.
    for (const session of this.#sessions) {
      this.#reset++;
      session.destroy();
    }
  }

  #checkEmpty(): void {
    if (this.#whenEmpty !== null && this.#sessions.size === 0) {
      const resolve = this.#whenEmpty;
      this.#whenEmpty = null;
      resolve();
    }
  }

  async #work(worker: PortWorker<PortKey, unknown>): Promise<void> {
    for (;;) {
      let batch: Completion<PortKey, unknown>[];
      try {
        batch = await worker.dequeueMany({ max: 64 });
      } catch (err) {
        if (err instanceof OverlappedError && err.code === 'OVL_ERR_PORT_CLOSED') return;
        throw err;
      }
      for (let i = 0; i < batch.length; i++)
        this.#dispatch(batch[i] as Completion<PortKey, unknown>);
    }
  }

  /** KIocp::OnIoCompleted: by key, then by Overlapped. */
  #dispatch(c: Completion<PortKey, unknown>): void {
    const key = c.key;
    if (key instanceof Session) {
      const session = key as Session<D>;
      if (c.overlapped === session.recvOv) session.recvDone(session.recvOv);
      else session.sendDone(session.sendOv);
    } else if (key === LISTENER) {
      this.#accepted(c.overlapped as Overlapped);
    } else if (key === ENDED) {
      this.#end(c.overlapped?.data as Session<D>);
    } else if (key instanceof PostedPacket) {
      const onPost = this.#handlers.onPost;
      if (onPost === undefined) return;
      try {
        onPost.call(this.#handlers, key.key, key.value);
      } catch (err) {
        this.#onError(err as Error, null);
      }
    }
  }

  #accepted(ov: Overlapped): void {
    const socket = ov.socket;
    if (ov.error !== null || socket === null) {
      if (this.#stopping !== null) return;
      // EMFILE and kin: say so once, back off, try again (the client waits in the backlog).
      if (!this.#acceptErrorSaid) {
        this.#acceptErrorSaid = true;
        this.#onError(ov.error ?? new Error('accept completed without a socket'), null);
      }
      this.#acceptBackoff = setTimeout(() => {
        this.#acceptBackoff = null;
        if (this.#stopping === null) this.#listener?.accept(ov);
      }, 100);
      return;
    }
    this.#acceptErrorSaid = false;
    if (this.#stopping === null) this.#listener?.accept(ov);
    this.#admit(socket);
  }

  #admit(socket: TcpSocket): void {
    if (this.#stopping !== null || this.#sessions.size >= this.maxSessions) {
      this.stats.rejected++;
      countLimitClose('max_connections');
      socket.destroy();
      return;
    }
    const session = new Session<D>(0, socket, this);
    (session as { key: number }).key = this.#sessions.add(session);
    this.stats.accepted++;
    this.#port.associate(socket, session as Session);
    const onAccept = this.#handlers.onAccept;
    if (onAccept !== undefined) {
      try {
        onAccept.call(this.#handlers, session);
      } catch (err) {
        this.#failed(session, err as Error);
      }
    }
    session.start();
  }

  #failed(session: Session<D>, error: Error): void {
    this.#onError(error, session);
    session.fail('handler-failed', error);
  }

  #end(session: Session<D>): void {
    this.#sessions.delete(session.key);
    this.stats.closed++;
    const reason = session.closeReason ?? { code: 'closed', error: null };
    if (reason.code === 'send-queue-full') {
      this.stats.cutOff++;
      countLimitClose('send_queue');
    } else if (reason.code === 'idle-timeout' || reason.code === 'write-timeout') {
      this.stats.timedOut++;
    }
    const onClose = this.#handlers.onClose;
    if (onClose !== undefined) {
      try {
        onClose.call(this.#handlers, session, reason);
      } catch (err) {
        this.#onError(err as Error, session);
      }
    }
    this.#checkEmpty();
  }

  /** @internal SessionHost */
  countDrop(): void {
    this.stats.dropped++;
  }

  /** @internal SessionHost */
  countSend(partial: boolean): void {
    this.stats.sends++;
    if (partial) this.stats.partialSends++;
  }

  /** @internal SessionHost */
  sendCompleted(session: Session, bytes: number): void {
    this.stats.bytesSent += bytes;
    const hook = this.#handlers.onSendCompleted;
    if (hook === undefined) return;
    try {
      hook.call(this.#handlers, session as Session<D>, bytes);
    } catch (err) {
      this.#failed(session as Session<D>, err as Error);
    }
  }

  /** @internal SessionHost */
  received(session: Session, bytes: Buffer): void {
    this.stats.receives++;
    this.stats.bytesReceived += bytes.byteLength;
    const hook = this.#handlers.onReceive;
    if (hook === undefined) return;
    try {
      hook.call(this.#handlers, session as Session<D>, bytes);
    } catch (err) {
      this.#failed(session as Session<D>, err as Error);
    }
  }

  /** @internal SessionHost */
  writable(session: Session): void {
    const hook = this.#handlers.onWritable;
    if (hook === undefined) return;
    try {
      hook.call(this.#handlers, session as Session<D>);
    } catch (err) {
      this.#failed(session as Session<D>, err as Error);
    }
  }

  /**
   * @internal SessionHost. `onClose` goes through the port, so it runs after
   * the completion being handled now, never inside another hook of the session.
   */
  ended(session: Session): void {
    this.#port.post(ENDED, 0, new Overlapped<Session>(session) as Overlapped<unknown>);
  }
}
