/**
 * The seeds' named-pipe server with completion routines, on overlapped's core.
 *
 * One loop waits alertably on the connect event
 * (`WaitForSingleObjectEx(hConnectEvent, INFINITE, TRUE)`):
 * - index 0: the overlapped connect (an accept on the pipe listener whose
 *   Overlapped carries the event) completed: the client gets its own
 *   instance record, a READY frame, and the start of its routine chain; the
 *   next connect is posted at once for the next client;
 * - `'io-completion'`: the wait ran queued read/write routines; loop again.
 *
 * Each instance's chain is the seeds' pair of routines over one Overlapped:
 * the read routine hands the request to the handler and posts the write of
 * its reply; the write routine posts the next read. The chain ends, and the
 * instance is closed and freed, when the client disconnects or an operation
 * fails (DisconnectAndClose).
 *
 * Instances are unlimited by default. With `instances: N`, a client arriving
 * while N are busy is still accepted, answered `OVL_ERR_PIPE_BUSY` and
 * closed (at once, not left waiting in the backlog), as CreateFile fails with
 * ERROR_PIPE_BUSY.
 */
import type { Logger } from 'pino';
import { queueUserApc } from '../../core/apc.js';
import { Deadline, deadlines, RESOLUTION_MS } from '../../core/deadlines.js';
import { check, OverlappedError, type OverlappedErrorCode } from '../../core/errors.js';
import { ManualResetEvent } from '../../core/events.js';
import { Overlapped } from '../../core/overlapped.js';
import {
  DEFAULT_MAX_MESSAGE,
  type PipeConnection,
  type PipeMode,
  pipeSettings,
  READY,
} from '../../core/pipe-connection.js';
import { DEFAULT_PIPE_FILE_MODE, PipeListener } from '../../core/pipe-listener.js';
import { DEFAULT_PIPE_NAME, resolvePipeName } from '../../core/pipe-name.js';
import { getOverlappedResult, INFINITE, waitForSingleObject } from '../../core/waits.js';
import type { EngineOption } from '../../engines/contract.js';
import { AcceptStorm, RateLimitedWarning } from '../rate-limited-log.js';

export const PIPE_DEFAULTS = {
  name: DEFAULT_PIPE_NAME,
  mode: 'message' as PipeMode,
  maxMessage: DEFAULT_MAX_MESSAGE,
  instances: Number.POSITIVE_INFINITY,
  fileMode: DEFAULT_PIPE_FILE_MODE,
  /** Read buffer per instance; larger requests arrive in pieces (OVL_ERR_MORE_DATA). */
  bufferSize: 16 * 1024,
  stopDeadlineMs: 5000,
  /** Close an instance that received nothing for 2 minutes. */
  idleTimeoutMs: 120_000,
  /** A request that started must arrive, or bring a read buffer's worth, within 10 s (to 20 s). */
  readTimeoutMs: 10_000,
  /** A reply the client takes no byte of for 10 s resets the instance. */
  writeTimeoutMs: 10_000,
  /** The seeds' reply. */
  defaultAnswer: 'Default answer from server',
} as const;

/** What a handler may answer: bytes, a string (sent as UTF-8), or nothing (an empty message). */
export type PipeReply = Uint8Array | string | undefined | null;

/** The per-instance facts a handler may look at. */
export interface PipeClientInfo {
  /** Instance number, from 1, in connect order. */
  readonly id: number;
  /** Requests this instance answered before this one. */
  readonly requests: number;
}

/**
 * Answers one request. `request` is valid until the reply has been written
 * (it is the instance's buffer): copy it to keep it. May return a promise;
 * the instance reads no further request until it settles. A handler that
 * throws or rejects is logged; the client gets an `OVL_ERR_HANDLER_FAILED`
 * control frame instead of a reply and the connection stays open (byte mode:
 * the connection is closed).
 */
export type PipeHandler = (
  request: Buffer,
  client: PipeClientInfo,
) => PipeReply | Promise<PipeReply>;

export interface PipeServerOptions {
  /** `'node'`, `'uring'` or an Engine; default: this thread's engine. */
  engine?: EngineOption;
  /** A bare name (`mynamedpipe`) or a full path; default `mynamedpipe`. */
  name?: string;
  /** `message` (default) or `byte`. */
  mode?: PipeMode;
  /** Largest request, in bytes (message mode); default 64 KiB, at most 2^31 - 1. */
  maxMessage?: number;
  /** Instances served at once; default unlimited. */
  instances?: number;
  /** Socket file permissions; default 0o600 (owner only). */
  fileMode?: number;
  /** Read buffer per instance; default 16 KiB. */
  bufferSize?: number;
  backlog?: number;
  /** Default: answer every request `Default answer from server`. */
  handler?: PipeHandler;
  /** Info line per connect and disconnect; warnings for refused clients and failures. */
  logger?: Logger;
  /**
   * Closes an instance that received no byte for this many ms while waiting
   * for a request (default 120000; 0: off).
   */
  idleTimeoutMs?: number;
  /**
   * A request whose first bytes arrived must arrive whole, or bring at
   * least one read buffer (16 KiB) more, within one to two of these periods
   * (default 10000 ms; 0: off): a client that trickles a frame (a
   * slowloris) is closed.
   */
  readTimeoutMs?: number;
  /** Resets an instance whose client took no byte of a reply for this many ms (default 10000; 0: off). */
  writeTimeoutMs?: number;
}

/** The instance deadlines, in ms; 0 is off. */
interface PipeTimeouts {
  readonly idle: number;
  readonly read: number;
  readonly write: number;
}

/** Per-I/O data of an instance's one Overlapped (the seeds' PIPEINST). */
interface InstanceIo {
  readonly instance: Instance;
  readonly buffer: Buffer;
  /** Pieces of a request larger than the buffer (OVL_ERR_MORE_DATA), in order. */
  parts: Buffer[];
}

interface Instance extends PipeClientInfo {
  readonly conn: PipeConnection;
  readonly io: Overlapped<InstanceIo>;
  requests: number;
  /** A request was read and its reply is not written yet. */
  busy: boolean;
  /** The instance's deadline, when any limit is on or the server is stopping. */
  deadline: Deadline | null;
  /** `bytesReceived` at the last deadline check, and when it last changed (or a read was posted). */
  lastReceived: number;
  lastProgress: number;
  /** A deadline check found this request partly received (the next such check closes it). */
  partialSeen: boolean;
}

function codeOf(error: Error | null): string | undefined {
  return error instanceof OverlappedError ? error.code : (error as { code?: string } | null)?.code;
}

function toBytes(reply: PipeReply): Uint8Array {
  if (reply === undefined || reply === null) return EMPTY;
  if (typeof reply === 'string') return Buffer.from(reply, 'utf8');
  if (ArrayBuffer.isView(reply)) return reply;
  throw new TypeError(
    `a pipe handler must return a Uint8Array, a string or nothing, got ${typeof reply}`,
  );
}

const EMPTY = new Uint8Array(0);
/**
 * While stopping, an instance waiting for a request with nothing received
 * for this long is quiet, and is closed.
 */
const QUIET_MS = 100;
/** `WaitForSingleObjectEx(hConnectEvent, INFINITE, TRUE)`'s options, made once. */
const ALERTABLE_INFINITE = { timeoutMs: INFINITE, alertable: true } as const;

const defaultHandler: PipeHandler = () => PIPE_DEFAULTS.defaultAnswer;

/** The pipe server. Start it with {@link PipeServer.start}. */
export class PipeServer {
  readonly listener: PipeListener;
  readonly mode: PipeMode;
  readonly maxMessage: number;
  readonly instanceLimit: number;
  readonly #bufferSize: number;
  readonly #handler: PipeHandler;
  readonly #logger: Logger | undefined;
  readonly #timeouts: PipeTimeouts;
  /** How often a reading instance's deadline is checked: the read limit, else the idle one. */
  readonly #checkMs: number;
  readonly #instances = new Set<Instance>();
  readonly #connectEvent = new ManualResetEvent(false);
  readonly #connect = new Overlapped();
  #nextId = 1;
  #loop: Promise<void> = Promise.resolve();
  #finished = false;
  #stopping: Promise<void> | null = null;
  /** Set as stop() begins (#stopping is assigned only after #stop's first part ran). */
  #stopRequested = false;
  #drained: (() => void) | null = null;
  /** Clients refused because every instance was busy, since start. */
  refused = 0;
  /** Requests answered, since start. */
  transactions = 0;
  /** Instances still busy when the stop deadline passed, and so reset. */
  resetAtStop = 0;

  private constructor(
    listener: PipeListener,
    settings: { mode: PipeMode; maxMessage: number; instances: number; bufferSize: number },
    handler: PipeHandler,
    logger: Logger | undefined,
    timeouts: PipeTimeouts,
  ) {
    this.#timeouts = timeouts;
    this.#checkMs =
      timeouts.read > 0 && settings.mode === 'message'
        ? Math.min(timeouts.read, timeouts.idle > 0 ? timeouts.idle : timeouts.read)
        : timeouts.idle;
    this.listener = listener;
    this.mode = settings.mode;
    this.maxMessage = settings.maxMessage;
    this.instanceLimit = settings.instances;
    this.#bufferSize = settings.bufferSize;
    this.#handler = handler;
    this.#logger = logger;
    this.#connect.event = this.#connectEvent;
    this.#storm = new AcceptStorm(logger);
    this.#busyRefusals = new RateLimitedWarning(logger, 'clients refused: every instance busy');
    this.#badRequests = new RateLimitedWarning(logger, 'clients refused for a bad request');
    listener.onAcceptError = (error, retryMs) => this.#storm.failed(error, retryMs);
  }

  readonly #storm: AcceptStorm;
  readonly #busyRefusals: RateLimitedWarning;
  readonly #badRequests: RateLimitedWarning;

  /**
   * Resolves the name, listens (replacing a stale socket file, refusing a
   * live server with `OVL_ERR_PIPE_NAME_IN_USE`), posts the first connect
   * and enters the alertable loop.
   */
  static async start(options: PipeServerOptions): Promise<PipeServer> {
    const { mode, maxMessage } = pipeSettings(options);
    const instances = options.instances ?? PIPE_DEFAULTS.instances;
    const bufferSize = options.bufferSize ?? Math.min(PIPE_DEFAULTS.bufferSize, maxMessage);
    check(
      instances === Number.POSITIVE_INFINITY || (Number.isSafeInteger(instances) && instances >= 1),
      'OVL_ERR_INVALID_ARGUMENT',
      `instances must be a whole number >= 1 (or Infinity: unlimited), got ${String(instances)}`,
    );
    check(
      Number.isSafeInteger(bufferSize) && bufferSize >= 1,
      'OVL_ERR_INVALID_ARGUMENT',
      `bufferSize must be a whole number >= 1, got ${String(bufferSize)}`,
    );
    const timeouts: PipeTimeouts = {
      idle: options.idleTimeoutMs ?? PIPE_DEFAULTS.idleTimeoutMs,
      read: options.readTimeoutMs ?? PIPE_DEFAULTS.readTimeoutMs,
      write: options.writeTimeoutMs ?? PIPE_DEFAULTS.writeTimeoutMs,
    };
    for (const [name, value] of Object.entries(timeouts)) {
      check(
        Number.isSafeInteger(value) && value >= 0,
        'OVL_ERR_INVALID_ARGUMENT',
        `${name}TimeoutMs must be a whole number of ms >= 0 (0: off), got ${String(value)}`,
      );
    }
    const handler = options.handler ?? defaultHandler;
    check(typeof handler === 'function', 'OVL_ERR_INVALID_ARGUMENT', 'handler must be a function');
    const path = resolvePipeName(options.name ?? PIPE_DEFAULTS.name);
    const listener = await PipeListener.listen({
      engine: options.engine,
      path,
      mode,
      maxMessage,
      ...(options.fileMode === undefined ? {} : { fileMode: options.fileMode }),
      ...(options.backlog === undefined ? {} : { backlog: options.backlog }),
    });
    const server = new PipeServer(
      listener,
      { mode, maxMessage, instances, bufferSize },
      handler,
      options.logger,
      timeouts,
    );
    server.#loop = server.#run();
    return server;
  }

  /** The resolved pipe path clients connect to. */
  get path(): string {
    return this.listener.path;
  }

  /** Instances serving a client now. */
  get instances(): number {
    return this.#instances.size;
  }

  /**
   * Stops gracefully and loses no request already sent: no new clients (the
   * socket file is removed at once); every instance is still served, and is
   * closed once it is quiet (waiting for a request, with nothing received
   * for {@link QUIET_MS}), so each request a client sent before the stop
   * gets its reply. Instances still busy at `deadlineMs` are reset.
   * Resolves when all are closed and the loop has returned. Idempotent.
   */
  stop(options: { deadlineMs?: number } = {}): Promise<void> {
    this.#stopRequested = true;
    this.#stopping ??= this.#stop(options.deadlineMs ?? PIPE_DEFAULTS.stopDeadlineMs);
    return this.#stopping;
  }

  async #stop(deadlineMs: number): Promise<void> {
    this.listener.close();
    const drained = new Promise<void>((resolve) => {
      this.#drained = resolve;
    });
    if (this.#instances.size === 0) this.#drained?.();
    for (const inst of this.#instances) {
      // Waiting for a request: watch it go quiet. Busy ones are watched once they read again.
      if (inst.io.pending && inst.io.operation === 'read') this.#watchQuiet(inst);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(resolve, deadlineMs, 'deadline');
    });
    if ((await Promise.race([drained, deadline])) === 'deadline') {
      this.#logger?.warn(
        { instances: this.#instances.size, deadlineMs },
        'stop deadline passed: resetting the instances still busy',
      );
      for (const inst of [...this.#instances]) {
        this.resetAtStop++;
        inst.conn.destroy();
        this.#free(inst);
      }
      await drained;
    }
    clearTimeout(timer);
    // The aborted connect completes on a later turn; let it land first.
    while (this.listener.pendingOperations > 0) await new Promise((r) => setImmediate(r));
    this.#finished = true;
    // A user APC wakes the loop from its infinite wait so it sees the flag.
    queueUserApc(() => {});
    await this.#loop;
  }

  /** While stopping: (re)starts the instance's quiet period from what it has received so far. */
  #watchQuiet(inst: Instance): void {
    inst.deadline ??= new Deadline(() => this.#expired(inst));
    inst.lastReceived = inst.conn.bytesReceived;
    deadlines.arm(inst.deadline, QUIET_MS);
  }

  /** The seeds' main loop. */
  async #run(): Promise<void> {
    this.listener.accept(this.#connect);
    while (!this.#finished) {
      const result = await waitForSingleObject(this.#connectEvent, ALERTABLE_INFINITE);
      if (result !== 0) continue; // 'io-completion': routines ran
      this.#connectEvent.reset();
      let pipe: PipeConnection | null = null;
      try {
        getOverlappedResult(this.#connect);
        pipe = this.#connect.pipe;
      } catch (err) {
        if (codeOf(err as Error) !== 'OVL_ERR_ABORTED') this.#storm.failed(err as Error, 0);
      }
      if (pipe !== null) {
        this.#storm.accepted();
        this.#admit(pipe);
      }
      if (!this.#stopRequested && !this.listener.closed) this.listener.accept(this.#connect);
    }
  }

  #admit(conn: PipeConnection): void {
    if (this.#stopRequested) {
      conn.destroy();
      return;
    }
    if (this.#instances.size >= this.instanceLimit) {
      this.refused++;
      this.#busyRefusals.warn(
        { instances: this.instanceLimit },
        'client refused: every instance is busy',
      );
      conn.closeWithError(
        'OVL_ERR_PIPE_BUSY',
        `all ${this.instanceLimit} instances of ${this.path} are busy: retry later, or wait for a free one (PipeClient's timeoutMs, pipe-client --timeout)`,
      );
      return;
    }
    const id = this.#nextId++;
    const io = new Overlapped<InstanceIo>({
      instance: null as unknown as Instance,
      buffer: Buffer.allocUnsafe(this.#bufferSize),
      parts: [],
    });
    const timed = this.#checkMs > 0 || this.#timeouts.write > 0;
    const inst: Instance = {
      id,
      conn,
      io,
      requests: 0,
      busy: false,
      deadline: timed ? new Deadline(() => this.#expired(inst)) : null,
      lastReceived: 0,
      lastProgress: 0,
      partialSeen: false,
    };
    (io.data as { instance: Instance }).instance = inst;
    this.#instances.add(inst);
    this.#logger?.info({ instance: id, instances: this.#instances.size }, 'client connected');
    conn.sendControl(READY);
    this.#read(inst);
  }

  /** Posts the instance's next read (a new request, or the next piece of one) and arms its deadline. */
  #read(inst: Instance): void {
    const deadline = inst.deadline;
    if (this.#stopRequested) {
      this.#watchQuiet(inst);
    } else if (deadline !== null) {
      inst.lastReceived = inst.conn.bytesReceived;
      inst.lastProgress = performance.now();
      inst.partialSeen = false;
      if (this.#checkMs > 0) deadlines.arm(deadline, this.#checkMs);
      else deadlines.disarm(deadline);
    }
    inst.conn.read(inst.io.data.buffer, inst.io, this.#onRead);
  }

  /**
   * A deadline check. A pending write that made no progress for the write
   * limit resets the instance. A pending read is closed when the request
   * it waits for was already partly there at the previous check (read
   * limit), or when nothing at all arrived for the idle limit; otherwise
   * the check comes again. While the handler runs there is no deadline.
   */
  #expired(inst: Instance): void {
    const io = inst.io;
    if (!this.#instances.has(inst) || !io.pending || inst.deadline === null) return;
    if (this.#stopRequested) {
      // A reply in flight: its completion reads on and watches again; the stop's deadline covers it.
      if (io.operation !== 'read') return;
      const partial = io.data.parts.length > 0 || inst.conn.unreadBytes > 0;
      if (!partial && inst.conn.bytesReceived === inst.lastReceived) this.#free(inst);
      else this.#watchQuiet(inst);
      return;
    }
    const { idle, read, write } = this.#timeouts;
    if (io.operation === 'write') {
      if (write > 0) this.#timedOut(inst, 'write', write);
      return;
    }
    const now = performance.now();
    const received = inst.conn.bytesReceived;
    if (received !== inst.lastReceived) {
      inst.lastReceived = received;
      inst.lastProgress = now;
    }
    const partial =
      this.mode === 'message' && (io.data.parts.length > 0 || inst.conn.unreadBytes > 0);
    if (partial && read > 0) {
      if (inst.partialSeen) {
        this.#timedOut(inst, 'read', read);
        return;
      }
      inst.partialSeen = true;
    } else if (idle > 0 && now - inst.lastProgress + RESOLUTION_MS >= idle) {
      this.#timedOut(inst, 'idle', idle);
      return;
    }
    deadlines.arm(inst.deadline, this.#checkMs);
  }

  /**
   * Closes an instance whose deadline passed, with one info line: its
   * pending operation completes with `OVL_ERR_TIMEOUT`; a reading client is
   * told so in a control frame, a client that does not read is reset.
   */
  #timedOut(inst: Instance, reason: 'idle' | 'read' | 'write', timeoutMs: number): void {
    const what =
      reason === 'idle'
        ? `no byte arrived for ${timeoutMs} ms (--idle-timeout)`
        : reason === 'read'
          ? `a request stopped arriving (less than one read buffer per ${timeoutMs} ms, --read-timeout)`
          : `the client took no byte of a reply for ${timeoutMs} ms (--write-timeout)`;
    this.#logger?.info(
      { instance: inst.id, reason, timeoutMs },
      `deadline passed: closing the instance: ${what}`,
    );
    const message = `${reason} deadline: ${what}`;
    inst.conn.failPendingWith(new OverlappedError('OVL_ERR_TIMEOUT', message));
    if (reason === 'write') inst.conn.destroy();
    this.#free(inst, reason === 'write' ? undefined : 'OVL_ERR_TIMEOUT', message);
  }

  /** CompletedReadRoutine: a request (or a piece of one) arrived, or the client left. */
  readonly #onRead = (error: Error | null, bytes: number, io: Overlapped<InstanceIo>): void => {
    const state = io.data;
    const inst = state.instance;
    if (error !== null) {
      const c = codeOf(error);
      if (c === 'OVL_ERR_MORE_DATA') {
        // The pieces held are bytes the client sent (never more than it claimed, up to maxMessage).
        const piece = this.#copy(inst, state.buffer.subarray(0, bytes));
        if (piece === null) return;
        state.parts.push(piece);
        if (this.#usable(inst)) this.#read(inst);
        return;
      }
      if (c === 'OVL_ERR_MESSAGE_TOO_LARGE' || c === 'OVL_ERR_PIPE_PROTOCOL') {
        this.#badRequests.warn(
          { instance: inst.id, err: error.message },
          'client refused a request',
        );
        this.#free(inst, c, error.message);
        return;
      }
      if (c !== 'OVL_ERR_ABORTED' && c !== 'OVL_ERR_BROKEN_PIPE' && c !== 'OVL_ERR_TIMEOUT') {
        this.#logger?.info({ instance: inst.id, err: error.message }, 'instance error');
      }
      this.#free(inst);
      return;
    }
    // The handler's time is its own: no deadline until the reply is posted.
    if (inst.deadline !== null) deadlines.disarm(inst.deadline);
    if (this.mode === 'byte' && bytes === 0) {
      this.#free(inst); // end of stream
      return;
    }
    let request = state.buffer.subarray(0, bytes);
    if (state.parts.length > 0) {
      state.parts.push(request);
      const whole = this.#copy(inst, state.parts);
      state.parts = [];
      if (whole === null) return;
      request = whole;
    }
    inst.busy = true;
    let reply: PipeReply | Promise<PipeReply>;
    try {
      reply = this.#handler(request, { id: inst.id, requests: inst.requests });
    } catch (err) {
      this.#handlerFailed(inst, err);
      return;
    }
    if (reply !== null && typeof reply === 'object' && 'then' in reply) {
      reply.then(
        (r) => this.#reply(inst, r),
        (err: unknown) => this.#handlerFailed(inst, err),
      );
    } else {
      this.#reply(inst, reply);
    }
  };

  /**
   * Copies a request piece (or joins the pieces); when the process cannot
   * allocate it, that client alone is refused and freed (null).
   */
  #copy(inst: Instance, data: Buffer | Buffer[]): Buffer | null {
    try {
      return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    } catch (err) {
      const message = `no memory for this request (${(err as Error).message}): send smaller messages`;
      this.#badRequests.warn({ instance: inst.id, err: message }, 'client refused a request');
      this.#free(inst, 'OVL_ERR_MESSAGE_TOO_LARGE', message);
      return null;
    }
  }

  #reply(inst: Instance, reply: PipeReply): void {
    let bytes: Uint8Array;
    try {
      bytes = toBytes(reply);
    } catch (err) {
      this.#handlerFailed(inst, err);
      return;
    }
    if (!this.#usable(inst)) return;
    if (inst.deadline !== null && this.#timeouts.write > 0) {
      deadlines.arm(inst.deadline, this.#timeouts.write);
    }
    inst.conn.write(bytes, inst.io, this.#onWrite);
  }

  #handlerFailed(inst: Instance, err: unknown): void {
    this.#logger?.error({ instance: inst.id, err }, 'request handler failed');
    inst.busy = false;
    if (this.mode === 'byte' || inst.conn.closed) {
      this.#free(inst);
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    if (!this.#usable(inst)) return;
    inst.conn.sendControl(`OVL_ERR_HANDLER_FAILED the request handler failed: ${message}`);
    this.#next(inst);
  }

  /** CompletedWriteRoutine: the reply is written; read the next request. */
  readonly #onWrite = (error: Error | null, _bytes: number, io: Overlapped<InstanceIo>): void => {
    const inst = io.data.instance;
    inst.busy = false;
    if (error !== null) {
      const c = codeOf(error);
      if (c !== 'OVL_ERR_ABORTED' && c !== 'OVL_ERR_BROKEN_PIPE' && c !== 'OVL_ERR_TIMEOUT') {
        this.#logger?.info({ instance: inst.id, err: error.message }, 'instance error');
      }
      this.#free(inst);
      return;
    }
    inst.requests++;
    this.transactions++;
    this.#next(inst);
  };

  #next(inst: Instance): void {
    // Stopping or not, the instance reads on: a request the client already sent is answered too.
    if (this.#usable(inst)) this.#read(inst);
  }

  /** False (and the instance freed) if it was closed meanwhile (stop deadline): post nothing more on it. */
  #usable(inst: Instance): boolean {
    if (!inst.conn.closed) return true;
    this.#free(inst);
    return false;
  }

  /** DisconnectAndClose: closes the instance (with a control frame for the client, if given) and frees it. */
  #free(inst: Instance, code?: OverlappedErrorCode, message?: string): void {
    if (!this.#instances.delete(inst)) return;
    if (inst.deadline !== null) deadlines.disarm(inst.deadline);
    if (code !== undefined) inst.conn.closeWithError(code, message ?? '');
    else inst.conn.close();
    this.#logger?.info(
      { instance: inst.id, requests: inst.requests, instances: this.#instances.size },
      'client disconnected',
    );
    if (this.#instances.size === 0) this.#drained?.();
  }
}
