/**
 * Implementation notes: the portable engine, on `node:net`.
 *
 * What the OS gives: libuv's readiness loop (epoll/kqueue) or, on Windows,
 * IOCP; Node wraps either in `net.Socket` streams that push received chunks
 * and accept writes with a callback.
 *
 * What this engine adds, to keep the contract:
 * - Completions are batched per event-loop turn (./turn.ts): those raised
 *   by libuv callbacks are handed to the sink together in the check phase
 *   (`setImmediate`), or right after the current callback once 8 are
 *   waiting, so one worker wake-up serves many connections while their
 *   state is still in cache. Completions a post produces by itself (data
 *   already stashed, a staged send) are delivered right after the posting
 *   call returns (a microtask), so a chain of them runs on within
 *   the turn. All go through one FIFO, so a handle's completions keep their
 *   order (rule 7), and none is delivered inside the posting call (rule 1).
 * - Receives copy from Node's chunk into the caller's buffer and complete as
 *   soon as any bytes are there. Bytes nobody asked for yet wait in a small
 *   stash; once it holds {@link MAX_UNREAD_BYTES} the socket is paused, and
 *   Node stops reading from the kernel when its own stream buffer fills
 *   (rule 6). Pausing happens only when the stash is full, so a server that
 *   keeps a recv posted never pays a pause/resume round per message.
 * - Small sends are staged, as Winsock completes a WSASend once its bytes
 *   are in the socket's send buffer: while the OS keeps up (Node holds
 *   nothing unsent) and the stage holds under {@link STAGED_SEND_LIMIT}, a
 *   send is copied (into a reused arena) and completes at once, and what a
 *   socket staged leaves in one write once the handlers it woke have run. A
 *   server answering a message in several buffer-sized pieces thus makes one
 *   system call, not one per piece. Larger sends, and every send once the OS
 *   falls behind, are handed to Node without a copy and complete when its
 *   write callback fires (the OS took every byte): a slow reader holds the
 *   sender's sends pending, which is the flow control a server needs. Sends
 *   are FIFO per socket, so one callback bound per socket serves them all.
 * - Readiness (`poll`) and non-blocking attempts (`tryRecv`, `trySend`,
 *   `tryAccept`): Node reports no kernel readiness, so the engine derives
 *   it from its own state, exactly and without timers or spinning. READABLE
 *   holds when the stash has bytes no recv took, end of stream was seen, or
 *   the socket failed (no posted recv pending: it is served first); HANGUP
 *   when end of stream was seen; ERROR (always reported) once the socket
 *   errored or closed in both directions. `tryRecv` copies from the stash
 *   (which keeps its bound and pausing above), then throws the stored error
 *   or returns 0 at end of stream. WRITABLE means the try-send buffer has
 *   room: Node's unsent bytes (`writableLength`) plus staged bytes stay
 *   under {@link TRY_SEND_LIMIT} (64 KiB), with no posted send pending and
 *   the connect done (or a try-send would fail at once). That buffer stands
 *   in for SO_SNDBUF on top of the kernel's own, which Node fills first.
 *   64 KiB is the bound the stash and the stage have too: big enough for a
 *   typical message in one call, small enough that a connection a slow
 *   reader holds back keeps at most 64 KiB of copies. It is never below
 *   Node's write high-water mark (16 KiB, 64 KiB from Node 22; a larger one
 *   raises it), so a full buffer always ends in a 'drain' that wakes
 *   WRITABLE polls. `trySend` stages its copy like a small posted
 *   send (one write with the turn's others; the caller's buffer is free on
 *   return) and may take part of `data`. Pending polls are woken wherever
 *   that state changes (data stashed, end, error, close, connect, the last
 *   posted send done, staged bytes written, Node's 'drain'), and a poll that
 *   holds when posted completes right after the posting call. A listener
 *   is READABLE while an accepted connection waits in its queue and no
 *   posted accept is pending; `tryAccept` takes from that queue.
 * - A graceful close writes staged bytes out first; if Node still holds
 *   bytes the OS has not taken, it sends FIN after them and closes within
 *   10 s, as closesocket lets the send buffer drain. Sends still in Node then
 *   complete (aborted, with the bytes they moved) only when Node lets go of
 *   their buffers. A destroy() meanwhile resets the connection at once
 *   (contract: abortive wins); the sends it cuts short report 0 bytes, as
 *   Node does not say how much of a write the OS had taken.
 *
 * Known limits of this engine:
 * - Node cannot withdraw bytes it has queued for the kernel. Cancelling a
 *   send (or shutdown) that the OS has not fully taken therefore resets the
 *   connection and aborts every pending operation on it; a send the OS has
 *   fully taken completes normally (too late to cancel).
 * - Accepted connections Node has taken from the kernel wait in a queue of at
 *   most `backlog` entries until an accept is posted; past that, new
 *   connections are reset, as a full kernel backlog would drop them.
 * - Raw descriptors cannot be passed between worker threads: a `net.Socket`
 *   belongs to its event loop, so this engine has no `detach` and no
 *   `blocking` descriptor calls (the thread-per-connection model needs the
 *   uring engine).
 * - Accept errors (EMFILE, …) come only as the server's 'error' event, for
 *   a connection libuv has already dropped (its reserved-descriptor trick:
 *   it cannot back off): they reach `onAcceptError` with a retry of 0, but a
 *   listener poll does not complete for them and `tryAccept` does not throw.
 * - `cancel()` of a recv or poll alone never resets the connection, even
 *   while Node holds bytes of sends that already completed; only a pending
 *   send, shutdown or connect the OS has not finished does.
 */
import { chmod } from 'node:fs/promises';
import net from 'node:net';
import {
  abortedError,
  connectionClosedError,
  resetToCancelError,
  toOsError,
} from '../../core/errors.js';
import {
  type CompletionSink,
  type Endpoint,
  type Engine,
  type EngineListener,
  type EngineRequest,
  type EngineStream,
  MAX_UNREAD_BYTES,
  type PipeListenOptions,
  Readiness,
  type TcpListenOptions,
  WOULD_BLOCK,
} from '../contract.js';
import { PendingQueue } from './pending-queue.js';
import { PollQueue } from './poll-queue.js';
import { STAGED_SEND_LIMIT, type StagedWriter, Turn } from './turn.js';

function tcpEndpoint(address: string | undefined, port: number | undefined, family?: string) {
  if (address === undefined || port === undefined) return null;
  return {
    address,
    port,
    family: family === 'IPv6' ? 'IPv6' : 'IPv4',
  } satisfies Endpoint as Endpoint;
}

function pipeEndpoint(path: string): Endpoint {
  return { address: path, port: -1, family: 'pipe' };
}

/** Completes `req` from an OS callback. */
function complete(turn: Turn, req: EngineRequest, bytes: number, error: Error | null) {
  req.bytes = bytes;
  req.error = error;
  turn.push(req);
}

/** Completes `req` from inside the call that posted it (delivered after that call returns). */
function completeNow(turn: Turn, req: EngineRequest, bytes: number, error: Error | null) {
  req.bytes = bytes;
  req.error = error;
  turn.pushNow(req);
}

/** How long a gracefully closed socket may take to hand Node's queued bytes to the OS. */
const LINGER_MS = 10_000;

/**
 * The try-send "send buffer": bytes Node holds that the OS has not taken
 * (`writableLength`) plus staged bytes, past which `trySend` returns
 * WOULD_BLOCK and WRITABLE does not hold (see notes).
 */
export const TRY_SEND_LIMIT = 64 * 1024;

const { READABLE, WRITABLE, ERROR, HANGUP } = Readiness;

/** A connected `net.Socket` behind the EngineStream contract. */
class NodeStream implements EngineStream, StagedWriter {
  readonly #turn: Turn;
  readonly #socket: net.Socket;
  readonly #pipePath: string | null;

  // Pending receives with their buffers (null: pooled); the stash is non-empty only when none is pending.
  readonly #recvs = new PendingQueue<Uint8Array | null>();
  readonly #stash: Buffer[] = [];
  #stashBytes = 0;
  #paused = false;

  // Pending sends with their sizes; Node completes writes in order.
  readonly #sends = new PendingQueue<number>();
  // Write callbacks still to come for sends already completed by a cancel.
  #staleCallbacks = 0;
  // Copies of small sends that completed at once and leave at the end of the turn.
  // (The first in a field: one send per turn is the common case and needs no array.)
  #staged: Buffer | null = null;
  #stagedMore: Buffer[] | null = null;
  #stagedBytes = 0;
  #shutdownReq: EngineRequest | null = null;
  #connectReq: EngineRequest | null;
  // Pending polls; made on the first poll that has to wait.
  #polls: PollQueue | null = null;
  #drainHooked = false;

  #eof = false;
  #error: Error | null = null;
  #gone = false;
  /** Closed gracefully while Node still held unsent bytes: its sends end aborted, from their callbacks. */
  #closing = false;
  /**
   * A destroy() reset that lingering close: Node then calls the write callbacks
   * without an error and without saying how much of each write the OS took.
   */
  #cutShort = false;

  constructor(
    turn: Turn,
    socket: net.Socket,
    connectReq: EngineRequest | null,
    pipePath: string | null,
  ) {
    this.#turn = turn;
    this.#socket = socket;
    this.#connectReq = connectReq;
    this.#pipePath = pipePath;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    if (connectReq !== null) socket.once('connect', this.#onConnect);
  }

  get localEndpoint(): Endpoint | null {
    if (this.#pipePath !== null) return pipeEndpoint(this.#pipePath);
    const s = this.#socket;
    return tcpEndpoint(s.localAddress, s.localPort, s.localFamily);
  }

  get remoteEndpoint(): Endpoint | null {
    if (this.#pipePath !== null) return pipeEndpoint(this.#pipePath);
    const s = this.#socket;
    return tcpEndpoint(s.remoteAddress, s.remotePort, s.remoteFamily);
  }

  get unreadBytes(): number {
    return this.#stashBytes;
  }

  setNoDelay(enabled: boolean): void {
    if (this.#pipePath === null) this.#socket.setNoDelay(enabled);
  }

  recvPooled(req: EngineRequest): void {
    this.recv(req, null);
  }

  recv(req: EngineRequest, buffer: Uint8Array | null): void {
    if (this.#stashBytes > 0) {
      if (buffer === null) {
        const pooled = this.#turn.pool.take();
        const n = this.#takeStash(pooled);
        req.lease = this.#turn.pool.lease(pooled, n);
        completeNow(this.#turn, req, n, null);
      } else {
        completeNow(this.#turn, req, this.#takeStash(buffer), null);
      }
    } else if (this.#error !== null) {
      completeNow(this.#turn, req, 0, this.#error);
    } else if (this.#eof || this.#gone) {
      completeNow(this.#turn, req, 0, null);
    } else {
      this.#recvs.push(req, buffer);
    }
  }

  send(req: EngineRequest, data: Uint8Array | readonly Uint8Array[], size: number): void {
    if (this.#error !== null || this.#gone) {
      completeNow(this.#turn, req, 0, this.#error ?? connectionClosedError());
      return;
    }
    const socket = this.#socket;
    const single = ArrayBuffer.isView(data);
    const parts = data as readonly Uint8Array[];
    if (
      size <= STAGED_SEND_LIMIT - this.#stagedBytes &&
      this.#sends.empty &&
      socket.writableLength === 0
    ) {
      this.#stage(single ? data : parts, size);
      completeNow(this.#turn, req, size, null);
      return;
    }
    // Staged bytes were sent before this one: they leave first.
    this.writeStaged();
    this.#sends.push(req, size);
    if (single) {
      socket.write(data, this.#onWritten);
      return;
    }
    if (parts.length === 0) {
      socket.write(EMPTY, this.#onWritten);
      return;
    }
    // Corked writes leave as one writev; only the last carries the callback.
    socket.cork();
    const last = parts.length - 1;
    for (let i = 0; i < last; i++) socket.write(parts[i] as Uint8Array);
    socket.write(parts[last] as Uint8Array, this.#onWritten);
    socket.uncork();
  }

  shutdown(req: EngineRequest): void {
    if (this.#error !== null || this.#gone) {
      completeNow(this.#turn, req, 0, this.#error ?? connectionClosedError());
      return;
    }
    this.writeStaged();
    this.#shutdownReq = req;
    this.#socket.end(this.#onFinished);
    // trySend fails at once from now on (EPIPE): WRITABLE holds.
    this.#wakePolls();
  }

  poll(req: EngineRequest, events: number): void {
    const bits = this.#holding() & (events | ERROR);
    if (bits !== 0) {
      // Ready already: still not inside the posting call (rule 1).
      completeNow(this.#turn, req, bits, null);
      return;
    }
    this.#polls ??= new PollQueue();
    this.#polls.push(req, events);
    if ((events & WRITABLE) !== 0 && !this.#drainHooked) {
      // Room opens when Node hands its bytes to the OS: 'drain' says so (see #holding).
      this.#drainHooked = true;
      this.#socket.on('drain', this.#onDrain);
    }
  }

  tryRecv(buffer: Uint8Array): number {
    // A posted recv is served first (rule 7); it leaves the stash empty.
    if (!this.#recvs.empty) return WOULD_BLOCK;
    if (this.#stashBytes > 0) return this.#takeStash(buffer);
    if (this.#error !== null) throw this.#error;
    if (this.#eof || this.#gone) return 0;
    return WOULD_BLOCK;
  }

  trySend(data: Uint8Array): number {
    if (this.#error !== null) throw this.#error;
    if (this.#gone || this.#socket.writableEnded) throw connectionClosedError();
    // Posted sends leave first (rule 7); a connecting socket has no send buffer yet.
    if (this.#connectReq !== null || !this.#sends.empty) return WOULD_BLOCK;
    const room = this.#sendRoom();
    if (room <= 0) return WOULD_BLOCK;
    const n = Math.min(room, data.byteLength);
    // Staged: copied now (the caller's buffer is free on return), written with the turn's other stages.
    this.#stage(n === data.byteLength ? data : data.subarray(0, n), n);
    return n;
  }

  /**
   * Room left in the try-send buffer: {@link TRY_SEND_LIMIT}, or Node's
   * high-water mark if that is higher (a full buffer must be past it, so
   * that Node emits 'drain').
   */
  #sendRoom(): number {
    const socket = this.#socket;
    const limit = Math.max(TRY_SEND_LIMIT, socket.writableHighWaterMark);
    return limit - socket.writableLength - this.#stagedBytes;
  }

  /**
   * The {@link Readiness} bits that hold now, derived from this stream's
   * state (Node reports none). Every change that can make a bit hold wakes
   * the pending polls: data stashed, end of stream, an error or close, the
   * connect, the last posted send done, staged bytes written, Node's 'drain'.
   * WRITABLE can stop holding only while bytes are staged (they are written
   * at the end of the turn, which wakes the polls) or while Node holds the
   * whole limit: that is past its high-water mark, so it emits 'drain' once
   * the OS has taken them all.
   */
  #holding(): number {
    if (this.#error !== null || this.#gone) {
      // Failed, or closed both ways: try-calls throw or return 0 at once.
      return ERROR | READABLE | WRITABLE | HANGUP;
    }
    let bits = 0;
    if (this.#eof) bits |= HANGUP;
    if (this.#recvs.empty && (this.#stashBytes > 0 || this.#eof)) bits |= READABLE;
    if (
      this.#socket.writableEnded ||
      (this.#connectReq === null && this.#sends.empty && this.#sendRoom() > 0)
    ) {
      bits |= WRITABLE;
    }
    return bits;
  }

  /** Completes the pending polls whose events now hold. Called wherever state changes. */
  #wakePolls(): void {
    const polls = this.#polls;
    if (polls !== null && !polls.empty) polls.wake(this.#turn, this.#holding());
  }

  readonly #onDrain = (): void => {
    this.#wakePolls();
  };

  cancel(req: EngineRequest | null): boolean {
    if (req === null) {
      const any =
        !this.#recvs.empty ||
        !this.#sends.empty ||
        this.#shutdownReq !== null ||
        this.#connectReq !== null ||
        (this.#polls !== null && !this.#polls.empty);
      this.#abortRecvs();
      this.#polls?.abort(this.#turn);
      if (
        this.#connectReq !== null ||
        ((!this.#sends.empty || this.#shutdownReq !== null) && this.#socket.writableLength > 0)
      ) {
        // Unsent bytes of a pending send cannot be withdrawn: reset the connection (see notes).
        // Bytes Node holds for sends already completed (staged, try-sent) are no reason to.
        this.#resetToCancel();
      } else {
        this.#abortWrites();
      }
      return any;
    }
    if (this.#recvs.remove(req) || this.#polls?.remove(req)) {
      completeNow(this.#turn, req, 0, abortedError());
      return true;
    }
    if (req === this.#connectReq || req === this.#shutdownReq || this.#sends.includes(req)) {
      if (req !== this.#connectReq && this.#socket.writableLength === 0) {
        this.#abortWrites();
        // No posted send left: a WRITABLE poll may hold now.
        this.#wakePolls();
      } else {
        this.#resetToCancel();
      }
      return true;
    }
    return false;
  }

  /** Aborts everything and resets the connection; later operations fail with ECONNABORTED. */
  #resetToCancel(): void {
    this.#error ??= resetToCancelError();
    this.#dropStaged();
    this.#abortAll();
    this.#reset();
  }

  /** Abortive close: RST on TCP; a Unix socket has no reset, so it is just destroyed (Node throws otherwise). */
  #reset(): void {
    if (this.#pipePath === null) this.#socket.resetAndDestroy();
    else this.#socket.destroy();
  }

  close(abortive: boolean): void {
    if (this.#gone) {
      // destroy() after close() (contract: abortive wins): reset a close still lingering.
      // The sends Node holds then complete from their write callbacks, aborted.
      if (abortive && this.#closing && !this.#socket.destroyed) {
        this.#cutShort = true;
        this.#reset();
      }
      return;
    }
    const socket = this.#socket;
    if (abortive) {
      this.#dropStaged();
      this.#abortAll();
      this.#gone = true;
      this.#reset();
      return;
    }
    // Staged sends have completed: their bytes must still reach the peer.
    this.writeStaged();
    this.#gone = true;
    if (socket.writableLength === 0) {
      this.#abortAll();
      socket.destroy();
      return;
    }
    // Node still holds bytes the OS has not taken: FIN after them, then close.
    // Those sends' buffers stay Node's until it lets go of them (rule 3), so
    // each completes, aborted with the bytes it moved, from its write callback.
    this.#abortBufferless();
    this.#closing = true;
    socket.end();
    const linger = setTimeout(() => socket.destroy(), LINGER_MS);
    linger.unref();
    socket.once('close', () => clearTimeout(linger));
  }

  /** Writes staged sends out in one write (writev for several). Called at the end of the turn. */
  writeStaged(): void {
    const first = this.#staged;
    if (first === null) return;
    const more = this.#stagedMore;
    this.#dropStaged();
    const socket = this.#socket;
    if (this.#gone || socket.destroyed) return;
    if (more === null) {
      socket.write(first);
    } else {
      socket.cork();
      socket.write(first);
      for (const part of more) socket.write(part);
      socket.uncork();
    }
    if (socket.writableLength > 0) this.#turn.pinArena();
    // The staged bytes are the OS's or Node's now: the try-send buffer may have room again.
    this.#wakePolls();
  }

  /** Copies a send into the stage; it leaves with the rest at the end of the turn. */
  #stage(data: Uint8Array | readonly Uint8Array[], size: number): void {
    if (size === 0) return;
    const copy = this.#turn.stageBuffer(size);
    if (ArrayBuffer.isView(data)) {
      copy.set(data);
    } else {
      let at = 0;
      for (const part of data as readonly Uint8Array[]) {
        copy.set(part, at);
        at += part.byteLength;
      }
    }
    if (this.#staged === null) {
      this.#staged = copy;
      this.#turn.stage(this);
    } else {
      this.#stagedMore ??= [];
      this.#stagedMore.push(copy);
    }
    this.#stagedBytes += size;
  }

  #dropStaged(): void {
    this.#stagedBytes = 0;
    this.#staged = null;
    this.#stagedMore = null;
  }

  #takeStash(buffer: Uint8Array): number {
    const stash = this.#stash;
    let filled = 0;
    while (filled < buffer.length && stash.length > 0) {
      const chunk = stash[0] as Buffer;
      const n = Math.min(chunk.length, buffer.length - filled);
      chunk.copy(buffer, filled, 0, n);
      filled += n;
      if (n === chunk.length) stash.shift();
      else stash[0] = chunk.subarray(n);
    }
    this.#stashBytes -= filled;
    if (this.#paused && this.#stashBytes < MAX_UNREAD_BYTES) {
      this.#paused = false;
      this.#socket.resume();
    }
    return filled;
  }

  readonly #onData = (chunk: Buffer): void => {
    let offset = 0;
    const recvs = this.#recvs;
    while (!recvs.empty && offset < chunk.length) {
      const buffer = recvs.headValue;
      const req = recvs.shift() as EngineRequest;
      // A pooled recv takes its buffer only now that data is here.
      const target = buffer ?? this.#turn.pool.take();
      const n = Math.min(target.length, chunk.length - offset);
      chunk.copy(target, 0, offset, offset + n);
      offset += n;
      if (buffer === null) req.lease = this.#turn.pool.lease(target as Buffer, n);
      complete(this.#turn, req, n, null);
    }
    if (offset < chunk.length) {
      this.#stash.push(offset === 0 ? chunk : chunk.subarray(offset));
      this.#stashBytes += chunk.length - offset;
      if (!this.#paused && this.#stashBytes >= MAX_UNREAD_BYTES) {
        this.#paused = true;
        this.#socket.pause();
      }
      // Bytes no recv took: READABLE holds (a pending poll never misses them).
      this.#wakePolls();
    }
  };

  readonly #onEnd = (): void => {
    this.#eof = true;
    // Pending receives imply an empty stash: they see end of stream now.
    while (!this.#recvs.empty) complete(this.#turn, this.#recvs.shift() as EngineRequest, 0, null);
    this.#wakePolls();
  };

  readonly #onError = (err: Error): void => {
    const error = toOsError(err, 'read');
    this.#error ??= error;
    const connect = this.#connectReq;
    if (connect !== null) {
      this.#connectReq = null;
      complete(this.#turn, connect, 0, error);
    }
    this.#failAll(error);
    this.#wakePolls();
  };

  readonly #onClose = (): void => {
    if (this.#gone && this.#recvs.empty && this.#sends.empty) return;
    this.#gone = true;
    // Closed without an error event: receives see end of stream, sends cannot finish.
    while (!this.#recvs.empty) {
      complete(this.#turn, this.#recvs.shift() as EngineRequest, 0, this.#error);
    }
    this.#failAll(this.#error ?? connectionClosedError());
    this.#wakePolls();
  };

  readonly #onConnect = (): void => {
    const req = this.#connectReq;
    if (req === null) return;
    this.#connectReq = null;
    req.result = this;
    complete(this.#turn, req, 0, null);
    this.#wakePolls();
  };

  readonly #onWritten = (err?: Error | null): void => {
    // The callback of a write a cancel already completed; callbacks come in order.
    if (this.#staleCallbacks > 0) {
      this.#staleCallbacks--;
      return;
    }
    // Empty after the connection failed: every send was already completed with the error.
    if (this.#sends.empty) return;
    const size = this.#sends.headValue;
    const req = this.#sends.shift() as EngineRequest;
    if (this.#closing) complete(this.#turn, req, err || this.#cutShort ? 0 : size, abortedError());
    else if (err) complete(this.#turn, req, 0, toOsError(err, 'write'));
    else complete(this.#turn, req, size, null);
    // The last posted send is done: try-sends may go (rule 7 kept), WRITABLE may hold.
    if (this.#sends.empty) this.#wakePolls();
  };

  readonly #onFinished = (err?: Error | null): void => {
    const req = this.#shutdownReq;
    if (req === null) return;
    this.#shutdownReq = null;
    complete(this.#turn, req, 0, err ? toOsError(err, 'shutdown') : null);
  };

  #abortRecvs(): void {
    while (!this.#recvs.empty) {
      complete(this.#turn, this.#recvs.shift() as EngineRequest, 0, abortedError());
    }
  }

  /**
   * Completes every pending send and the shutdown as cancelled. Bytes the OS
   * already took are reported: Node's `writableLength` counts the bytes it
   * still holds, which belong to the newest sends.
   */
  #abortWrites(): void {
    this.#abortSends();
    this.#abortShutdown();
  }

  #abortSends(): void {
    let untaken = this.#socket.writableLength;
    const reqs: EngineRequest[] = [];
    const sizes: number[] = [];
    this.#sends.drain(reqs, sizes);
    this.#staleCallbacks += reqs.length;
    let firstUntaken = reqs.length;
    for (let i = reqs.length - 1; i >= 0 && untaken > 0; i--) {
      untaken -= sizes[i] as number;
      firstUntaken = i;
    }
    for (let i = 0; i < reqs.length; i++) {
      const size = sizes[i] as number;
      const req = reqs[i] as EngineRequest;
      if (i < firstUntaken) complete(this.#turn, req, size, null);
      else if (i === firstUntaken && untaken < 0)
        complete(this.#turn, req, -untaken, abortedError());
      else complete(this.#turn, req, 0, abortedError());
    }
  }

  #abortShutdown(): void {
    const shutdown = this.#shutdownReq;
    if (shutdown !== null) {
      this.#shutdownReq = null;
      complete(this.#turn, shutdown, 0, abortedError());
    }
  }

  /** Aborts what holds no buffer Node may still read: the connect, recvs, polls, the shutdown. */
  #abortBufferless(): void {
    const connect = this.#connectReq;
    if (connect !== null) {
      this.#connectReq = null;
      complete(this.#turn, connect, 0, abortedError());
    }
    this.#abortRecvs();
    this.#polls?.abort(this.#turn);
    this.#abortShutdown();
  }

  #abortAll(): void {
    this.#abortBufferless();
    this.#abortSends();
  }

  #failAll(error: Error): void {
    while (!this.#recvs.empty) complete(this.#turn, this.#recvs.shift() as EngineRequest, 0, error);
    while (!this.#sends.empty) {
      const req = this.#sends.shift() as EngineRequest;
      complete(this.#turn, req, 0, this.#closing ? abortedError() : error);
    }
    const shutdown = this.#shutdownReq;
    if (shutdown !== null) {
      this.#shutdownReq = null;
      complete(this.#turn, shutdown, 0, error);
    }
  }
}

const EMPTY = new Uint8Array(0);

/** A `net.Server` behind the EngineListener contract. */
class NodeListener implements EngineListener {
  onAcceptError: ((error: Error, retryMs: number) => void) | null = null;
  readonly #turn: Turn;
  readonly #server: net.Server;
  readonly #backlog: number;
  readonly #pipePath: string | null;
  readonly #accepts: EngineRequest[] = [];
  readonly #ready: NodeStream[] = [];
  #polls: PollQueue | null = null;
  #closed = false;
  readonly endpoint: Endpoint;

  constructor(queue: Turn, server: net.Server, backlog: number, pipePath: string | null) {
    this.#turn = queue;
    this.#server = server;
    this.#backlog = backlog;
    this.#pipePath = pipePath;
    const address = server.address();
    this.endpoint =
      pipePath !== null || address === null || typeof address === 'string'
        ? pipeEndpoint(pipePath ?? String(address))
        : (tcpEndpoint(address.address, address.port, address.family) as Endpoint);
    server.on('connection', this.#onConnection);
    // Errors after listening (EMFILE on accept, …) are conditions libuv handles at once
    // (it drops the connection it could not take); they must not crash the process.
    server.on('error', (err) => this.onAcceptError?.(toOsError(err, 'accept'), 0));
  }

  accept(req: EngineRequest): void {
    const ready = this.#ready.shift();
    if (ready !== undefined) {
      req.result = ready;
      completeNow(this.#turn, req, 0, null);
    } else if (this.#closed) {
      completeNow(this.#turn, req, 0, abortedError());
    } else {
      this.#accepts.push(req);
    }
  }

  poll(req: EngineRequest, events: number): void {
    if (this.#closed) {
      completeNow(this.#turn, req, 0, abortedError());
    } else if ((this.#holding() & events) !== 0) {
      completeNow(this.#turn, req, READABLE, null);
    } else {
      this.#polls ??= new PollQueue();
      this.#polls.push(req, events);
    }
  }

  tryAccept(): EngineStream | null {
    // Posted accepts are served first; one pending means the queue is empty anyway.
    if (this.#accepts.length > 0) return null;
    return this.#ready.shift() ?? null;
  }

  /** READABLE when a connection waits in the queue for tryAccept (no posted accept wants it). */
  #holding(): number {
    return this.#accepts.length === 0 && this.#ready.length > 0 ? READABLE : 0;
  }

  cancel(req: EngineRequest | null): boolean {
    if (req === null) {
      const any = this.#accepts.length > 0;
      for (const r of this.#accepts.splice(0)) complete(this.#turn, r, 0, abortedError());
      const polled = this.#polls?.abort(this.#turn) ?? false;
      return any || polled;
    }
    if (this.#polls?.remove(req)) {
      completeNow(this.#turn, req, 0, abortedError());
      return true;
    }
    const i = this.#accepts.indexOf(req);
    if (i < 0) return false;
    this.#accepts.splice(i, 1);
    complete(this.#turn, req, 0, abortedError());
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.cancel(null);
    for (const stream of this.#ready.splice(0)) stream.close(true);
    this.#server.close();
  }

  readonly #onConnection = (socket: net.Socket): void => {
    const stream = new NodeStream(this.#turn, socket, null, this.#pipePath);
    const req = this.#accepts.shift();
    if (req !== undefined) {
      req.result = stream;
      complete(this.#turn, req, 0, null);
    } else if (this.#closed || this.#ready.length >= this.#backlog) {
      stream.close(true);
    } else {
      this.#ready.push(stream);
      this.#polls?.wake(this.#turn, READABLE);
    }
  };
}

function listen(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(toOsError(err, 'listen'));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(options);
  });
}

/** The portable engine. One instance serves any number of handles on its event loop. */
export class NodeEngine implements Engine {
  readonly name = 'node';
  readonly #turn = new Turn();

  setSink(sink: CompletionSink): void {
    this.#turn.setSink(sink);
  }

  async listenTcp(options: TcpListenOptions): Promise<EngineListener> {
    const server = net.createServer({ allowHalfOpen: true });
    await listen(server, {
      host: options.host,
      port: options.port,
      backlog: options.backlog,
      exclusive: options.shared !== true,
    });
    return new NodeListener(this.#turn, server, options.backlog, null);
  }

  async listenPipe(options: PipeListenOptions): Promise<EngineListener> {
    const server = net.createServer({ allowHalfOpen: true });
    await listen(server, { path: options.path, backlog: options.backlog, exclusive: true });
    if (process.platform !== 'win32') {
      try {
        await chmod(options.path, options.mode);
      } catch (err) {
        server.close();
        throw toOsError(err, 'chmod');
      }
    }
    return new NodeListener(this.#turn, server, options.backlog, options.path);
  }

  connectTcp(req: EngineRequest, host: string, port: number): EngineStream {
    const socket = net.connect({ host, port, allowHalfOpen: true });
    return new NodeStream(this.#turn, socket, req, null);
  }

  connectPipe(req: EngineRequest, path: string): EngineStream {
    const socket = net.connect({ path, allowHalfOpen: true });
    return new NodeStream(this.#turn, socket, req, path);
  }
}
