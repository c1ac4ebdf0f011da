/**
 * A connected (or connecting) socket of the io_uring engine: its recvs
 * (plain, read-ahead, pooled with one multishot recv), sends (one sendmsg in
 * the kernel at a time, later ones gathered), shutdown, connect, readiness,
 * non-blocking attempts, cancel and close. The behaviour is described in the
 * notes of uring-engine.ts; a stream depends on the ring (ids, SQEs,
 * completions) and the buffer pool, never on the engine.
 */
import {
  AbortedError,
  abortedError,
  connectionClosedError,
  osErrorFromErrno,
  resetToCancelError,
  UsageError,
} from '../../core/errors.js';
import {
  type Endpoint,
  type EngineRequest,
  type EngineStream,
  MAX_UNREAD_BYTES,
  Readiness,
  SEND_BUFFER_BYTES,
  WOULD_BLOCK,
} from '../contract.js';
import { type BufferPool, CopyLease, type PoolWaiter, type Stage } from './buffer-pool.js';
import {
  EAGAIN,
  ECANCELED,
  EINVAL,
  ENOBUFS,
  HOLD_ARRIVALS,
  IORING_CQE_BUFFER_SHIFT,
  IORING_CQE_F_BUFFER,
  IORING_CQE_F_MORE,
  KIND_CONNECT,
  KIND_POLL,
  KIND_RECV,
  KIND_RECV_MULTI,
  KIND_SEND,
  KIND_SHUTDOWN,
  LINGER_MS,
  MAX_IOV,
  SEND_COPY_MAX,
  STAGE_SIZE,
} from './constants.js';
import { PollList } from './poll-list.js';
import type { Flusher, Owner, UringRing } from './ring.js';
import type { ArenaChunk } from './send-arena.js';

const EMPTY = new Uint8Array(0);

export function pipeEndpoint(path: string): Endpoint {
  return { address: path, port: -1, family: 'pipe' };
}

/** A recv waiting for the one in the kernel (buffer null: pooled). */
interface RecvWaiting {
  req: EngineRequest;
  buffer: Uint8Array | null;
}

/**
 * A send the kernel has not finished: in the kernel (`#inFlight`) or waiting
 * for its turn. A buffered send (see "Buffered sends" in uring-engine.ts)
 * has completed already: `req` is null, and `data` is either its copy in
 * the arena, made in `chunk` with `copied` bytes, or the caller's bytes in
 * pool buffer `pin`, which it holds pinned (`size` is what is left to send).
 */
interface QueuedSend {
  req: EngineRequest | null;
  data: Uint8Array | readonly Uint8Array[];
  size: number;
  chunk?: ArenaChunk;
  copied?: number;
  pin?: number;
}

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
  /** Bytes of buffered sends (completed, copied) the kernel has not taken yet. */
  bufferedBytes = 0;
  shutdownReq: EngineRequest | null = null;
  shutdownId: number = -1;
  connectReq: EngineRequest | null = null;
  connectId: number = -1;
  connectAddress: { address: string; port?: number } | null = null;
  linger: NodeJS.Timeout | null = null;
  polls: PollList | null = null;
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
const F_FLUSH_DUE = 2048;

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
export class UringStream implements EngineStream, Owner, PoolWaiter, Flusher {
  readonly #ring: UringRing;
  readonly #pool: BufferPool;
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
    ring: UringRing,
    pool: BufferPool,
    fd: number,
    connectReq: EngineRequest | null,
    pipePath: string | null,
  ) {
    this.#ring = ring;
    this.#pool = pool;
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
  /** Buffered sends wait for the ring's flush of this turn (ring.flushSoon). */
  private get flushDue(): boolean {
    return (this.#flags & F_FLUSH_DUE) !== 0;
  }
  private set flushDue(on: boolean) {
    this.#flags = on ? this.#flags | F_FLUSH_DUE : this.#flags & ~F_FLUSH_DUE;
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
  private get bufferedBytes(): number {
    return this.#cold === null ? 0 : this.#cold.bufferedBytes;
  }
  private set bufferedBytes(value: number) {
    if (this.#cold !== null || value !== 0) this.#coldState().bufferedBytes = value;
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
    const name = this.#ring.addon.sockName(this.#fd, peer);
    return name === null ? null : { address: name[0], port: name[1], family: name[2] };
  }

  /**
   * Bytes read from the kernel that no recv has taken yet (rule 6): what the
   * multishot recv holds (MAX_UNREAD_BYTES in at most HOLD_ARRIVALS
   * arrivals) or what is left of a read-ahead (at most STAGE_SIZE); never
   * both at once.
   */
  get unreadBytes(): number {
    const stage = this.stage;
    return this.#heldBytes + (stage === null ? 0 : stage.end - stage.at);
  }

  setNoDelay(enabled: boolean): void {
    if (this.pipePath === null && this.#fd >= 0 && !this.fdClosed) {
      this.#ring.addon.setNoDelay(this.#fd, enabled);
    }
  }

  // ---- readiness and non-blocking attempts ----

  poll(req: EngineRequest, events: number): void {
    const ring = this.#ring;
    if (this.closed) {
      ring.complete(req, 0, abortedError());
      return;
    }
    // What the engine holds (or knows) already: no kernel poll (still delivered later, rule 1).
    const now = this.#readyNow(events);
    if (now !== 0) {
      ring.complete(req, now, null);
      return;
    }
    this.polls ??= new PollList(ring);
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
    const n = this.#ring.addon.tryRecv(this.#fd, buffer);
    if (n >= 0) {
      if (n === 0) this.eof = true;
      return n;
    }
    if (n === EAGAIN) return WOULD_BLOCK;
    const error = osErrorFromErrno(n, 'read');
    this.#error ??= error;
    throw error;
  }

  /** Copies held pool bytes into `target` (oldest first, across arrivals), for tryRecv. */
  #copyHeld(target: Uint8Array): number {
    const pool = this.#pool;
    const held = this.#held as number[];
    let n = 0;
    let i = 0;
    while (i < held.length && n < target.length) {
      const bid = held[i] as number;
      const offset = held[i + 1] as number;
      const bytes = held[i + 2] as number;
      const take = Math.min(bytes, target.length - n);
      pool.copyOut(bid, offset, take, n === 0 ? target : target.subarray(n));
      n += take;
      if (take < bytes) {
        held[i + 1] = offset + take;
        held[i + 2] = bytes - take;
        break;
      }
      i += 3;
      pool.release(bid);
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
    const n = this.#ring.addon.trySend(this.#fd, data);
    if (n >= 0) return n;
    if (n === EAGAIN) return WOULD_BLOCK;
    const error = osErrorFromErrno(n, 'write');
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
    this.#ring.addon.disown(this.#ring.handle, fd);
    return fd;
  }

  // ---- connect ----

  /** @internal `address` is an IP literal (port >= 0) or a pipe path (port -1). */
  startConnect(address: string, port: number): void {
    const req = this.connectReq;
    if (req === null || this.closed) return;
    const ring = this.#ring;
    const id = ring.id(this, KIND_CONNECT);
    const fd =
      port < 0
        ? ring.addon.connectUnix(ring.handle, id, address)
        : ring.addon.connectTcp(ring.handle, id, address, port);
    if (fd < 0) {
      ring.dropId(id);
      this.connectFailed(
        osErrorFromErrno(fd, 'connect', port < 0 ? { address } : { address, port }),
      );
      return;
    }
    this.#fd = fd;
    this.connectId = id;
    this.connectAddress = port < 0 ? { address } : { address, port };
    ring.submitSoon();
    // Polls posted while the host name resolved: after the connect, in the same submit.
    this.polls?.armWaiting(this, fd);
  }

  /** @internal The connect failed before reaching the kernel (lookup, socket()). */
  connectFailed(error: Error): void {
    const req = this.connectReq;
    if (req === null) return;
    this.connectReq = null;
    this.#error ??= error;
    this.#ring.complete(req, 0, error);
    this.#failWaiting(error);
    this.polls?.completeWaiting((events) => this.#readyNow(events));
  }

  // ---- recv ----

  recv(req: EngineRequest, buffer: Uint8Array): void {
    this.#postRecv(req, buffer);
  }

  recvPooled(req: EngineRequest): void {
    const poolError = this.#pool.ready();
    if (poolError !== null) {
      this.#ring.complete(req, 0, poolError);
      return;
    }
    this.#postRecv(req, null);
  }

  #postRecv(req: EngineRequest, buffer: Uint8Array | null, fromQueue = false): void {
    if (this.#error !== null) {
      this.#ring.complete(req, 0, this.#error);
    } else if (this.eof || this.closed) {
      this.#ring.complete(req, 0, null);
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
    const ring = this.#ring;
    const req = this.#recvReq as EngineRequest;
    if (this.#heldBytes > 0) {
      this.#recvReq = null;
      ring.complete(req, this.#takeHeld(req), null);
      return true;
    }
    const stage = this.stage;
    if (stage !== null && stage.end > stage.at) {
      this.#recvReq = null;
      const target = this.#recvBuffer;
      this.#recvBuffer = null;
      ring.complete(req, this.#takeStaged(req, stage, target), null);
      return true;
    }
    const end = this.heldEnd;
    if (end !== null) {
      this.#recvReq = null;
      this.#recvBuffer = null;
      this.heldEnd = null;
      if (end === true) this.eof = true;
      else this.#error ??= end;
      ring.complete(req, 0, end === true ? null : end);
      return true;
    }
    if (this.pooledRecv) {
      if (this.poolWait) return false; // retryPooled() serves it
      if (!this.#pool.multishotRecv) this.#postRecvSqe(null);
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
    const pool = this.#pool;
    const held = this.#held as number[];
    const bid = held[0] as number;
    const offset = held[1] as number;
    const bytes = held[2] as number;
    const target = this.#recvBuffer;
    this.#recvBuffer = null;
    let n = bytes;
    if (target === null) {
      req.lease = pool.lease(bid, offset, bytes);
      held.splice(0, 3);
    } else {
      n = Math.min(bytes, target.length);
      pool.copyOut(bid, offset, n, target);
      if (n < bytes) {
        held[1] = offset + n;
        held[2] = bytes - n;
      } else {
        held.splice(0, 3);
        pool.release(bid);
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
    this.#pool.giveStage(stage);
  }

  #armMulti(): void {
    const ring = this.#ring;
    const id = ring.id(this, KIND_RECV_MULTI);
    const rc = ring.addon.recvPooled(ring.handle, id, this.#fd, MAX_UNREAD_BYTES);
    if (rc < 0) {
      ring.dropId(id);
      const req = this.#recvReq as EngineRequest;
      this.#recvReq = null;
      ring.complete(req, 0, osErrorFromErrno(rc, 'read'));
      return;
    }
    this.#multiId = id;
    ring.submitSoon();
  }

  #stopMulti(): void {
    if (this.#multiId === -1 || this.multiStopping) return;
    this.multiStopping = true;
    const ring = this.#ring;
    ring.addon.cancel(ring.handle, this.#multiId);
    ring.submitSoon();
  }

  #postRecvSqe(buffer: Uint8Array | null): void {
    const ring = this.#ring;
    const id = ring.id(this, KIND_RECV);
    let stage: Stage | null = null;
    if (buffer !== null && this.lastRecvFull && buffer.length < STAGE_SIZE) {
      // More is likely waiting than this buffer holds: read ahead (see STAGE_SIZE).
      stage = this.#pool.takeStage();
      stage.reading = true;
      this.stage = stage;
    }
    const rc =
      buffer === null
        ? ring.addon.recvPooled(ring.handle, id, this.#fd, 0)
        : stage !== null
          ? ring.addon.recvv(ring.handle, id, this.#fd, buffer, stage.buffer)
          : ring.addon.recv(ring.handle, id, this.#fd, buffer, !this.lastRecvFull);
    if (rc < 0) {
      if (stage !== null) {
        stage.reading = false;
        this.#dropStage();
      }
      ring.dropId(id);
      const req = this.#recvReq as EngineRequest;
      this.#recvReq = null;
      this.#recvBuffer = null;
      ring.complete(req, 0, osErrorFromErrno(rc, 'read'));
      return;
    }
    this.#recvId = id;
    ring.submitSoon();
  }

  /** @internal A pool buffer came back: serve the pooled recv that waited for one. */
  retryPooled(): void {
    this.poolWait = false;
    if (this.#recvReq === null || this.#recvId !== -1 || this.closed) return;
    if (this.#serveRecv()) this.#nextRecv();
  }

  /** A pooled recv found no pool buffer: publish more, or wait for a lease to come back. */
  #outOfBuffers(): boolean {
    const pool = this.#pool;
    if (pool.grow()) return true;
    this.poolWait = true;
    pool.waitForBuffer(this);
    return false;
  }

  #onRecv(res: number, flags: number): void {
    const ring = this.#ring;
    const pool = this.#pool;
    const req = this.#recvReq as EngineRequest;
    this.#recvId = -1;
    const bid = (flags & IORING_CQE_F_BUFFER) !== 0 ? flags >>> IORING_CQE_BUFFER_SHIFT : -1;
    // Where the bytes are in the buffer; -1: no slice of it to give back.
    const at = bid >= 0 ? pool.take(bid, res, flags) : -1;
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
        // Read ahead: the recv's buffer took what fits, the rest waits in the stage.
        const n = Math.min(res, (buffer as Uint8Array).length);
        stage.at = 0;
        stage.end = res - n;
        this.lastRecvFull = res > n;
        if (stage.end === 0) this.#dropStage();
        ring.complete(req, n, null);
        this.#nextRecv();
        this.#heldChanged();
        return;
      }
      this.#dropStage();
    }
    if (this.closed || res === ECANCELED || (this.recvCancelled && res < 0)) {
      if (at >= 0) pool.release(bid);
      ring.complete(req, 0, abortedError());
    } else if (res < 0) {
      const error = osErrorFromErrno(res, 'read');
      this.#error ??= error;
      ring.complete(req, 0, error);
    } else if (res === 0) {
      this.eof = true;
      ring.complete(req, 0, null);
    } else {
      if (this.pooledRecv) req.lease = at >= 0 ? pool.lease(bid, at, res) : null;
      else this.lastRecvFull = res === buffer?.length;
      ring.complete(req, res, null);
    }
    this.#nextRecv();
  }

  /**
   * A CQE of the multishot recv: an arrival is held (or goes straight to the
   * recv waiting for it); end of stream and errors wait behind held bytes.
   */
  #onMulti(res: number, flags: number): void {
    const pool = this.#pool;
    const bid = (flags & IORING_CQE_F_BUFFER) !== 0 ? flags >>> IORING_CQE_BUFFER_SHIFT : -1;
    if ((flags & IORING_CQE_F_MORE) === 0) {
      this.#multiId = -1;
      this.multiStopping = false;
    }
    const at = bid >= 0 ? pool.take(bid, res, flags) : -1;
    const gone = this.closed || this.reset;
    if (at >= 0 && !gone) {
      this.#held ??= [];
      this.#held.push(bid, at, res);
      this.#heldBytes += res;
      if (this.#held.length >= HOLD_ARRIVALS * 3) this.#stopMulti();
    } else {
      if (at >= 0) pool.release(bid);
      if (res === ENOBUFS) {
        if (!gone) this.#outOfBuffers();
      } else if (res === EINVAL && this.#heldBytes === 0 && this.heldEnd === null) {
        pool.multishotRecv = false; // a kernel before 6.0: single-shot pooled recvs from now on
      } else if (res <= 0 && res !== ECANCELED && !gone) {
        this.heldEnd ??= res === 0 ? true : osErrorFromErrno(res, 'read');
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
    for (let i = 0; i < held.length; i += 3) this.#pool.release(held[i] as number);
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
      this.#ring.complete(req, 0, this.#error ?? connectionClosedError());
      return;
    }
    if (size > 0 && size <= SEND_COPY_MAX && this.#mayBuffer(size)) {
      this.#bufferSend(req, data, size);
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

  /**
   * Whether a send is buffered. Only while bytes are streaming: the stream
   * holds received bytes no recv took yet, its last recv filled its buffer,
   * or buffered bytes wait already. A request/reply send has nothing to
   * leave with, so it goes as before, from the caller's buffer.
   * And only while the stream has room for it and no send of the caller's
   * waits: so buffered bytes never overtake, and are never overtaken by, a
   * send that still completes when the kernel has it.
   */
  #mayBuffer(size: number): boolean {
    const buffered = this.bufferedBytes;
    if (buffered === 0 && !this.lastRecvFull && this.unreadBytes === 0) return false;
    if (buffered + size > SEND_BUFFER_BYTES) return false;
    if (this.connecting || this.shutdownReq !== null) return false;
    return !this.#callerSendPending(false);
  }

  /** True when a send of the caller's is in the kernel or (unless `inFlightOnly`) waiting. */
  #callerSendPending(inFlightOnly: boolean): boolean {
    if (this.#sendReq !== null) return true;
    const inFlight = this.inFlight;
    if (this.#sendId !== -1 && inFlight !== null) {
      for (const entry of inFlight) if (entry.req !== null) return true;
    }
    const queue = this.sendQueue;
    if (inFlightOnly || queue === null) return false;
    for (const entry of queue) if (entry.req !== null) return true;
    return false;
  }

  /**
   * Copies the send (or pins the lent pool buffer its bytes are in),
   * completes it, and leaves its bytes for this turn's flush.
   */
  #bufferSend(req: EngineRequest, data: Uint8Array | readonly Uint8Array[], size: number): void {
    const pool = this.#pool;
    const pin = ArrayBuffer.isView(data) ? pool.pin(data as Uint8Array, size) : -1;
    this.bufferedBytes += size;
    this.sendQueue ??= [];
    if (pin >= 0) {
      this.sendQueue.push({ req: null, data, size, pin });
    } else {
      const arena = pool.arena;
      const view = arena.copy(data, size);
      this.sendQueue.push({ req: null, data: view, size, chunk: arena.lastChunk, copied: size });
    }
    this.#ring.complete(req, size, null);
    if (this.#sendId === -1 && !this.flushDue) {
      this.flushDue = true;
      this.#ring.flushSoon(this);
    }
  }

  /** @internal The ring's flush: everything buffered this turn leaves in one sendmsg. */
  flush(): void {
    this.flushDue = false;
    if (this.#sendId === -1 && !this.connecting && !this.fdClosed) this.#startSends();
  }

  /** A buffered send's bytes are gone (sent, or dropped with the connection). */
  #dropBuffered(entry: QueuedSend): void {
    this.bufferedBytes -= entry.size;
    if (entry.chunk !== undefined) this.#pool.arena.release(entry.chunk, entry.copied as number);
    else if (entry.pin !== undefined) this.#pool.unpin(entry.pin);
  }

  #sendOne(req: EngineRequest, data: Uint8Array, size: number): void {
    const ring = this.#ring;
    const id = ring.id(this, KIND_SEND);
    const rc = ring.addon.send(ring.handle, id, this.#fd, data);
    if (rc < 0) {
      ring.dropId(id);
      ring.complete(req, 0, osErrorFromErrno(rc, 'write'));
      return;
    }
    this.#sendId = id;
    this.#sendReq = req;
    this.#sendData = data;
    this.#inFlightBytes = size;
    this.sendCancelled = false;
    ring.submitSoon();
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
    if (queue.length === 1 && first.req !== null && ArrayBuffer.isView(first.data)) {
      this.sendQueue = null;
      this.#sendOne(first.req, first.data as Uint8Array, first.size);
      if (this.#sendId === -1) this.#startSends();
      return;
    }
    const ring = this.#ring;
    const id = ring.id(this, KIND_SEND);
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
        ? EINVAL // one send with more parts than the kernel gathers
        : parts.length === 1
          ? ring.addon.send(ring.handle, id, this.#fd, parts[0] as Uint8Array)
          : ring.addon.sendv(ring.handle, id, this.#fd, parts, parts.length);
    let bytes = 0;
    for (const entry of batch) bytes += entry.size;
    if (rc < 0) {
      ring.dropId(id);
      const error = osErrorFromErrno(rc, 'write');
      for (const entry of batch) {
        if (entry.req === null) this.#dropBuffered(entry);
        else ring.complete(entry.req, 0, error);
      }
      // Bytes already reported sent are lost: the connection cannot go on.
      if (batch.some((entry) => entry.req === null)) {
        this.#error ??= error;
        this.#failWaiting(error);
        return;
      }
      this.#startSends();
      return;
    }
    this.#sendId = id;
    this.inFlight = batch;
    this.#inFlightBytes = bytes;
    this.sendCancelled = false;
    ring.submitSoon();
  }

  /** True when `req` is a send the kernel has (alone, or in a gathered batch). */
  #sendInFlight(req: EngineRequest): boolean {
    return (
      this.#sendId !== -1 &&
      (req === this.#sendReq || (this.inFlight?.some((entry) => entry.req === req) ?? false))
    );
  }

  #onSend(res: number): void {
    const ring = this.#ring;
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
        ring.complete(one, total, this.closed ? abortedError() : null);
      } else {
        for (const entry of batch as QueuedSend[]) {
          if (entry.req === null) this.#dropBuffered(entry);
          else ring.complete(entry.req, entry.size, this.closed ? abortedError() : null);
        }
      }
    } else {
      // Cancelled, failed, or short: the bytes that moved belong to the oldest sends.
      const error =
        this.closed || res === ECANCELED || cancelled
          ? abortedError()
          : res < 0
            ? osErrorFromErrno(res, 'write')
            : null;
      const entries = batch ?? [{ req: one as EngineRequest, data: EMPTY, size: total }];
      let moved = Math.max(res, 0);
      const untouched: QueuedSend[] = [];
      let lost = false;
      for (const entry of entries) {
        const n = Math.min(entry.size, moved);
        moved -= n;
        if (entry.req === null) {
          if (n === entry.size || error !== null) {
            lost ||= n < entry.size;
            this.#dropBuffered(entry);
          } else {
            // Short without an error: the engine owes the rest, so it goes again first.
            this.bufferedBytes -= n;
            const data = (entry.data as Uint8Array).subarray(n);
            untouched.push({ ...entry, data, size: entry.size - n });
          }
        } else if (n === entry.size && entry.size > 0) ring.complete(entry.req, n, null);
        else if (error === null && n === 0 && batch !== null) untouched.push(entry);
        else ring.complete(entry.req, n, error);
      }
      // A short send without an error: what did not start is sent again, first.
      if (untouched.length > 0) this.sendQueue = [...untouched, ...(this.sendQueue ?? [])];
      if (error !== null && !(error instanceof AbortedError)) this.#error ??= error;
      if ((cancelled || res === ECANCELED) && !this.closed) this.#resetToCancel();
      // Bytes already reported sent did not leave: the connection cannot go on.
      else if (lost && !this.closed) this.#error ??= error;
    }
    if (this.closed) {
      // A graceful close still owes the peer what buffered sends were told was sent.
      if (!this.abortive && !this.reset && this.#error === null) {
        this.#abortQueued(true);
        if ((this.sendQueue?.length ?? 0) > 0) this.#startSends();
      } else {
        this.#abortQueued(false);
      }
    } else if (!this.reset) {
      if (this.#error !== null) this.#failWaiting(this.#error);
      else this.#startSends();
    }
    this.#maybeCloseFd();
  }

  // ---- shutdown ----

  shutdown(req: EngineRequest): void {
    if (this.#error !== null || this.closed || this.shutdownReq !== null) {
      this.#ring.complete(req, 0, this.#error ?? connectionClosedError());
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
    const ring = this.#ring;
    const id = ring.id(this, KIND_SHUTDOWN);
    const rc = ring.addon.shutdown(ring.handle, id, this.#fd);
    if (rc < 0) {
      ring.dropId(id);
      this.shutdownReq = null;
      ring.complete(req, 0, osErrorFromErrno(rc, 'shutdown'));
      return;
    }
    this.shutdownId = id;
    ring.submitSoon();
  }

  #onShutdown(res: number): void {
    const req = this.shutdownReq as EngineRequest;
    this.shutdownReq = null;
    this.shutdownId = -1;
    const error =
      this.closed || res === ECANCELED
        ? abortedError()
        : res < 0
          ? osErrorFromErrno(res, 'shutdown')
          : null;
    this.#ring.complete(req, 0, error);
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
    const ring = this.#ring;
    const req = this.connectReq as EngineRequest;
    this.connectReq = null;
    this.connectId = -1;
    if (this.closed || res === ECANCELED) {
      ring.complete(req, 0, abortedError());
      return;
    }
    if (res < 0) {
      const error = osErrorFromErrno(res, 'connect', this.connectAddress ?? undefined);
      this.#error ??= error;
      ring.complete(req, 0, error);
      this.#failWaiting(error);
      return;
    }
    req.result = this;
    ring.complete(req, 0, null);
    // Operations posted while connecting start now, in order.
    this.#nextRecv();
    this.#startSends();
  }

  // ---- cancel and close ----

  cancel(req: EngineRequest | null): boolean {
    const ring = this.#ring;
    if (req === null) {
      // Buffered sends have completed: they are not the caller's to cancel, and go on.
      const any =
        this.#recvReq !== null ||
        (this.recvQueue?.length ?? 0) > 0 ||
        this.#callerSendPending(false) ||
        this.shutdownReq !== null ||
        this.connectReq !== null ||
        (this.polls?.entries.length ?? 0) > 0;
      if (this.connectReq !== null || this.#callerSendPending(true) || this.shutdownId !== -1) {
        // Something the kernel may have half done: reset (see notes).
        this.#resetToCancel();
        return any;
      }
      this.#abortQueued(true);
      if (this.#recvReq !== null) this.#cancelRecv();
      this.polls?.cancelAll(true);
      return any;
    }
    const queued = this.recvQueue?.findIndex((entry) => entry.req === req) ?? -1;
    if (queued >= 0) {
      this.recvQueue?.splice(queued, 1);
      ring.complete(req, 0, abortedError());
      return true;
    }
    if (req === this.#recvReq) return this.#cancelRecv();
    const waiting = this.sendQueue?.findIndex((entry) => entry.req === req) ?? -1;
    if (waiting >= 0) {
      this.sendQueue?.splice(waiting, 1);
      ring.complete(req, 0, abortedError());
      this.#maybeShutdown();
      return true;
    }
    if (this.#sendInFlight(req)) {
      if (this.sendCancelled) return false;
      this.sendCancelled = true;
      ring.addon.cancel(ring.handle, this.#sendId);
      ring.submitSoon();
      return true;
    }
    if (req === this.shutdownReq) {
      if (this.shutdownId === -1) {
        this.shutdownReq = null;
        ring.complete(req, 0, abortedError());
        return true;
      }
      ring.addon.cancel(ring.handle, this.shutdownId);
      ring.submitSoon();
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
    const ring = this.#ring;
    if (this.#recvId === -1) {
      // Served by the multishot, or waiting (for a pool buffer, or for the multishot
      // to end): nothing of this request is in the kernel. What arrives stays held.
      if (this.poolWait) {
        this.poolWait = false;
        this.#pool.stopWaiting(this);
      }
      const req = this.#recvReq as EngineRequest;
      this.#recvReq = null;
      this.#recvBuffer = null;
      ring.complete(req, 0, abortedError());
      this.#nextRecv();
      return true;
    }
    ring.addon.cancel(ring.handle, this.#recvId);
    ring.submitSoon();
    return true;
  }

  /** Aborts every operation and resets the connection; later operations fail with ECONNABORTED. */
  #resetToCancel(): void {
    if (this.reset) return;
    this.reset = true;
    this.abortive = true;
    this.#error ??= resetToCancelError();
    this.#abortQueued();
    this.#dropHeld();
    this.#dropStage();
    this.#cancelInKernel(true);
    this.#maybeCloseFd();
  }

  /** Cancels what is in the kernel (the send too when `sends`). */
  #cancelInKernel(sends: boolean): void {
    const ring = this.#ring;
    const connect = this.connectReq;
    if (connect !== null && this.connectId === -1) {
      // Still resolving the host name: nothing in the kernel yet.
      this.connectReq = null;
      ring.complete(connect, 0, abortedError());
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
      ring.addon.cancelFd(ring.handle, this.#fd);
    } else {
      // A graceful close: everything but the send in flight, one by one.
      if (this.#recvReq !== null && !this.recvCancelled) this.#cancelRecv();
      this.#stopMulti();
      this.polls?.cancelAll(true);
      for (const id of [this.connectId, this.shutdownId, sends ? this.#sendId : -1]) {
        if (id !== -1) ring.addon.cancel(ring.handle, id);
      }
      if (sends && this.#sendId !== -1) this.sendCancelled = true;
    }
    ring.submitSoon();
  }

  /**
   * Completes every request still waiting here (not in the kernel) as
   * aborted. Buffered sends have completed already: with `keepBuffered`
   * they stay queued (a graceful close still sends them), else they are dropped.
   */
  #abortQueued(keepBuffered = false): void {
    const ring = this.#ring;
    const recvs = this.recvQueue;
    const sends = this.sendQueue;
    this.recvQueue = null;
    this.sendQueue = null;
    for (const entry of recvs ?? []) ring.complete(entry.req, 0, abortedError());
    const kept: QueuedSend[] = [];
    for (const entry of sends ?? []) {
      if (entry.req !== null) ring.complete(entry.req, 0, abortedError());
      else if (keepBuffered) kept.push(entry);
      else this.#dropBuffered(entry);
    }
    if (kept.length > 0) this.sendQueue = kept;
    const shutdown = this.shutdownReq;
    if (shutdown !== null && this.shutdownId === -1) {
      this.shutdownReq = null;
      ring.complete(shutdown, 0, abortedError());
    }
  }

  /** The connection failed: requests waiting here complete with `error`. */
  #failWaiting(error: Error): void {
    const ring = this.#ring;
    const recvs = this.recvQueue;
    const sends = this.sendQueue;
    this.recvQueue = null;
    this.sendQueue = null;
    for (const entry of recvs ?? []) ring.complete(entry.req, 0, error);
    for (const entry of sends ?? []) {
      if (entry.req === null) this.#dropBuffered(entry);
      else ring.complete(entry.req, 0, error);
    }
    const shutdown = this.shutdownReq;
    if (shutdown !== null && this.shutdownId === -1) {
      this.shutdownReq = null;
      ring.complete(shutdown, 0, error);
    }
  }

  close(abortive: boolean): void {
    if (this.closed) {
      // destroy() after close(): stop waiting for a send in flight, drop what is buffered.
      if (abortive && !this.abortive) {
        this.abortive = true;
        this.#abortQueued(false);
        this.#cancelInKernel(true);
        this.#maybeCloseFd();
      }
      return;
    }
    this.closed = true;
    this.abortive = abortive || this.abortive;
    this.#abortQueued(!this.abortive);
    this.#dropHeld();
    this.#dropStage();
    this.heldEnd = null;
    if (this.poolWait) {
      this.poolWait = false;
      this.#pool.stopWaiting(this);
    }
    // A graceful close lets a send in flight finish (its bytes precede the FIN), for a while,
    // and sends what buffered sends left (the caller was told those bytes were sent).
    this.#cancelInKernel(abortive);
    if (!this.abortive && this.#sendId === -1 && this.sendQueue !== null && !this.connecting) {
      this.#startSends();
    }
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
    if (this.sendQueue !== null && !this.abortive && !this.reset) return; // buffered, still to go
    if (this.shutdownId !== -1) return;
    if (this.polls?.inKernel) return;
    if (this.linger !== null) {
      clearTimeout(this.linger);
      this.linger = null;
    }
    this.fdClosed = true;
    if (this.#fd >= 0) this.#ring.addon.close(this.#ring.handle, this.#fd, this.abortive);
  }
}
