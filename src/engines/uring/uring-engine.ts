/**
 * Implementation notes: the native io_uring engine (Linux).
 *
 * What the kernel gives: io_uring is Linux's completion port. Operations
 * are posted as SQEs and complete into a CQ, in batches, with no readiness
 * step in between; a blocked socket operation waits inside the kernel
 * (FAST_POLL) until it can finish. The ring signals an eventfd per CQE.
 *
 * What the engine adds (native/ for the C side, this file for the rest):
 * - Event loop: libuv watches the ring's eventfd. One wake-up reaps every
 *   ready CQE into a shared Int32Array (records of id, res, flags) and makes
 *   ONE call into JavaScript, which maps ids to requests and hands the sink
 *   one batch. SQEs prepared while that batch is handled (handlers posting
 *   the next recv/send) are submitted once, after the call; SQEs prepared
 *   at any other time are submitted once per turn from a microtask. No busy
 *   polling, no thread per connection.
 * - Ordering (rule 7) and stream integrity: io_uring does not order two
 *   SQEs on one socket (a send waiting for buffer space could be overtaken
 *   by a later one). So each stream has at most one recv and one send in
 *   the kernel; more wait here, in order. Sends waiting here when one
 *   completes leave together in one sendmsg with an iovec. Shutdown waits
 *   for earlier sends (FIN after data).
 * - Sends use MSG_WAITALL, so the kernel retries a short send until every
 *   byte is taken, as an overlapped WSASend completes whole.
 * - A recv is posted with IORING_RECVSEND_POLL_FIRST unless the stream's
 *   previous recv filled its buffer: a request/reply server posts its next
 *   recv before the next request has arrived, so the kernel's first attempt
 *   would only fail with EAGAIN, while after a full buffer more is likely
 *   waiting (measurements: RECV_POLL_FIRST in native/src/addon.c).
 * - Rule 6: a plain recv reads only into the posted buffer, so nothing is
 *   held unread. Pooled recvs share one multishot recv per stream (below),
 *   which holds at most HOLD_BUFFERS pool buffers (64 KiB) for no recv: the
 *   kernel ends it after that many bytes (its byte limit), and it is
 *   cancelled once that many buffers are held; TCP flow control does the rest.
 * - Accept is multishot (kernel 5.19+): armed at the first accept and kept
 *   armed while the listener is open; connections no accept is posted for
 *   wait in a queue of `backlog`; once it is full the multishot accept is
 *   cancelled, so further clients wait in the kernel's listen backlog (as
 *   with any listening socket nobody accepts from), and it is armed again
 *   when an accept finds the queue empty. Posted accepts are served oldest
 *   first.
 * - Cancel: IORING_OP_ASYNC_CANCEL by user_data (one operation), or by
 *   descriptor (IORING_ASYNC_CANCEL_FD | ALL, 5.19+) when everything of a
 *   stream goes (reset, abortive close); the operation then
 *   completes with -ECANCELED (OVL_ERR_ABORTED), or with its result if it
 *   finished first (too late to cancel). A cancelled send may have moved an
 *   unknown part of its bytes, so, as in the node engine, cancelling a send
 *   the kernel has not finished resets the connection (ECONNABORTED after).
 * - Close: requests waiting here abort at once; requests in the kernel are
 *   cancelled (a graceful close lets a send in flight finish, for at most
 *   10 s, and completes it aborted with the bytes it moved, as the node
 *   engine does); the descriptor is closed once nothing of it is in the
 *   kernel, so no buffer is still in use. Abortive close sets SO_LINGER 0.
 * - Pooled receive: a provided-buffer ring of up to 1024 × 8 KiB buffers
 *   (8 MiB of address space), registered on the first pooled recv. The
 *   kernel picks a buffer only when data arrives; the lease gives it back.
 *   A stream's pooled recvs are served by one multishot recv (6.0+), armed
 *   by the first and kept armed while recvs come: each arrival completes the
 *   oldest waiting recv, or is held (in order, with end of stream or an error
 *   behind it) for the next one. A recv into a buffer copies from what is
 *   held, and otherwise waits for the multishot to end before its own SQE
 *   goes in, so no arrival overtakes it. Measured at 1,000 connections
 *   (medians of 6): 13% less CPU per message than one pooled recv SQE per
 *   message; at 50 connections no difference. A kernel without multishot
 *   recv (-EINVAL) gets single-shot pooled recvs.
 *   The ring is FIFO, so every buffer the kernel has is used in turn: it
 *   gets 32 at first and more (doubling) only when it answers -ENOBUFS, so
 *   the pages the pool touches follow the peak of buffers in use. With all
 *   1024 out, the recv waits here until a lease is released, then is
 *   posted again (not an error).
 * - Readiness and non-blocking attempts (select, WSAAsyncSelect,
 *   WSAEventSelect, non-blocking sockets) use the kernel's own mechanisms.
 *   `poll` is a single-shot IORING_OP_POLL_ADD for POLLIN/POLLOUT (and
 *   POLLRDHUP when HANGUP is asked); the CQE's revents map to Readiness
 *   bits (POLLERR/POLLHUP: ERROR, and READABLE when asked). Several may be
 *   pending per handle; cancel and close cancel them like any operation,
 *   and the descriptor stays open until their CQEs are in. Bytes the engine
 *   holds for no recv (multishot arrivals, read-ahead) are served first:
 *   a READABLE poll completes from them without the kernel, and one in the
 *   kernel when such bytes come in is cancelled and completes from them,
 *   since the kernel may no longer see them on the socket. The try-calls
 *   make one plain system call, no SQE: recv/send with MSG_DONTWAIT (the
 *   socket stays a blocking descriptor for io_uring) and accept4 on the
 *   listening socket, which is O_NONBLOCK for that (accept has no per-call
 *   flag; io_uring's multishot accept polls either way). Order (rule 7):
 *   while a recv or send is posted the try-call says WOULD_BLOCK, and while
 *   a pooled recv's multishot is armed tryRecv stops it rather than read past
 *   it. `detach` disowns the descriptor (the ring would close it at
 *   teardown) for a worker's blocking calls (`engine.blocking`, ring-less
 *   addon functions).
 * - Memory safety: the native ring holds a strong reference to this
 *   engine's record callback, so every buffer in `#slots` stays reachable
 *   until its CQE is reaped, whatever the caller drops. Memory the kernel
 *   reads besides data (msghdr, iovec, sockaddr) is native and freed at the
 *   final CQE. When the Node-API environment ends (process or worker exit),
 *   the native side cancels and reaps everything before freeing the ring.
 *   No global state: one ring per engine, one engine per thread.
 *
 * Where the time goes (perf, echo server, 64 B messages, 1,000
 * connections, C load generator): 87% of the server's CPU is in the kernel,
 * of which io_uring's own part (SQE submission, task work, completion
 * posting) is about 7%; the rest is TCP and loopback. JavaScript and Node
 * take about 12%. Against an epoll server the extra cost grows with the
 * connection count (cache misses across more sockets and objects).
 *
 * Tried and not kept: registered files (IOSQE_FIXED_FILE) took fget/fput
 * out of the profile (2.4%), but the cache miss moved to sock_from_file, so
 * the net was about 1%, for two more system calls per connection and a
 * kernel (before 6.13) that keeps a removed file open while any earlier
 * operation on any registered file is pending. Smaller completion batches
 * with a submit after each, and DEFER_TASKRUN: no difference measured.
 *
 * Quirks and limits:
 * - Task work: by default the kernel finishes a waited-for socket operation
 *   by interrupting this thread (an IPI), which cost about a fifth of the
 *   server's CPU in an echo benchmark here. The ring is set up with
 *   COOP_TASKRUN (the work runs at the thread's next system call, which
 *   libuv's epoll_wait is). `OVERLAPPED_URING_TASKRUN=defer` selects
 *   DEFER_TASKRUN (run only when asked, in batches; measured about as fast
 *   here); since 6.13 the kernel runs at most 20 deferred items per ask and
 *   signals the eventfd again only for new work, so the engine keeps asking
 *   while asking yields completions. `plain` is the kernel default.
 * - liburing 2.3 has no io_uring_setup_buf_ring; the C side allocates the
 *   buffer ring page-aligned and registers it itself.
 * - Connected sockets are blocking descriptors: io_uring waits for them; a
 *   non-blocking socket would hand -EAGAIN back on some kernels. Listening
 *   sockets are O_NONBLOCK (for tryAccept); accept is not affected.
 * - Host names are resolved with `dns.lookup` before connect/listen.
 * - Kernels before 5.19 (no multishot accept, no cancel by descriptor) are
 *   not supported: the start-up probe asks the kernel for both, and where it
 *   refuses them the toolkit runs on the node engine and says why.
 */

import { lookup } from 'node:dns';
import { unlinkSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { isIP } from 'node:net';
import { getSystemErrorMap, getSystemErrorName } from 'node:util';
import { AbortedError, abortedError, OsError, toOsError, UsageError } from '../../core/errors.js';
import {
  type BlockingDescriptorIo,
  type BufferLease,
  type CompletionSink,
  type Endpoint,
  type Engine,
  type EngineListener,
  type EngineRequest,
  type EngineStream,
  type PipeListenOptions,
  POOL_BUFFER_SIZE,
  Readiness,
  type TcpListenOptions,
  WOULD_BLOCK,
} from '../contract.js';
import { uringBlockingIo } from './blocking-io.js';
import { loadAddon, type Ring, type UringAddon } from './native.js';

/** SQ entries; the CQ has four times as many (the kernel also keeps overflow, FEAT_NODROP). */
const RING_ENTRIES = 4096;
/** Completion records per call into JavaScript. */
const RECORDS_PER_CALL = 1024;
const RECORDS_AT = 4;
const RECORD_INTS = 3;
/**
 * Pool buffers at most: a power of two (buffer ring entries), 1024 (8 MiB)
 * unless `OVERLAPPED_URING_POOL_BUFFERS` says otherwise (32 to 32768). A
 * burst of data on many connections at once can touch them all: a smaller
 * pool bounds that memory, and makes the surplus recvs wait for a release.
 */
const POOL_BUFFER_COUNT = poolBufferCount();

function isPoolBufferCount(n: number): boolean {
  return Number.isInteger(n) && n >= 32 && n <= 32768 && (n & (n - 1)) === 0;
}

function poolBufferCount(): number {
  const n = Number(process.env.OVERLAPPED_URING_POOL_BUFFERS ?? 1024);
  return isPoolBufferCount(n) ? n : 1024;
}
/**
 * Pool buffers a stream's multishot recv may fill before any recv asks for
 * them (rule 6: 64 KiB, as the node engine holds); at that point it is
 * cancelled, and armed again once a recv finds nothing held.
 */
const HOLD_BUFFERS = 8;
/**
 * Read-ahead buffer size. A plain recv after one that filled its buffer reads
 * up to this much in one kernel recv (rule 6: it is also what a stream may
 * hold unread), and later recvs copy from it, as the node engine reads 64 KiB
 * ahead. Idle and request/reply connections never take one.
 */
const STAGE_SIZE = 64 * 1024;
/** Read-ahead buffers kept for reuse once no stream holds them. */
const STAGE_SPARES = 64;
/** Pool buffers the kernel gets at first; more (doubling) each time it runs out. */
const POOL_INITIAL = 32;
/** How long a gracefully closed stream lets a send in flight finish. */
const LINGER_MS = 10_000;
/** Retry schedule of an accept that failed (EMFILE, ENFILE, ENOBUFS): 50 ms, doubling to 1 s. */
const ACCEPT_BACKOFF_MIN_MS = 50;
const ACCEPT_BACKOFF_MAX_MS = 1000;
/** Parts one sendmsg gathers at most (IOV_MAX). */
const MAX_IOV = 1024;

const IORING_CQE_F_BUFFER = 1;
const IORING_CQE_F_MORE = 2;
const IORING_CQE_BUFFER_SHIFT = 16;
const ECANCELED = -125;
const ENOBUFS = -105;
const EINVAL = -22;
const EPIPE = -32;
const EAGAIN = -11;
const ECONNABORTED = -103;

// poll(2) events (Linux values): what a POLL_ADD asks for and its CQE's res reports.
const POLLIN = 0x1;
const POLLOUT = 0x4;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const POLLRDHUP = 0x2000;

const KIND_RECV = 1;
const KIND_SEND = 2;
const KIND_CONNECT = 3;
const KIND_SHUTDOWN = 4;
const KIND_ACCEPT = 5;
const KIND_RECV_MULTI = 6;
const KIND_POLL = 7;

const RESOLVED = Promise.resolve();
const EMPTY = new Uint8Array(0);

const TASK_RUN_MODES = ['defer', 'coop', 'plain'] as const;

/** `OVERLAPPED_URING_TASKRUN=defer|coop|plain` (for measurements); coop unless told. */
/**
 * Refuses bad values of the engine's tuning variables, naming the allowed
 * ones (`chooseEngine` calls it before it starts the engine): a typo must
 * not silently run another configuration than the one asked for.
 */
export function checkUringSettings(env: NodeJS.ProcessEnv = process.env): void {
  const pool = env.OVERLAPPED_URING_POOL_BUFFERS;
  if (pool !== undefined && pool !== '' && !isPoolBufferCount(Number(pool))) {
    throw new UsageError(
      'OVL_ERR_INVALID_ARGUMENT',
      `OVERLAPPED_URING_POOL_BUFFERS="${pool}" is invalid: use a power of two from 32 to 32768 (default 1024), or unset it`,
    );
  }
  const mode = env.OVERLAPPED_URING_TASKRUN;
  if (mode !== undefined && mode !== '' && !(TASK_RUN_MODES as readonly string[]).includes(mode)) {
    throw new UsageError(
      'OVL_ERR_INVALID_ARGUMENT',
      `OVERLAPPED_URING_TASKRUN="${mode}" is invalid: use ${TASK_RUN_MODES.join(', ')} (default coop), or unset it`,
    );
  }
  const multishot = env.OVERLAPPED_URING_RECV_MULTISHOT;
  if (multishot !== undefined && multishot !== '' && multishot !== '0' && multishot !== '1') {
    throw new UsageError(
      'OVL_ERR_INVALID_ARGUMENT',
      `OVERLAPPED_URING_RECV_MULTISHOT="${multishot}" is invalid: use 0 (one pooled recv at a time) or 1 (default), or unset it`,
    );
  }
}

function taskRunMode(): number {
  const i = TASK_RUN_MODES.indexOf(
    (process.env.OVERLAPPED_URING_TASKRUN ?? 'coop') as (typeof TASK_RUN_MODES)[number],
  );
  return i < 0 ? 1 : i;
}

let errorMap: Map<number, [string, string]> | undefined;

/** A Node-style OS error for a negative errno from a CQE or a system call. */
export function uringError(
  res: number,
  syscall: string,
  extra?: { address?: string; port?: number },
): OsError {
  errorMap ??= getSystemErrorMap();
  const known = errorMap.get(res);
  const code = known?.[0] ?? getSystemErrorName(res);
  let message = `${syscall} ${code}`;
  if (extra?.address !== undefined) {
    message += ` ${extra.address}${extra.port === undefined ? '' : `:${extra.port}`}`;
  }
  return new OsError(code, res, syscall, message, extra);
}

/** Whatever holds operations: gets each of its CQEs. */
interface Owner {
  onCqe(kind: number, id: number, res: number, flags: number): void;
}

/** The io_uring engine. One instance per thread (event loop). */
export class UringEngine implements Engine {
  readonly name = 'uring';
  /** @internal */
  readonly addon: UringAddon;
  /** @internal */
  readonly ring: Ring;
  readonly #records: Int32Array;
  #sink: CompletionSink | null = null;

  // Operation ids: the CQE's user_data. Slots keep the owner (and so its buffers) alive.
  readonly #owners: (Owner | undefined)[] = [];
  readonly #kinds: number[] = [];
  readonly #freeIds: number[] = [];

  // Completions waiting for delivery, in completion order.
  #pending: EngineRequest[] = [];
  #spare: EngineRequest[] = [];
  #reaping = false;
  #deliveryScheduled = false;

  // Pooled receive mode.
  /**
   * @internal Pooled recvs use one multishot recv per stream (kernel 6.0+);
   * false after a kernel refused one, or with OVERLAPPED_URING_RECV_MULTISHOT=0.
   */
  multishotRecv = process.env.OVERLAPPED_URING_RECV_MULTISHOT !== '0';
  #pool: ArrayBuffer | null = null;
  /** The whole pool as one Buffer, for copies out of it without a view per copy. */
  #poolBytes: Buffer | null = null;
  #poolError: Error | null = null;
  readonly #poolWaiters: UringStream[] = [];

  /** Opens a ring and probes it; throws with the reason io_uring cannot run here. */
  constructor() {
    this.addon = loadAddon();
    const records = new ArrayBuffer((RECORDS_AT + RECORDS_PER_CALL * RECORD_INTS) * 4);
    this.#records = new Int32Array(records);
    try {
      this.ring = this.addon.create(records, this.#onRecords, RING_ENTRIES, taskRunMode());
    } catch (err) {
      const errno = (err as { errno?: unknown }).errno;
      const code = typeof errno === 'number' ? getSystemErrorName(errno) : 'unknown';
      // Refused outright is policy (sysctl, seccomp); ENOTSUP is a kernel too old for the engine.
      const hint =
        code === 'EPERM' || code === 'ENOSYS' || code === 'EACCES'
          ? '; check kernel.io_uring_disabled and the seccomp profile'
          : code === 'ENOTSUP'
            ? '; the uring engine needs Linux 5.19 or later'
            : '';
      throw new Error(`io_uring is not available (${code}: ${(err as Error).message}${hint})`);
    }
  }

  setSink(sink: CompletionSink): void {
    this.#sink = sink;
  }

  /**
   * Blocking calls on a descriptor from `detach()` (blocking-io.ts): the
   * addon's ring-less functions, so a worker thread that owns the descriptor
   * calls them without an engine of its own.
   */
  get blocking(): BlockingDescriptorIo {
    return uringBlockingIo();
  }

  /** How the kernel runs this ring's task work: 'defer', 'coop' or 'plain' (see notes). */
  get taskRun(): string {
    return TASK_RUN_MODES[this.addon.setupMode(this.ring)] ?? 'plain';
  }

  /** @internal An id for a new operation of `owner`. */
  id(owner: Owner, kind: number): number {
    const id = this.#freeIds.pop() ?? this.#owners.length;
    this.#owners[id] = owner;
    this.#kinds[id] = kind;
    return id;
  }

  /** @internal Gives back an id whose SQE could not be prepared. */
  dropId(id: number): void {
    this.#owners[id] = undefined;
    this.#freeIds.push(id);
  }

  /** @internal An SQE was prepared: submit it with the others of this turn. */
  submitSoon(): void {
    const ctl = this.#records;
    if (ctl[0] === 0) {
      ctl[0] = 1;
      RESOLVED.then(this.#submit);
    }
  }

  readonly #submit = (): void => {
    this.addon.submit(this.ring);
  };

  /** @internal Completes `req` (delivered with this reap's batch, or right after the current call). */
  complete(req: EngineRequest, bytes: number, error: Error | null): void {
    req.bytes = bytes;
    req.error = error;
    this.#pending.push(req);
    if (!this.#reaping && !this.#deliveryScheduled) {
      this.#deliveryScheduled = true;
      RESOLVED.then(this.#deliverSoon);
    }
  }

  readonly #deliverSoon = (): void => {
    this.#deliveryScheduled = false;
    this.#deliver();
  };

  #deliver(): void {
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = this.#spare;
    const sink = this.#sink;
    try {
      if (sink === null) throw new Error('uring engine: completions arrived before setSink()');
      sink(batch);
    } finally {
      batch.length = 0;
      this.#spare = batch;
    }
  }

  /** Called by the native side with `count` records: one batch for the sink. */
  readonly #onRecords = (count: number): void => {
    const records = this.#records;
    const owners = this.#owners;
    this.#reaping = true;
    try {
      for (let i = 0, at = RECORDS_AT; i < count; i++, at += RECORD_INTS) {
        const id = records[at] as number;
        const res = records[at + 1] as number;
        const flags = records[at + 2] as number;
        const owner = owners[id];
        const kind = this.#kinds[id] as number;
        if ((flags & IORING_CQE_F_MORE) === 0) {
          owners[id] = undefined;
          this.#freeIds.push(id);
        }
        owner?.onCqe(kind, id, res, flags);
      }
    } finally {
      this.#reaping = false;
    }
    this.#deliver();
  };

  // ---- pooled receive mode ----

  /** @internal Registers the pool on first use; null when it cannot be. */
  poolReady(): Error | null {
    if (this.#pool !== null || this.#poolError !== null) return this.#poolError;
    const pool = new ArrayBuffer(POOL_BUFFER_SIZE * POOL_BUFFER_COUNT);
    const rc = this.addon.registerPool(
      this.ring,
      pool,
      POOL_BUFFER_SIZE,
      POOL_BUFFER_COUNT,
      POOL_INITIAL,
    );
    if (rc < 0) {
      this.#poolError = uringError(rc, 'io_uring_register_buf_ring');
      return this.#poolError;
    }
    this.#pool = pool;
    this.#poolBytes = Buffer.from(pool);
    this.#poolPublished = POOL_INITIAL;
    return null;
  }

  #poolPublished = 0;

  /**
   * @internal The kernel found no pool buffer: publish more if the pool has
   * some it never had (true), else the recv must wait for a release (false).
   */
  growPool(): boolean {
    if (this.#poolPublished >= POOL_BUFFER_COUNT) return false;
    const added = this.addon.poolGrow(this.ring, this.#poolPublished);
    this.#poolPublished += added;
    return added > 0;
  }

  /** @internal The lease of pool buffer `bid`, whose bytes from `offset` on are `bytes` long. */
  lease(bid: number, offset: number, bytes: number): BufferLease {
    const at = bid * POOL_BUFFER_SIZE + offset;
    return new UringLease(this, bid, Buffer.from(this.#pool as ArrayBuffer, at, bytes));
  }

  /** @internal Copies `bytes` bytes of pool buffer `bid`, from `offset` on, to the start of `target`. */
  copyFromPool(bid: number, offset: number, bytes: number, target: Uint8Array): void {
    const at = bid * POOL_BUFFER_SIZE + offset;
    (this.#poolBytes as Buffer).copy(target, 0, at, at + bytes);
  }

  /** @internal Buffer `bid` is free again; a recv waiting for one is posted again. */
  releaseBuffer(bid: number): void {
    this.addon.poolRelease(this.ring, bid);
    const waiter = this.#poolWaiters.shift();
    waiter?.retryPooled();
  }

  readonly #stages: Stage[] = [];

  /** @internal An empty read-ahead buffer (see STAGE_SIZE), reused when one is spare. */
  takeStage(): Stage {
    return this.#stages.pop() ?? new Stage(Buffer.allocUnsafeSlow(STAGE_SIZE));
  }

  /** @internal A read-ahead buffer no recv is reading into any more. */
  giveStage(stage: Stage): void {
    stage.at = 0;
    stage.end = 0;
    if (this.#stages.length < STAGE_SPARES) this.#stages.push(stage);
  }

  /** @internal `stream`'s pooled recv found the pool empty. */
  waitForBuffer(stream: UringStream): void {
    this.#poolWaiters.push(stream);
  }

  /** @internal */
  stopWaiting(stream: UringStream): void {
    const i = this.#poolWaiters.indexOf(stream);
    if (i >= 0) this.#poolWaiters.splice(i, 1);
  }

  // ---- Engine ----

  async listenTcp(options: TcpListenOptions): Promise<EngineListener> {
    const ip = await resolveHost(options.host);
    const fd = this.addon.listenTcp(this.ring, ip, options.port, options.backlog);
    if (fd < 0) throw uringError(fd, 'listen', { address: ip, port: options.port });
    return new UringListener(this, fd, options.backlog, null);
  }

  async listenPipe(options: PipeListenOptions): Promise<EngineListener> {
    const fd = this.addon.listenUnix(this.ring, options.path, options.backlog);
    if (fd < 0) throw uringError(fd, 'listen', { address: options.path });
    const listener = new UringListener(this, fd, options.backlog, options.path);
    try {
      await chmod(options.path, options.mode);
    } catch (err) {
      listener.close();
      throw toOsError(err, 'chmod');
    }
    return listener;
  }

  connectTcp(req: EngineRequest, host: string, port: number): EngineStream {
    const stream = new UringStream(this, -1, req, null);
    if (isIP(host) !== 0) {
      stream.startConnect(host, port);
    } else {
      lookup(host, (err, address) => {
        if (err) stream.connectFailed(toOsError(err, 'getaddrinfo'));
        else stream.startConnect(address, port);
      });
    }
    return stream;
  }

  /**
   * The contract's `adopt`: the descriptor becomes a stream of this ring, as
   * an accepted one would (accepted sockets are blocking descriptors here;
   * io_uring does the waiting, and try-calls pass MSG_DONTWAIT).
   */
  adopt(fd: number): EngineStream {
    if (!Number.isSafeInteger(fd) || fd < 0) {
      throw new UsageError(
        'OVL_ERR_INVALID_ARGUMENT',
        `adopt() takes a descriptor (a whole number >= 0), got ${String(fd)}`,
      );
    }
    return new UringStream(this, fd, null, null);
  }

  connectPipe(req: EngineRequest, path: string): EngineStream {
    const stream = new UringStream(this, -1, req, path);
    stream.startConnect(path, -1);
    return stream;
  }
}

function resolveHost(host: string): Promise<string> {
  if (isIP(host) !== 0) return Promise.resolve(host);
  return new Promise((resolve, reject) => {
    lookup(host, (err, address) => {
      if (err) reject(toOsError(err, 'getaddrinfo'));
      else resolve(address);
    });
  });
}

class UringLease implements BufferLease {
  readonly view: Buffer;
  #engine: UringEngine | null;
  readonly #bid: number;

  constructor(engine: UringEngine, bid: number, view: Buffer) {
    this.#engine = engine;
    this.#bid = bid;
    this.view = view;
  }

  release(): void {
    const engine = this.#engine;
    if (engine === null) return;
    this.#engine = null;
    engine.releaseBuffer(this.#bid);
  }
}

/** A lease of bytes copied out of a read-ahead buffer (a pooled recv after plain ones). */
class CopyLease implements BufferLease {
  readonly view: Buffer;

  constructor(view: Buffer) {
    this.view = view;
  }

  release(): void {}
}

function pipeEndpoint(path: string): Endpoint {
  return { address: path, port: -1, family: 'pipe' };
}

const connectionClosedError = () =>
  new OsError('EPIPE', EPIPE, 'write', 'the connection closed before the send completed');

/** The poll(2) events of a POLL_ADD asking for `events` (Readiness bits). */
function pollEvents(events: number): number {
  let mask = 0;
  if ((events & Readiness.READABLE) !== 0) mask |= POLLIN;
  if ((events & Readiness.WRITABLE) !== 0) mask |= POLLOUT;
  if ((events & Readiness.HANGUP) !== 0) mask |= POLLRDHUP;
  return mask;
}

/**
 * The Readiness bits a POLL_ADD's revents report for a poll that asked for
 * `events`: POLLERR or POLLHUP is ERROR, and READABLE too when asked (a recv
 * then returns at once, with the error or end of stream).
 */
function readinessOf(revents: number, events: number): number {
  let bits = 0;
  if ((revents & POLLIN) !== 0) bits |= Readiness.READABLE;
  if ((revents & POLLOUT) !== 0) bits |= Readiness.WRITABLE;
  if ((revents & POLLRDHUP) !== 0) bits |= Readiness.HANGUP;
  if ((revents & (POLLERR | POLLHUP)) !== 0) bits |= Readiness.ERROR | Readiness.READABLE;
  return bits & (events | Readiness.ERROR);
}

/** A poll posted and not completed. */
interface PollWaiting {
  req: EngineRequest;
  events: number;
  /** Its POLL_ADD's id, or -1 while it waits for a descriptor (a connect resolving its host). */
  id: number;
  /** Cancelled (cancel, close): completes aborted, whatever the kernel answers. */
  aborted: boolean;
  /**
   * Bits found to hold without the kernel (bytes the engine took in for no
   * recv): its POLL_ADD is being cancelled, and it completes with these.
   */
  found: number;
}

/**
 * The polls pending on one stream or listener, each a single-shot
 * IORING_OP_POLL_ADD (several may be pending at once). Made on first use.
 */
class PollList {
  readonly #engine: UringEngine;
  readonly entries: PollWaiting[] = [];

  constructor(engine: UringEngine) {
    this.#engine = engine;
  }

  /** Posts a poll on `fd` (or, with fd -1, keeps it until {@link armWaiting}). */
  add(owner: Owner, req: EngineRequest, events: number, fd: number): void {
    const entry: PollWaiting = { req, events, id: -1, aborted: false, found: 0 };
    this.entries.push(entry);
    if (fd >= 0) this.#arm(owner, entry, fd);
  }

  #arm(owner: Owner, entry: PollWaiting, fd: number): void {
    const engine = this.#engine;
    const id = engine.id(owner, KIND_POLL);
    const rc = engine.addon.poll(engine.ring, id, fd, pollEvents(entry.events));
    if (rc < 0) {
      engine.dropId(id);
      this.#remove(entry);
      engine.complete(entry.req, 0, uringError(rc, 'poll'));
      return;
    }
    entry.id = id;
    engine.submitSoon();
  }

  /** The descriptor exists now (the connect's socket): polls that waited for it go to the kernel. */
  armWaiting(owner: Owner, fd: number): void {
    for (const entry of this.entries.slice()) if (entry.id === -1) this.#arm(owner, entry, fd);
  }

  /** Completes the polls that wait for a descriptor (there will be none) with `bitsFor` their events. */
  completeWaiting(bitsFor: (events: number) => number): void {
    for (const entry of this.entries.slice()) {
      if (entry.id !== -1) continue;
      this.#remove(entry);
      this.#engine.complete(entry.req, bitsFor(entry.events), null);
    }
  }

  /** Some readiness now holds that the kernel may not see (bytes taken in for no recv). */
  resolve(bitsFor: (events: number) => number): void {
    const engine = this.#engine;
    for (const entry of this.entries.slice()) {
      if (entry.aborted || entry.found !== 0) continue;
      const bits = bitsFor(entry.events);
      if (bits === 0) continue;
      if (entry.id === -1) {
        this.#remove(entry);
        engine.complete(entry.req, bits, null);
      } else {
        entry.found = bits;
        engine.addon.cancel(engine.ring, entry.id);
        engine.submitSoon();
      }
    }
  }

  /** The CQE of poll `id`. */
  onCqe(id: number, res: number): void {
    const entry = this.entries.find((e) => e.id === id);
    if (entry === undefined) return;
    this.#remove(entry);
    const engine = this.#engine;
    if (entry.aborted) {
      engine.complete(entry.req, 0, abortedError());
    } else if (entry.found !== 0) {
      engine.complete(
        entry.req,
        entry.found | (res > 0 ? readinessOf(res, entry.events) : 0),
        null,
      );
    } else if (res === ECANCELED) {
      engine.complete(entry.req, 0, abortedError());
    } else if (res < 0) {
      engine.complete(entry.req, 0, uringError(res, 'poll'));
    } else {
      engine.complete(entry.req, readinessOf(res, entry.events), null);
    }
  }

  /** Cancels the poll of `req`; false when it is not pending here or already cancelled. */
  cancel(req: EngineRequest): boolean {
    const entry = this.entries.find((e) => e.req === req);
    if (entry === undefined || entry.aborted) return false;
    this.#abort(entry, true);
    return true;
  }

  /**
   * Cancels every poll; `byId` false when the caller cancels everything of
   * the descriptor itself (IORING_ASYNC_CANCEL_FD).
   */
  cancelAll(byId: boolean): void {
    for (const entry of this.entries.slice()) if (!entry.aborted) this.#abort(entry, byId);
  }

  #abort(entry: PollWaiting, byId: boolean): void {
    const engine = this.#engine;
    if (entry.id === -1) {
      this.#remove(entry);
      engine.complete(entry.req, 0, abortedError());
      return;
    }
    entry.aborted = true;
    if (byId && entry.found === 0) {
      engine.addon.cancel(engine.ring, entry.id);
      engine.submitSoon();
    }
  }

  /** A poll is in the kernel: the descriptor must not be closed yet. */
  get inKernel(): boolean {
    return this.entries.some((e) => e.id !== -1);
  }

  #remove(entry: PollWaiting): void {
    const i = this.entries.indexOf(entry);
    if (i >= 0) this.entries.splice(i, 1);
  }
}

/** A recv waiting for the one in the kernel (buffer null: pooled). */
interface RecvWaiting {
  req: EngineRequest;
  buffer: Uint8Array | null;
}

/** A send posted and not completed: in the kernel (`#inFlight`) or waiting for its turn. */
interface QueuedSend {
  req: EngineRequest;
  data: Uint8Array | readonly Uint8Array[];
  size: number;
}

/** A connected (or connecting) socket behind the EngineStream contract. */
/**
 * The state of a stream that an idle, established connection does not use
 * (connecting, shutting down, queues, lingering): made on first need, so that
 * thousands of idle connections each cost one small object (see UringStream).
 */
class ColdState {
  stage: Stage | null = null;
  pipePath: string | null = null;
  recvQueue: RecvWaiting[] | null = null;
  heldEnd: Error | true | null = null;
  inFlight: QueuedSend[] | null = null;
  sendQueue: QueuedSend[] | null = null;
  shutdownReq: EngineRequest | null = null;
  shutdownId: number = -1;
  connectReq: EngineRequest | null = null;
  connectId: number = -1;
  connectAddress: { address: string; port?: number } | null = null;
  linger: NodeJS.Timeout | null = null;
  polls: PollList | null = null;
}

/**
 * Read-ahead for a stream that receives more than its recv buffers hold: one
 * kernel recv into `buffer` (STAGE_SIZE), copied out to the recvs that follow.
 */
class Stage {
  readonly buffer: Buffer;
  /** Unread bytes are buffer[at, end). */
  at = 0;
  end = 0;
  /** A recv into `buffer` is in the kernel (it must not be reused until its CQE). */
  reading = false;

  constructor(buffer: Buffer) {
    this.buffer = buffer;
  }
}

/** Flag bits of UringStream#flags. */
const F_RECV_POOLED = 1;
const F_RECV_CANCELLED = 2;
const F_POOL_WAIT = 4;
const F_MULTI_STOPPING = 8;
const F_LAST_RECV_FULL = 16;
const F_SEND_CANCELLED = 32;
const F_EOF = 64;
const F_CLOSED = 128;
const F_ABORTIVE = 256;
const F_RESET = 512;
const F_FD_CLOSED = 1024;

/**
 * A connected (or connecting) socket behind the EngineStream contract.
 *
 * Memory: this object is most of what an idle connection costs, so its fields
 * are the ones every established connection uses; booleans are bits of one
 * field and the rest lives in a ColdState made on first need, both behind
 * accessors so the code reads as if they were plain fields. The accessors are
 * TypeScript-private, not `#`: optimized code calls `#` accessors through the
 * runtime (Runtime_LoadPrivateGetter in a profile of the echo server), while
 * it inlines ordinary ones.
 */
class UringStream implements EngineStream, Owner {
  readonly #engine: UringEngine;
  #fd: number;
  #flags = 0;
  #cold: ColdState | null = null;

  // Receives: at most one in the kernel; the rest wait, in order.
  #recvReq: EngineRequest | null = null;
  #recvId = -1; // the recv SQE in the kernel, or -1 (none: served by the multishot, or waiting)
  /** `#recvReq`'s buffer (null: pooled): referenced here so the GC cannot free it (rule 3). */
  #recvBuffer: Uint8Array | null = null;

  // Pooled receives: one multishot recv, armed while reading (see notes).
  #multiId = -1;
  /**
   * Arrivals no recv has asked for yet: [bid, offset, bytes] per pool buffer,
   * oldest first. Made on the first arrival and kept (not one array per
   * message); empty exactly when `#heldBytes` is 0, as every entry holds bytes.
   */
  #held: number[] | null = null;
  #heldBytes = 0;

  // Sends: one sendmsg in the kernel at a time; later ones wait and leave together.
  #sendId = -1;
  #sendReq: EngineRequest | null = null; // the one send in flight, or null for a batch
  // biome-ignore lint/correctness/noUnusedPrivateClassMembers: held, not read: keeps the buffer alive
  #sendData: Uint8Array | null = null;
  #inFlightBytes = 0;

  #error: Error | null = null;

  constructor(
    engine: UringEngine,
    fd: number,
    connectReq: EngineRequest | null,
    pipePath: string | null,
  ) {
    this.#engine = engine;
    this.#fd = fd;
    this.connectReq = connectReq;
    this.pipePath = pipePath;
  }

  private get pooledRecv(): boolean {
    return (this.#flags & F_RECV_POOLED) !== 0;
  }
  private set pooledRecv(on: boolean) {
    this.#flags = on ? this.#flags | F_RECV_POOLED : this.#flags & ~F_RECV_POOLED;
  }
  private get recvCancelled(): boolean {
    return (this.#flags & F_RECV_CANCELLED) !== 0;
  }
  private set recvCancelled(on: boolean) {
    this.#flags = on ? this.#flags | F_RECV_CANCELLED : this.#flags & ~F_RECV_CANCELLED;
  }
  /** Waiting for a pool buffer to come back before asking the kernel again. */
  private get poolWait(): boolean {
    return (this.#flags & F_POOL_WAIT) !== 0;
  }
  private set poolWait(on: boolean) {
    this.#flags = on ? this.#flags | F_POOL_WAIT : this.#flags & ~F_POOL_WAIT;
  }
  private get multiStopping(): boolean {
    return (this.#flags & F_MULTI_STOPPING) !== 0;
  }
  private set multiStopping(on: boolean) {
    this.#flags = on ? this.#flags | F_MULTI_STOPPING : this.#flags & ~F_MULTI_STOPPING;
  }
  /** The last recv filled its buffer, so more is likely waiting: the next one
   * tries at once rather than polling first (see RECV_POLL_FIRST in native/). */
  private get lastRecvFull(): boolean {
    return (this.#flags & F_LAST_RECV_FULL) !== 0;
  }
  private set lastRecvFull(on: boolean) {
    this.#flags = on ? this.#flags | F_LAST_RECV_FULL : this.#flags & ~F_LAST_RECV_FULL;
  }
  private get sendCancelled(): boolean {
    return (this.#flags & F_SEND_CANCELLED) !== 0;
  }
  private set sendCancelled(on: boolean) {
    this.#flags = on ? this.#flags | F_SEND_CANCELLED : this.#flags & ~F_SEND_CANCELLED;
  }
  private get eof(): boolean {
    return (this.#flags & F_EOF) !== 0;
  }
  private set eof(on: boolean) {
    this.#flags = on ? this.#flags | F_EOF : this.#flags & ~F_EOF;
  }
  /** The user closed the stream; every completion from now on is aborted. */
  private get closed(): boolean {
    return (this.#flags & F_CLOSED) !== 0;
  }
  private set closed(on: boolean) {
    this.#flags = on ? this.#flags | F_CLOSED : this.#flags & ~F_CLOSED;
  }
  private get abortive(): boolean {
    return (this.#flags & F_ABORTIVE) !== 0;
  }
  private set abortive(on: boolean) {
    this.#flags = on ? this.#flags | F_ABORTIVE : this.#flags & ~F_ABORTIVE;
  }
  private get reset(): boolean {
    return (this.#flags & F_RESET) !== 0;
  }
  private set reset(on: boolean) {
    this.#flags = on ? this.#flags | F_RESET : this.#flags & ~F_RESET;
  }
  private get fdClosed(): boolean {
    return (this.#flags & F_FD_CLOSED) !== 0;
  }
  private set fdClosed(on: boolean) {
    this.#flags = on ? this.#flags | F_FD_CLOSED : this.#flags & ~F_FD_CLOSED;
  }

  #coldState(): ColdState {
    this.#cold ??= new ColdState();
    return this.#cold;
  }

  private get pipePath(): string | null {
    return this.#cold === null ? null : this.#cold.pipePath;
  }
  private set pipePath(value: string | null) {
    if (this.#cold !== null || value !== null) this.#coldState().pipePath = value;
  }
  /** Recvs waiting for the one in the kernel, in order (null buffer: pooled). */
  private get recvQueue(): RecvWaiting[] | null {
    return this.#cold === null ? null : this.#cold.recvQueue;
  }
  private set recvQueue(value: RecvWaiting[] | null) {
    if (this.#cold !== null || value !== null) this.#coldState().recvQueue = value;
  }
  /** End of stream (true) or the error the multishot met, delivered after the held bytes. */
  private get heldEnd(): Error | true | null {
    return this.#cold === null ? null : this.#cold.heldEnd;
  }
  private set heldEnd(value: Error | true | null) {
    if (this.#cold !== null || value !== null) this.#coldState().heldEnd = value;
  }
  /** A gathered batch of sends in flight (`#sendReq` is then null). */
  private get inFlight(): QueuedSend[] | null {
    return this.#cold === null ? null : this.#cold.inFlight;
  }
  private set inFlight(value: QueuedSend[] | null) {
    if (this.#cold !== null || value !== null) this.#coldState().inFlight = value;
  }
  /** Sends waiting for the one in flight; they leave together. */
  private get sendQueue(): QueuedSend[] | null {
    return this.#cold === null ? null : this.#cold.sendQueue;
  }
  private set sendQueue(value: QueuedSend[] | null) {
    if (this.#cold !== null || value !== null) this.#coldState().sendQueue = value;
  }
  private get shutdownReq(): EngineRequest | null {
    return this.#cold === null ? null : this.#cold.shutdownReq;
  }
  private set shutdownReq(value: EngineRequest | null) {
    if (this.#cold !== null || value !== null) this.#coldState().shutdownReq = value;
  }
  private get shutdownId(): number {
    return this.#cold === null ? -1 : this.#cold.shutdownId;
  }
  private set shutdownId(value: number) {
    if (this.#cold !== null || value !== -1) this.#coldState().shutdownId = value;
  }
  private get connectReq(): EngineRequest | null {
    return this.#cold === null ? null : this.#cold.connectReq;
  }
  private set connectReq(value: EngineRequest | null) {
    if (this.#cold !== null || value !== null) this.#coldState().connectReq = value;
  }
  private get connectId(): number {
    return this.#cold === null ? -1 : this.#cold.connectId;
  }
  private set connectId(value: number) {
    if (this.#cold !== null || value !== -1) this.#coldState().connectId = value;
  }
  private get connectAddress(): { address: string; port?: number } | null {
    return this.#cold === null ? null : this.#cold.connectAddress;
  }
  private set connectAddress(value: { address: string; port?: number } | null) {
    if (this.#cold !== null || value !== null) this.#coldState().connectAddress = value;
  }
  private get stage(): Stage | null {
    return this.#cold === null ? null : this.#cold.stage;
  }
  private set stage(value: Stage | null) {
    if (this.#cold !== null || value !== null) this.#coldState().stage = value;
  }
  private get linger(): NodeJS.Timeout | null {
    return this.#cold === null ? null : this.#cold.linger;
  }
  private set linger(value: NodeJS.Timeout | null) {
    if (this.#cold !== null || value !== null) this.#coldState().linger = value;
  }
  /** Polls pending (made on the first poll). */
  private get polls(): PollList | null {
    return this.#cold === null ? null : this.#cold.polls;
  }
  private set polls(value: PollList | null) {
    if (this.#cold !== null || value !== null) this.#coldState().polls = value;
  }

  get localEndpoint(): Endpoint | null {
    if (this.pipePath !== null) return pipeEndpoint(this.pipePath);
    return this.#name(false);
  }

  get remoteEndpoint(): Endpoint | null {
    if (this.pipePath !== null) return pipeEndpoint(this.pipePath);
    return this.#name(true);
  }

  #name(peer: boolean): Endpoint | null {
    if (this.#fd < 0 || this.fdClosed) return null;
    const name = this.#engine.addon.sockName(this.#fd, peer);
    return name === null ? null : { address: name[0], port: name[1], family: name[2] };
  }

  /**
   * Bytes read from the kernel that no recv has taken yet (rule 6): what the
   * multishot recv holds (at most HOLD_BUFFERS pool buffers) or what is left
   * of a read-ahead (at most STAGE_SIZE); never both at once.
   */
  get unreadBytes(): number {
    const stage = this.stage;
    return this.#heldBytes + (stage === null ? 0 : stage.end - stage.at);
  }

  setNoDelay(enabled: boolean): void {
    if (this.pipePath === null && this.#fd >= 0 && !this.fdClosed) {
      this.#engine.addon.setNoDelay(this.#fd, enabled);
    }
  }

  // ---- readiness and non-blocking attempts ----

  poll(req: EngineRequest, events: number): void {
    const engine = this.#engine;
    if (this.closed) {
      engine.complete(req, 0, abortedError());
      return;
    }
    // What the engine holds (or knows) already: no kernel poll (still delivered later, rule 1).
    const now = this.#readyNow(events);
    if (now !== 0) {
      engine.complete(req, now, null);
      return;
    }
    this.polls ??= new PollList(engine);
    // While the host name resolves there is no descriptor yet: startConnect arms it.
    this.polls.add(this, req, events, this.#fd >= 0 && !this.fdClosed ? this.#fd : -1);
  }

  /**
   * The Readiness bits of `events` (plus ERROR) that hold without asking
   * the kernel: bytes held (rule 6), an end of stream or error seen already,
   * or a connection that failed or was reset (no descriptor to poll).
   */
  #readyNow(events: number): number {
    if (this.reset || (this.#error !== null && (this.#fd < 0 || this.fdClosed))) {
      return (
        Readiness.ERROR | (events & (Readiness.READABLE | Readiness.WRITABLE | Readiness.HANGUP))
      );
    }
    const end = this.heldEnd;
    const ended = this.eof || end === true;
    let bits = 0;
    if (end instanceof Error) bits |= Readiness.ERROR;
    if ((events & Readiness.HANGUP) !== 0 && ended) bits |= Readiness.HANGUP;
    if ((events & Readiness.READABLE) !== 0 && (ended || end !== null || this.unreadBytes > 0)) {
      bits |= Readiness.READABLE;
    }
    return bits;
  }

  tryRecv(buffer: Uint8Array): number {
    if (this.closed || this.fdClosed) throw this.#error ?? connectionClosedError();
    // A posted recv gets the bytes first (rule 7).
    if (this.#recvReq !== null || (this.recvQueue?.length ?? 0) > 0 || this.connecting) {
      return WOULD_BLOCK;
    }
    if (this.#heldBytes > 0) return this.#copyHeld(buffer);
    const stage = this.stage;
    if (stage !== null && stage.end > stage.at) {
      const n = Math.min(stage.end - stage.at, buffer.length);
      stage.buffer.copy(buffer, 0, stage.at, stage.at + n);
      stage.at += n;
      if (stage.at === stage.end) this.#dropStage();
      return n;
    }
    const end = this.heldEnd;
    if (end !== null) {
      this.heldEnd = null;
      if (end === true) {
        this.eof = true;
      } else {
        this.#error ??= end;
        throw end;
      }
    }
    if (this.eof) return 0;
    if (this.#error !== null) throw this.#error;
    if (this.#multiId !== -1) {
      // A pooled recv's multishot is still armed: what it takes from the kernel comes in
      // order through it, so a direct recv now could overtake bytes it already took. Stop
      // it; its arrivals are held for the next call, and after it calls go to the kernel.
      this.#stopMulti();
      return WOULD_BLOCK;
    }
    const n = this.#engine.addon.tryRecv(this.#fd, buffer);
    if (n >= 0) {
      if (n === 0) this.eof = true;
      return n;
    }
    if (n === EAGAIN) return WOULD_BLOCK;
    const error = uringError(n, 'read');
    this.#error ??= error;
    throw error;
  }

  /** Copies held pool bytes into `target` (oldest first, across arrivals), for tryRecv. */
  #copyHeld(target: Uint8Array): number {
    const engine = this.#engine;
    const held = this.#held as number[];
    let n = 0;
    let i = 0;
    while (i < held.length && n < target.length) {
      const bid = held[i] as number;
      const offset = held[i + 1] as number;
      const bytes = held[i + 2] as number;
      const take = Math.min(bytes, target.length - n);
      engine.copyFromPool(bid, offset, take, n === 0 ? target : target.subarray(n));
      n += take;
      if (take < bytes) {
        held[i + 1] = offset + take;
        held[i + 2] = bytes - take;
        break;
      }
      i += 3;
      engine.releaseBuffer(bid);
    }
    if (i > 0) held.splice(0, i);
    this.#heldBytes -= n;
    return n;
  }

  trySend(data: Uint8Array): number {
    if (this.#error !== null) throw this.#error;
    // After a shutdown (posted, maybe not submitted yet) no byte may follow the FIN.
    if (this.closed || this.fdClosed || this.shutdownReq !== null) throw connectionClosedError();
    // Posted sends leave first (rule 7).
    if (this.#sendId !== -1 || (this.sendQueue?.length ?? 0) > 0 || this.connecting) {
      return WOULD_BLOCK;
    }
    const n = this.#engine.addon.trySend(this.#fd, data);
    if (n >= 0) return n;
    if (n === EAGAIN) return WOULD_BLOCK;
    const error = uringError(n, 'write');
    this.#error ??= error;
    throw error;
  }

  detach(): number {
    const busy =
      this.#recvReq !== null ||
      (this.recvQueue?.length ?? 0) > 0 ||
      this.#sendId !== -1 ||
      (this.sendQueue?.length ?? 0) > 0 ||
      this.shutdownReq !== null ||
      this.connecting ||
      (this.polls?.entries.length ?? 0) > 0;
    if (this.closed || this.fdClosed || this.#fd < 0) {
      throw new UsageError(
        'OVL_ERR_HANDLE_CLOSED',
        'detach(): the stream has no descriptor any more',
      );
    }
    if (busy || this.unreadBytes > 0) {
      throw new UsageError(
        'OVL_ERR_INVALID_ARGUMENT',
        'detach() needs a stream with no operation pending and nothing received unread',
      );
    }
    if (this.#multiId !== -1) {
      // Armed by an earlier pooled recv: the kernel may still take bytes through it.
      this.#stopMulti();
      throw new UsageError(
        'OVL_ERR_INVALID_ARGUMENT',
        'detach(): a pooled recv left a multishot receive armed in the kernel; it is being stopped: ' +
          'let the completions of this turn be delivered, take any bytes it held (unreadBytes), then detach again',
      );
    }
    const fd = this.#fd;
    this.closed = true;
    this.fdClosed = true;
    this.heldEnd = null;
    this.#dropStage();
    this.#engine.addon.disown(this.#engine.ring, fd);
    return fd;
  }

  // ---- connect ----

  /** @internal `address` is an IP literal (port >= 0) or a pipe path (port -1). */
  startConnect(address: string, port: number): void {
    const req = this.connectReq;
    if (req === null || this.closed) return;
    const engine = this.#engine;
    const id = engine.id(this, KIND_CONNECT);
    const fd =
      port < 0
        ? engine.addon.connectUnix(engine.ring, id, address)
        : engine.addon.connectTcp(engine.ring, id, address, port);
    if (fd < 0) {
      engine.dropId(id);
      this.connectFailed(uringError(fd, 'connect', port < 0 ? { address } : { address, port }));
      return;
    }
    this.#fd = fd;
    this.connectId = id;
    this.connectAddress = port < 0 ? { address } : { address, port };
    engine.submitSoon();
    // Polls posted while the host name resolved: after the connect, in the same submit.
    this.polls?.armWaiting(this, fd);
  }

  /** @internal The connect failed before reaching the kernel (lookup, socket()). */
  connectFailed(error: Error): void {
    const req = this.connectReq;
    if (req === null) return;
    this.connectReq = null;
    this.#error ??= error;
    this.#engine.complete(req, 0, error);
    this.#failWaiting(error);
    this.polls?.completeWaiting((events) => this.#readyNow(events));
  }

  // ---- recv ----

  recv(req: EngineRequest, buffer: Uint8Array): void {
    this.#postRecv(req, buffer);
  }

  recvPooled(req: EngineRequest): void {
    const poolError = this.#engine.poolReady();
    if (poolError !== null) {
      this.#engine.complete(req, 0, poolError);
      return;
    }
    this.#postRecv(req, null);
  }

  #postRecv(req: EngineRequest, buffer: Uint8Array | null, fromQueue = false): void {
    if (this.#error !== null) {
      this.#engine.complete(req, 0, this.#error);
    } else if (this.eof || this.closed) {
      this.#engine.complete(req, 0, null);
    } else if (
      this.#recvReq !== null ||
      this.connecting ||
      (!fromQueue && this.recvQueue !== null && this.recvQueue.length > 0)
    ) {
      this.recvQueue ??= [];
      this.recvQueue.push({ req, buffer });
    } else {
      this.#recvReq = req;
      this.#recvBuffer = buffer;
      this.pooledRecv = buffer === null;
      this.recvCancelled = false;
      this.#serveRecv();
    }
  }

  private get connecting(): boolean {
    return this.connectReq !== null;
  }

  /**
   * Gives `#recvReq` (not in the kernel) what is held, or asks the kernel:
   * arms the multishot for a pooled recv, or posts a recv (a recv into a
   * buffer first waits for the multishot to end, so no arrival overtakes it).
   * Returns true when it completed the request.
   */
  #serveRecv(): boolean {
    const engine = this.#engine;
    const req = this.#recvReq as EngineRequest;
    if (this.#heldBytes > 0) {
      this.#recvReq = null;
      engine.complete(req, this.#takeHeld(req), null);
      return true;
    }
    const stage = this.stage;
    if (stage !== null && stage.end > stage.at) {
      this.#recvReq = null;
      const target = this.#recvBuffer;
      this.#recvBuffer = null;
      engine.complete(req, this.#takeStaged(req, stage, target), null);
      return true;
    }
    const end = this.heldEnd;
    if (end !== null) {
      this.#recvReq = null;
      this.#recvBuffer = null;
      this.heldEnd = null;
      if (end === true) this.eof = true;
      else this.#error ??= end;
      engine.complete(req, 0, end === true ? null : end);
      return true;
    }
    if (this.pooledRecv) {
      if (this.poolWait) return false; // retryPooled() serves it
      if (!engine.multishotRecv) this.#postRecvSqe(null);
      else if (this.#multiId === -1) this.#armMulti();
    } else if (this.#multiId !== -1) {
      this.#stopMulti();
    } else {
      this.#postRecvSqe(this.#recvBuffer);
    }
    return false;
  }

  /** Hands the oldest held bytes to `req`: a lease (pooled) or a copy into its buffer. */
  #takeHeld(req: EngineRequest): number {
    const engine = this.#engine;
    const held = this.#held as number[];
    const bid = held[0] as number;
    const offset = held[1] as number;
    const bytes = held[2] as number;
    const target = this.#recvBuffer;
    this.#recvBuffer = null;
    let n = bytes;
    if (target === null) {
      req.lease = engine.lease(bid, offset, bytes);
      held.splice(0, 3);
    } else {
      n = Math.min(bytes, target.length);
      engine.copyFromPool(bid, offset, n, target);
      if (n < bytes) {
        held[1] = offset + n;
        held[2] = bytes - n;
      } else {
        held.splice(0, 3);
        engine.releaseBuffer(bid);
      }
    }
    this.#heldBytes -= n;
    return n;
  }

  /** Hands read-ahead bytes to `req`: copied into its buffer, or (pooled) into a lease of its own. */
  #takeStaged(req: EngineRequest, stage: Stage, target: Uint8Array | null): number {
    const available = stage.end - stage.at;
    let n = available;
    if (target === null) {
      req.lease = new CopyLease(Buffer.from(stage.buffer.subarray(stage.at, stage.end)));
    } else {
      n = Math.min(available, target.length);
      stage.buffer.copy(target, 0, stage.at, stage.at + n);
    }
    stage.at += n;
    if (stage.at === stage.end) this.#dropStage();
    return n;
  }

  /** Gives the read-ahead buffer back, unless the kernel is still reading into it. */
  #dropStage(): void {
    const stage = this.stage;
    if (stage === null || stage.reading) return;
    this.stage = null;
    this.#engine.giveStage(stage);
  }

  #armMulti(): void {
    const engine = this.#engine;
    const id = engine.id(this, KIND_RECV_MULTI);
    const rc = engine.addon.recvPooled(engine.ring, id, this.#fd, HOLD_BUFFERS * POOL_BUFFER_SIZE);
    if (rc < 0) {
      engine.dropId(id);
      const req = this.#recvReq as EngineRequest;
      this.#recvReq = null;
      engine.complete(req, 0, uringError(rc, 'read'));
      return;
    }
    this.#multiId = id;
    engine.submitSoon();
  }

  #stopMulti(): void {
    if (this.#multiId === -1 || this.multiStopping) return;
    this.multiStopping = true;
    const engine = this.#engine;
    engine.addon.cancel(engine.ring, this.#multiId);
    engine.submitSoon();
  }

  #postRecvSqe(buffer: Uint8Array | null): void {
    const engine = this.#engine;
    const id = engine.id(this, KIND_RECV);
    let stage: Stage | null = null;
    if (buffer !== null && this.lastRecvFull && buffer.length < STAGE_SIZE) {
      // More is likely waiting than this buffer holds: read ahead (see STAGE_SIZE).
      stage = engine.takeStage();
      stage.reading = true;
      this.stage = stage;
    }
    const rc =
      buffer === null
        ? engine.addon.recvPooled(engine.ring, id, this.#fd, 0)
        : stage !== null
          ? engine.addon.recv(engine.ring, id, this.#fd, stage.buffer, false)
          : engine.addon.recv(engine.ring, id, this.#fd, buffer, !this.lastRecvFull);
    if (rc < 0) {
      if (stage !== null) {
        stage.reading = false;
        this.#dropStage();
      }
      engine.dropId(id);
      const req = this.#recvReq as EngineRequest;
      this.#recvReq = null;
      this.#recvBuffer = null;
      engine.complete(req, 0, uringError(rc, 'read'));
      return;
    }
    this.#recvId = id;
    engine.submitSoon();
  }

  /** @internal A pool buffer came back: serve the pooled recv that waited for one. */
  retryPooled(): void {
    this.poolWait = false;
    if (this.#recvReq === null || this.#recvId !== -1 || this.closed) return;
    if (this.#serveRecv()) this.#nextRecv();
  }

  /** A pooled recv found no pool buffer: publish more, or wait for a lease to come back. */
  #outOfBuffers(): boolean {
    const engine = this.#engine;
    if (engine.growPool()) return true;
    this.poolWait = true;
    engine.waitForBuffer(this);
    return false;
  }

  #onRecv(res: number, flags: number): void {
    const engine = this.#engine;
    const req = this.#recvReq as EngineRequest;
    this.#recvId = -1;
    const bid = (flags & IORING_CQE_F_BUFFER) !== 0 ? flags >>> IORING_CQE_BUFFER_SHIFT : -1;
    if (res === ENOBUFS && this.pooledRecv && !this.closed && !this.recvCancelled) {
      if (this.#outOfBuffers()) this.#postRecvSqe(null);
      return;
    }
    const buffer = this.#recvBuffer;
    this.#recvReq = null;
    this.#recvBuffer = null;
    const stage = this.stage;
    if (stage?.reading) {
      stage.reading = false;
      if (res > 0 && !this.closed) {
        // Read ahead: the recv gets what fits, the rest waits in the stage.
        stage.at = 0;
        stage.end = res;
        this.lastRecvFull = res > (buffer as Uint8Array).length;
        engine.complete(req, this.#takeStaged(req, stage, buffer), null);
        this.#nextRecv();
        this.#heldChanged();
        return;
      }
      this.#dropStage();
    }
    if (this.closed || res === ECANCELED || (this.recvCancelled && res < 0)) {
      if (bid >= 0) engine.releaseBuffer(bid);
      engine.complete(req, 0, abortedError());
    } else if (res < 0) {
      const error = uringError(res, 'read');
      this.#error ??= error;
      engine.complete(req, 0, error);
    } else if (res === 0) {
      if (bid >= 0) engine.releaseBuffer(bid);
      this.eof = true;
      engine.complete(req, 0, null);
    } else {
      if (this.pooledRecv) req.lease = bid >= 0 ? engine.lease(bid, 0, res) : null;
      else this.lastRecvFull = res === buffer?.length;
      engine.complete(req, res, null);
    }
    this.#nextRecv();
  }

  /**
   * A CQE of the multishot recv: an arrival is held (or goes straight to the
   * recv waiting for it); end of stream and errors wait behind held bytes.
   */
  #onMulti(res: number, flags: number): void {
    const engine = this.#engine;
    const bid = (flags & IORING_CQE_F_BUFFER) !== 0 ? flags >>> IORING_CQE_BUFFER_SHIFT : -1;
    if ((flags & IORING_CQE_F_MORE) === 0) {
      this.#multiId = -1;
      this.multiStopping = false;
    }
    const gone = this.closed || this.reset;
    if (res > 0 && bid >= 0 && !gone) {
      this.#held ??= [];
      this.#held.push(bid, 0, res);
      this.#heldBytes += res;
      if (this.#held.length >= HOLD_BUFFERS * 3) this.#stopMulti();
    } else {
      if (bid >= 0) engine.releaseBuffer(bid);
      if (res === ENOBUFS) {
        if (!gone) this.#outOfBuffers();
      } else if (res === EINVAL && this.#heldBytes === 0 && this.heldEnd === null) {
        engine.multishotRecv = false; // a kernel before 6.0: single-shot pooled recvs from now on
      } else if (res <= 0 && res !== ECANCELED && !gone) {
        this.heldEnd ??= res === 0 ? true : uringError(res, 'read');
      }
    }
    if (this.#recvReq !== null && this.#recvId === -1 && !gone && this.#serveRecv()) {
      this.#nextRecv();
    }
    this.#heldChanged();
  }

  /**
   * Bytes (or end of stream) were taken in from the kernel for no recv: a
   * READABLE poll in the kernel might not see them there any more, so it
   * completes from what is held (its POLL_ADD is cancelled).
   */
  #heldChanged(): void {
    const polls = this.polls;
    if (polls === null || polls.entries.length === 0 || this.closed) return;
    if (this.unreadBytes === 0 && this.heldEnd === null) return;
    polls.resolve((events) => this.#readyNow(events));
  }

  /** Gives back every held pool buffer (the stream is closing or reset). */
  #dropHeld(): void {
    const held = this.#held;
    if (held === null) return;
    this.#held = null;
    this.#heldBytes = 0;
    for (let i = 0; i < held.length; i += 3) this.#engine.releaseBuffer(held[i] as number);
  }

  #nextRecv(): void {
    const queue = this.recvQueue;
    if (queue === null) return;
    while (this.#recvReq === null && queue.length > 0 && !this.connecting) {
      const next = queue.shift() as RecvWaiting;
      this.#postRecv(next.req, next.buffer, true);
    }
    if (queue.length === 0 && this.recvQueue === queue) this.recvQueue = null;
  }

  // ---- send ----

  send(req: EngineRequest, data: Uint8Array | readonly Uint8Array[], size: number): void {
    if (this.#error !== null || this.closed) {
      this.#engine.complete(req, 0, this.#error ?? connectionClosedError());
      return;
    }
    const idle = this.#sendId === -1 && !this.connecting;
    if (idle && this.sendQueue === null && ArrayBuffer.isView(data)) {
      // The common case (one send at a time, one buffer): no queue, no array.
      this.#sendOne(req, data as Uint8Array, size);
      return;
    }
    this.sendQueue ??= [];
    this.sendQueue.push({ req, data, size });
    if (idle) this.#startSends();
  }

  #sendOne(req: EngineRequest, data: Uint8Array, size: number): void {
    const engine = this.#engine;
    const id = engine.id(this, KIND_SEND);
    const rc = engine.addon.send(engine.ring, id, this.#fd, data);
    if (rc < 0) {
      engine.dropId(id);
      engine.complete(req, 0, uringError(rc, 'write'));
      return;
    }
    this.#sendId = id;
    this.#sendReq = req;
    this.#sendData = data;
    this.#inFlightBytes = size;
    this.sendCancelled = false;
    engine.submitSoon();
  }

  /** Sends everything waiting in one operation (one sendmsg with an iovec for several parts). */
  #startSends(): void {
    const queue = this.sendQueue;
    if (queue === null || queue.length === 0) {
      this.sendQueue = null;
      this.#maybeShutdown();
      return;
    }
    const first = queue[0] as QueuedSend;
    if (queue.length === 1 && ArrayBuffer.isView(first.data)) {
      this.sendQueue = null;
      this.#sendOne(first.req, first.data as Uint8Array, first.size);
      if (this.#sendId === -1) this.#startSends();
      return;
    }
    const engine = this.#engine;
    const id = engine.id(this, KIND_SEND);
    const parts: Uint8Array[] = [];
    let taken = 0;
    for (const entry of queue) {
      const n = ArrayBuffer.isView(entry.data) ? 1 : (entry.data as readonly Uint8Array[]).length;
      if (taken > 0 && parts.length + n > MAX_IOV) break;
      if (ArrayBuffer.isView(entry.data)) parts.push(entry.data as Uint8Array);
      else for (const part of entry.data as readonly Uint8Array[]) parts.push(part);
      taken++;
    }
    const batch = taken === queue.length ? queue : queue.splice(0, taken);
    if (batch === queue) this.sendQueue = null;
    if (parts.length === 0) parts.push(EMPTY);
    const rc =
      parts.length > MAX_IOV
        ? -22 // EINVAL: one send with more parts than the kernel gathers
        : engine.addon.sendv(engine.ring, id, this.#fd, parts, parts.length);
    let bytes = 0;
    for (const entry of batch) bytes += entry.size;
    if (rc < 0) {
      engine.dropId(id);
      const error = uringError(rc, 'write');
      for (const entry of batch) engine.complete(entry.req, 0, error);
      this.#startSends();
      return;
    }
    this.#sendId = id;
    this.inFlight = batch;
    this.#inFlightBytes = bytes;
    this.sendCancelled = false;
    engine.submitSoon();
  }

  /** True when `req` is a send the kernel has (alone, or in a gathered batch). */
  #sendInFlight(req: EngineRequest): boolean {
    return (
      this.#sendId !== -1 &&
      (req === this.#sendReq || (this.inFlight?.some((entry) => entry.req === req) ?? false))
    );
  }

  #onSend(res: number): void {
    const engine = this.#engine;
    const one = this.#sendReq;
    const total = this.#inFlightBytes;
    const batch = one === null ? (this.inFlight as QueuedSend[]) : null;
    const cancelled = this.sendCancelled;
    this.#sendId = -1;
    this.#sendReq = null;
    this.#sendData = null;
    this.inFlight = null;
    this.#inFlightBytes = 0;
    if (res >= 0 && res === total) {
      // Every byte taken: complete normally, even if a cancel came too late; after a close, aborted.
      if (one !== null) {
        engine.complete(one, total, this.closed ? abortedError() : null);
      } else {
        for (const entry of batch as QueuedSend[]) {
          engine.complete(entry.req, entry.size, this.closed ? abortedError() : null);
        }
      }
    } else {
      // Cancelled, failed, or short: the bytes that moved belong to the oldest sends.
      const error =
        this.closed || res === ECANCELED || cancelled
          ? abortedError()
          : res < 0
            ? uringError(res, 'write')
            : null;
      const entries = batch ?? [{ req: one as EngineRequest, data: EMPTY, size: total }];
      let moved = Math.max(res, 0);
      const untouched: QueuedSend[] = [];
      for (const entry of entries) {
        const n = Math.min(entry.size, moved);
        moved -= n;
        if (n === entry.size && entry.size > 0) engine.complete(entry.req, n, null);
        else if (error === null && n === 0 && batch !== null) untouched.push(entry);
        else engine.complete(entry.req, n, error);
      }
      // A short send without an error: what did not start is sent again, first.
      if (untouched.length > 0) this.sendQueue = [...untouched, ...(this.sendQueue ?? [])];
      if (error !== null && !(error instanceof AbortedError)) this.#error ??= error;
      if ((cancelled || res === ECANCELED) && !this.closed) this.#resetToCancel();
    }
    if (this.closed) {
      this.#abortQueued();
    } else if (!this.reset) {
      if (this.#error !== null) this.#failWaiting(this.#error);
      else this.#startSends();
    }
    this.#maybeCloseFd();
  }

  // ---- shutdown ----

  shutdown(req: EngineRequest): void {
    if (this.#error !== null || this.closed || this.shutdownReq !== null) {
      this.#engine.complete(req, 0, this.#error ?? connectionClosedError());
      return;
    }
    this.shutdownReq = req;
    this.#maybeShutdown();
  }

  /** The FIN leaves once every earlier send has: shutdown waits for them here. */
  #maybeShutdown(): void {
    const req = this.shutdownReq;
    if (req === null || this.shutdownId !== -1 || this.connecting) return;
    if (this.#sendId !== -1 || (this.sendQueue?.length ?? 0) > 0) return;
    const engine = this.#engine;
    const id = engine.id(this, KIND_SHUTDOWN);
    const rc = engine.addon.shutdown(engine.ring, id, this.#fd);
    if (rc < 0) {
      engine.dropId(id);
      this.shutdownReq = null;
      engine.complete(req, 0, uringError(rc, 'shutdown'));
      return;
    }
    this.shutdownId = id;
    engine.submitSoon();
  }

  #onShutdown(res: number): void {
    const req = this.shutdownReq as EngineRequest;
    this.shutdownReq = null;
    this.shutdownId = -1;
    const error =
      this.closed || res === ECANCELED
        ? abortedError()
        : res < 0
          ? uringError(res, 'shutdown')
          : null;
    this.#engine.complete(req, 0, error);
  }

  // ---- completions ----

  onCqe(kind: number, id: number, res: number, flags: number): void {
    switch (kind) {
      case KIND_RECV:
        this.#onRecv(res, flags);
        break;
      case KIND_RECV_MULTI:
        this.#onMulti(res, flags);
        break;
      case KIND_SEND:
        this.#onSend(res);
        return; // #onSend closes the descriptor itself when due
      case KIND_SHUTDOWN:
        this.#onShutdown(res);
        break;
      case KIND_CONNECT:
        this.#onConnect(res);
        break;
      case KIND_POLL:
        this.polls?.onCqe(id, res);
        break;
    }
    this.#maybeCloseFd();
  }

  #onConnect(res: number): void {
    const engine = this.#engine;
    const req = this.connectReq as EngineRequest;
    this.connectReq = null;
    this.connectId = -1;
    if (this.closed || res === ECANCELED) {
      engine.complete(req, 0, abortedError());
      return;
    }
    if (res < 0) {
      const error = uringError(res, 'connect', this.connectAddress ?? undefined);
      this.#error ??= error;
      engine.complete(req, 0, error);
      this.#failWaiting(error);
      return;
    }
    req.result = this;
    engine.complete(req, 0, null);
    // Operations posted while connecting start now, in order.
    this.#nextRecv();
    this.#startSends();
  }

  // ---- cancel and close ----

  cancel(req: EngineRequest | null): boolean {
    const engine = this.#engine;
    if (req === null) {
      const any =
        this.#recvReq !== null ||
        (this.recvQueue?.length ?? 0) > 0 ||
        this.#sendId !== -1 ||
        (this.sendQueue?.length ?? 0) > 0 ||
        this.shutdownReq !== null ||
        this.connectReq !== null ||
        (this.polls?.entries.length ?? 0) > 0;
      if (this.connectReq !== null || this.#sendId !== -1 || this.shutdownId !== -1) {
        // Something the kernel may have half done: reset (see notes).
        this.#resetToCancel();
        return any;
      }
      this.#abortQueued();
      if (this.#recvReq !== null) this.#cancelRecv();
      this.polls?.cancelAll(true);
      return any;
    }
    const queued = this.recvQueue?.findIndex((entry) => entry.req === req) ?? -1;
    if (queued >= 0) {
      this.recvQueue?.splice(queued, 1);
      engine.complete(req, 0, abortedError());
      return true;
    }
    if (req === this.#recvReq) return this.#cancelRecv();
    const waiting = this.sendQueue?.findIndex((entry) => entry.req === req) ?? -1;
    if (waiting >= 0) {
      this.sendQueue?.splice(waiting, 1);
      engine.complete(req, 0, abortedError());
      this.#maybeShutdown();
      return true;
    }
    if (this.#sendInFlight(req)) {
      if (this.sendCancelled) return false;
      this.sendCancelled = true;
      engine.addon.cancel(engine.ring, this.#sendId);
      engine.submitSoon();
      return true;
    }
    if (req === this.shutdownReq) {
      if (this.shutdownId === -1) {
        this.shutdownReq = null;
        engine.complete(req, 0, abortedError());
        return true;
      }
      engine.addon.cancel(engine.ring, this.shutdownId);
      engine.submitSoon();
      return true;
    }
    if (req === this.connectReq) {
      this.#resetToCancel();
      return true;
    }
    return this.polls?.cancel(req) ?? false;
  }

  #cancelRecv(): boolean {
    if (this.recvCancelled) return false;
    this.recvCancelled = true;
    const engine = this.#engine;
    if (this.#recvId === -1) {
      // Served by the multishot, or waiting (for a pool buffer, or for the multishot
      // to end): nothing of this request is in the kernel. What arrives stays held.
      if (this.poolWait) {
        this.poolWait = false;
        engine.stopWaiting(this);
      }
      const req = this.#recvReq as EngineRequest;
      this.#recvReq = null;
      this.#recvBuffer = null;
      engine.complete(req, 0, abortedError());
      this.#nextRecv();
      return true;
    }
    engine.addon.cancel(engine.ring, this.#recvId);
    engine.submitSoon();
    return true;
  }

  /** Aborts every operation and resets the connection; later operations fail with ECONNABORTED. */
  #resetToCancel(): void {
    if (this.reset) return;
    this.reset = true;
    this.abortive = true;
    this.#error ??= new OsError(
      'ECONNABORTED',
      ECONNABORTED,
      'cancel',
      'the connection was reset to cancel an operation the OS had not finished',
    );
    this.#abortQueued();
    this.#dropHeld();
    this.#dropStage();
    this.#cancelInKernel(true);
    this.#maybeCloseFd();
  }

  /** Cancels what is in the kernel (the send too when `sends`). */
  #cancelInKernel(sends: boolean): void {
    const engine = this.#engine;
    const connect = this.connectReq;
    if (connect !== null && this.connectId === -1) {
      // Still resolving the host name: nothing in the kernel yet.
      this.connectReq = null;
      engine.complete(connect, 0, abortedError());
    }
    if (sends && this.#fd >= 0 && !this.fdClosed) {
      // Everything of this descriptor: one IORING_OP_ASYNC_CANCEL (FD | ALL).
      if (this.#recvReq !== null && !this.recvCancelled) {
        if (this.#recvId === -1)
          this.#cancelRecv(); // not in the kernel (see #cancelRecv)
        else this.recvCancelled = true;
      }
      if (this.#sendId !== -1) this.sendCancelled = true;
      if (this.#multiId !== -1) this.multiStopping = true;
      this.polls?.cancelAll(false);
      engine.addon.cancelFd(engine.ring, this.#fd);
    } else {
      // A graceful close: everything but the send in flight, one by one.
      if (this.#recvReq !== null && !this.recvCancelled) this.#cancelRecv();
      this.#stopMulti();
      this.polls?.cancelAll(true);
      for (const id of [this.connectId, this.shutdownId, sends ? this.#sendId : -1]) {
        if (id !== -1) engine.addon.cancel(engine.ring, id);
      }
      if (sends && this.#sendId !== -1) this.sendCancelled = true;
    }
    engine.submitSoon();
  }

  /** Completes every request still waiting here (not in the kernel) as aborted. */
  #abortQueued(): void {
    const engine = this.#engine;
    const recvs = this.recvQueue;
    const sends = this.sendQueue;
    this.recvQueue = null;
    this.sendQueue = null;
    for (const entry of recvs ?? []) engine.complete(entry.req, 0, abortedError());
    for (const entry of sends ?? []) engine.complete(entry.req, 0, abortedError());
    const shutdown = this.shutdownReq;
    if (shutdown !== null && this.shutdownId === -1) {
      this.shutdownReq = null;
      engine.complete(shutdown, 0, abortedError());
    }
  }

  /** The connection failed: requests waiting here complete with `error`. */
  #failWaiting(error: Error): void {
    const engine = this.#engine;
    const recvs = this.recvQueue;
    const sends = this.sendQueue;
    this.recvQueue = null;
    this.sendQueue = null;
    for (const entry of recvs ?? []) engine.complete(entry.req, 0, error);
    for (const entry of sends ?? []) engine.complete(entry.req, 0, error);
    const shutdown = this.shutdownReq;
    if (shutdown !== null && this.shutdownId === -1) {
      this.shutdownReq = null;
      engine.complete(shutdown, 0, error);
    }
  }

  close(abortive: boolean): void {
    if (this.closed) {
      // destroy() after close(): stop waiting for a send in flight.
      if (abortive && !this.abortive) {
        this.abortive = true;
        this.#cancelInKernel(true);
      }
      return;
    }
    this.closed = true;
    this.abortive = abortive || this.abortive;
    this.#abortQueued();
    this.#dropHeld();
    this.#dropStage();
    this.heldEnd = null;
    if (this.poolWait) {
      this.poolWait = false;
      this.#engine.stopWaiting(this);
    }
    // A graceful close lets a send in flight finish (its bytes precede the FIN), for a while.
    this.#cancelInKernel(abortive);
    if (!abortive && this.#sendId !== -1) {
      this.linger = setTimeout(() => this.close(true), LINGER_MS);
      this.linger.unref();
    }
    this.#maybeCloseFd();
  }

  /** Closes the descriptor once nothing of this stream is in the kernel. */
  #maybeCloseFd(): void {
    if (this.fdClosed || !(this.closed || this.reset)) return;
    if (this.#recvId !== -1 || this.#sendId !== -1 || this.connectId !== -1) return;
    if (this.#multiId !== -1) return;
    if (this.shutdownId !== -1) return;
    if (this.polls?.inKernel) return;
    if (this.linger !== null) {
      clearTimeout(this.linger);
      this.linger = null;
    }
    this.fdClosed = true;
    if (this.#fd >= 0) this.#engine.addon.close(this.#engine.ring, this.#fd, this.abortive);
  }
}

/** A listening socket with a multishot accept. */
class UringListener implements EngineListener, Owner {
  readonly #engine: UringEngine;
  readonly #fd: number;
  readonly #backlog: number;
  readonly #pipePath: string | null;
  readonly #accepts: EngineRequest[] = [];
  readonly #ready: UringStream[] = [];
  #acceptId = -1;
  /** The multishot accept is being cancelled because `#ready` is full. */
  #pausing = false;
  #closed = false;
  #fdClosed = false;
  #retry: NodeJS.Timeout | null = null;
  /** Delay before the next retry after a failed accept (EMFILE, …). */
  #backoffMs = ACCEPT_BACKOFF_MIN_MS;
  onAcceptError: ((error: Error, retryMs: number) => void) | null = null;
  #polls: PollList | null = null;
  /**
   * The listening socket was made blocking: this kernel's io_uring accept
   * fails at once on an O_NONBLOCK listener (-EAGAIN) instead of waiting.
   */
  #blockingFd = false;
  readonly endpoint: Endpoint;

  constructor(engine: UringEngine, fd: number, backlog: number, pipePath: string | null) {
    this.#engine = engine;
    this.#fd = fd;
    this.#backlog = backlog;
    this.#pipePath = pipePath;
    const name = pipePath === null ? engine.addon.sockName(fd, false) : null;
    this.endpoint =
      name === null
        ? pipeEndpoint(pipePath ?? '')
        : { address: name[0], port: name[1], family: name[2] };
  }

  accept(req: EngineRequest): void {
    const engine = this.#engine;
    const ready = this.#ready.shift();
    if (ready !== undefined) {
      req.result = ready;
      engine.complete(req, 0, null);
    } else if (this.#closed) {
      engine.complete(req, 0, abortedError());
    } else {
      this.#accepts.push(req);
      this.#arm();
    }
  }

  poll(req: EngineRequest, events: number): void {
    const engine = this.#engine;
    if (this.#closed) {
      engine.complete(req, 0, abortedError());
    } else if ((events & Readiness.READABLE) !== 0 && this.#readyForTry()) {
      engine.complete(req, Readiness.READABLE, null);
    } else {
      this.#polls ??= new PollList(engine);
      this.#polls.add(this, req, events, this.#fd);
    }
  }

  /** Connections the multishot accept took are waiting, and no posted accept wants them. */
  #readyForTry(): boolean {
    return this.#ready.length > 0 && this.#accepts.length === 0;
  }

  tryAccept(): EngineStream | null {
    if (this.#closed) return null;
    if (this.#accepts.length > 0) return null; // posted accepts are served first
    const ready = this.#ready.shift();
    if (ready !== undefined) return ready;
    const engine = this.#engine;
    // A blocking listener: accept4 only when poll(2) says one waits, and not while the
    // multishot accept is armed (it would take a connection between the two calls).
    if (this.#blockingFd && this.#acceptId !== -1) return null;
    const fd = engine.addon.tryAccept(engine.ring, this.#fd, this.#blockingFd);
    if (fd >= 0) return new UringStream(engine, fd, null, this.#pipePath);
    if (fd === EAGAIN) return null;
    throw uringError(fd, 'accept');
  }

  /** Posts the multishot accept unless it is armed already. */
  #arm(): void {
    if (this.#acceptId !== -1 || this.#closed || this.#retry !== null) return;
    const engine = this.#engine;
    const id = engine.id(this, KIND_ACCEPT);
    const rc = engine.addon.accept(engine.ring, id, this.#fd);
    if (rc < 0) {
      engine.dropId(id);
      const error = uringError(rc, 'accept');
      for (const req of this.#accepts.splice(0)) engine.complete(req, 0, error);
      return;
    }
    this.#acceptId = id;
    engine.submitSoon();
  }

  onCqe(kind: number, id: number, res: number, flags: number): void {
    if (kind === KIND_POLL) {
      this.#polls?.onCqe(id, res);
      if (this.#closed) this.#maybeCloseFd();
      return;
    }
    const engine = this.#engine;
    const more = (flags & IORING_CQE_F_MORE) !== 0;
    if (!more) this.#acceptId = -1;
    // Kernels before "io_uring: allow async accept on O_NONBLOCK sockets" (5.18; 5.19+ is
    // required, but distributions backport selectively) fail the accept instead of waiting:
    // the listening socket becomes blocking, and tryAccept polls before accept4.
    const unblocked = res === EAGAIN && !this.#blockingFd;
    if (unblocked) {
      this.#blockingFd = true;
      engine.addon.fdSetBlocking(this.#fd, true);
    }
    if (res >= 0) {
      this.#backoffMs = ACCEPT_BACKOFF_MIN_MS;
      const stream = new UringStream(engine, res, null, this.#pipePath);
      const req = this.#accepts.shift();
      if (req !== undefined) {
        req.result = stream;
        engine.complete(req, 0, null);
      } else if (this.#closed) {
        stream.close(true);
      } else {
        this.#ready.push(stream);
        // A poll in the kernel might not see it: the connection left the listen queue.
        this.#polls?.resolve((events) => events & Readiness.READABLE);
        // Enough connections wait for an accept: stop taking more from the kernel (the
        // multishot accept is cancelled; a CQE or two may still land), so that further
        // clients wait in the kernel's listen backlog, as with a plain listening socket,
        // instead of being accepted and reset.
        if (this.#ready.length >= this.#backlog && more && !this.#pausing) {
          this.#pausing = true;
          engine.addon.cancel(engine.ring, this.#acceptId);
          engine.submitSoon();
        }
      }
    }
    if (!more) this.#pausing = false;
    if (this.#closed) {
      this.#maybeCloseFd();
    } else if (!more) {
      if (res < 0 && res !== ECANCELED && !unblocked) {
        // EMFILE and friends: back off (50 ms, doubling to 1 s) rather than spin; the
        // connections wait in the kernel's backlog meanwhile, and posted accepts stay pending.
        const delay = this.#backoffMs;
        this.#backoffMs = Math.min(ACCEPT_BACKOFF_MAX_MS, delay * 2);
        this.#retry = setTimeout(() => {
          this.#retry = null;
          if (this.#accepts.length > 0) this.#arm();
        }, delay);
        this.onAcceptError?.(uringError(res, 'accept'), delay);
      } else if (this.#accepts.length > 0) {
        this.#arm();
      }
    }
  }

  cancel(req: EngineRequest | null): boolean {
    const engine = this.#engine;
    if (req === null) {
      const any = this.#accepts.length > 0 || (this.#polls?.entries.length ?? 0) > 0;
      for (const r of this.#accepts.splice(0)) engine.complete(r, 0, abortedError());
      this.#polls?.cancelAll(true);
      return any;
    }
    const i = this.#accepts.indexOf(req);
    if (i < 0) return this.#polls?.cancel(req) ?? false;
    this.#accepts.splice(i, 1);
    engine.complete(req, 0, abortedError());
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.cancel(null);
    for (const stream of this.#ready.splice(0)) stream.close(true);
    if (this.#retry !== null) {
      clearTimeout(this.#retry);
      this.#retry = null;
    }
    if (this.#acceptId !== -1) {
      this.#engine.addon.cancel(this.#engine.ring, this.#acceptId);
      this.#engine.submitSoon();
    }
    this.#maybeCloseFd();
  }

  #maybeCloseFd(): void {
    if (this.#fdClosed || this.#acceptId !== -1 || this.#polls?.inKernel) return;
    this.#fdClosed = true;
    // As libuv does: unlink the socket file before closing, so a new listener's file is never removed.
    if (this.#pipePath !== null) {
      try {
        unlinkSync(this.#pipePath);
      } catch {
        // already gone
      }
    }
    this.#engine.addon.close(this.#engine.ring, this.#fd, false);
  }
}
