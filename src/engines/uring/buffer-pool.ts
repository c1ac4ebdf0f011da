/**
 * Receive memory that is not the caller's: the provided-buffer pool of
 * pooled recvs (a kernel buffer ring, its leases, the recvs waiting for a
 * buffer to come back) and the read-ahead stages of plain recvs.
 *
 * Contracts:
 * - The pool is one ArrayBuffer of `bufferCount` × `bufferSize` (8 MiB:
 *   128 × 64 KiB where the kernel consumes buffers incrementally, else
 *   1024 × 8 KiB), registered with the kernel on the first pooled recv;
 *   the kernel gets POOL_INITIAL buffers and more (doubling, once per
 *   turn) only when it answers -ENOBUFS, so the pages the pool touches
 *   follow the peak in use.
 * - Each CQE hands over a slice of a buffer (`take`): the whole buffer, or
 *   with incremental consumption (kernel 6.12+) just the bytes that came,
 *   the next recv going on in the same buffer. A buffer is the kernel's
 *   again once the kernel is done filling it and every slice of it is
 *   given back (a lease released, held bytes taken or dropped); a recv
 *   waiting for a buffer is posted again then, oldest first.
 * - A buffered send of a slice's bytes pins the buffer instead of copying
 *   them (`pin`): the pin counts as one more slice out, so the kernel never
 *   refills memory a send still reads, however early the lease goes.
 * - A stage is never handed out while the kernel still reads into it.
 */
import { add, counters, URING_ENGINE } from '../../core/counters.js';
import { osErrorFromErrno } from '../../core/errors.js';
import type { BufferLease } from '../contract.js';
import {
  EINVAL,
  IORING_CQE_F_BUF_MORE,
  PIN_MIN_BYTES,
  POOL_BUFFER_SHARED,
  POOL_BUFFER_WHOLE,
  POOL_INITIAL,
  STAGE_SIZE,
  STAGE_SPARES,
} from './constants.js';
import type { UringRing } from './ring.js';
import { SendArena } from './send-arena.js';
import { incrementalPoolWanted, multishotRecvWanted, poolBufferCount } from './settings.js';

/** A stream whose pooled recv waits for a pool buffer to come back. */
export interface PoolWaiter {
  retryPooled(): void;
}

/**
 * Read-ahead for a stream that receives more than its recv buffers hold: the
 * bytes a recvmsg brought past the recv's own buffer, in `buffer`
 * (STAGE_SIZE), copied out to the recvs that follow.
 */
export class Stage {
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

/** The pool buffers, read-ahead stages and send arena of one ring. */
export class BufferPool {
  readonly #ring: UringRing;
  /**
   * Pooled recvs use one multishot recv per stream (kernel 6.0+); false
   * after a kernel refused one, or with OVERLAPPED_URING_RECV_MULTISHOT=0.
   */
  multishotRecv = multishotRecvWanted();
  /**
   * The kernel takes from a buffer only the bytes each recv needs, so small
   * messages share one (IOU_PBUF_RING_INC, kernel 6.12+); false on older
   * kernels and with OVERLAPPED_URING_POOL_INCREMENTAL=0. Set by `ready`.
   */
  incremental = false;
  /** Bytes of each buffer, and how many the pool has at most (set once registered). */
  #size = 0;
  #count = 0;
  #pool: ArrayBuffer | null = null;
  /** The whole pool as one Buffer, for copies out of it without a view per copy. */
  #poolBytes: Buffer | null = null;
  #poolError: Error | null = null;
  #published = 0;
  /** A grow happened in this turn (see `grow`). */
  #grewThisTurn = false;
  /** Per buffer: its slices lent, held or pinned by a send (see `take`, `pin`). */
  #refs: Uint32Array | null = null;
  /** Per buffer: 1 once the kernel is done filling it (it goes back when its refs do). */
  #filled: Uint8Array | null = null;
  /** Per buffer, incremental: where the kernel's next bytes in it go. */
  #fill: Uint32Array | null = null;
  /**
   * Buffered sends holding a pin (each also one of its buffer's #refs); at
   * most a quarter of the pool's count, so at most that many buffers are
   * pinned and recvs keep the rest.
   */
  #pinned = 0;
  readonly #waiters: PoolWaiter[] = [];
  readonly #stages: Stage[] = [];
  /** Copies of the sends completed before the kernel took them (send-arena.ts). */
  readonly arena = new SendArena();

  constructor(ring: UringRing) {
    this.#ring = ring;
  }

  /** Registers the pool on first use; the error when it cannot be, else null. */
  ready(): Error | null {
    if (this.#pool !== null || this.#poolError !== null) return this.#poolError;
    let rc = incrementalPoolWanted() ? this.#register(true) : EINVAL;
    this.incremental = rc >= 0;
    if (rc === EINVAL) rc = this.#register(false); // a kernel before 6.12
    if (rc < 0) {
      this.#poolError = osErrorFromErrno(rc, 'io_uring_register_buf_ring');
      return this.#poolError;
    }
    const count = this.#count;
    this.#refs = new Uint32Array(count);
    this.#filled = new Uint8Array(count);
    this.#fill = new Uint32Array(count);
    this.#published = POOL_INITIAL;
    return null;
  }

  /** Buffer size and count once registered (0 before). */
  get bufferSize(): number {
    return this.#size;
  }

  get bufferCount(): number {
    return this.#count;
  }

  /**
   * Registers the layout for `incremental` consumption (64 KiB buffers, else
   * 8 KiB); the addon's status, and on success the pool is that layout. Its
   * pages are touched only as the kernel fills buffers, so a refused layout
   * costs address space, not memory.
   */
  #register(incremental: boolean): number {
    const size = incremental ? POOL_BUFFER_SHARED : POOL_BUFFER_WHOLE;
    const count = poolBufferCount(size);
    const pool = new ArrayBuffer(size * count);
    const ring = this.#ring;
    const rc = ring.addon.registerPool(
      ring.handle,
      pool,
      size,
      count,
      POOL_INITIAL,
      incremental ? 1 : 0,
    );
    if (rc >= 0) {
      this.#pool = pool;
      this.#poolBytes = Buffer.from(pool);
      this.#size = size;
      this.#count = count;
    }
    return rc;
  }

  /**
   * The kernel found no pool buffer: publish more if the pool has some it
   * never had (true), else the recv must wait for a release (false).
   */
  grow(): boolean {
    // Every -ENOBUFS of one batch reports the same shortage: grow once for it, not once each.
    if (this.#grewThisTurn) return true;
    if (this.#published >= this.#count) return false;
    const ring = this.#ring;
    const added = ring.addon.poolGrow(ring.handle, this.#published);
    this.#published += added;
    if (added > 0) {
      this.#grewThisTurn = true;
      process.nextTick(() => {
        this.#grewThisTurn = false;
      });
    }
    return added > 0;
  }

  /**
   * A CQE handed over `res` bytes of buffer `bid` (with its `flags`): where
   * in the buffer they are, each such slice to be given back once with
   * `release(bid)`. -1 when it holds no bytes (`res` of 0 or an error);
   * there is nothing to release then.
   */
  take(bid: number, res: number, flags: number): number {
    const incremental = this.incremental;
    if (res <= 0) {
      // Incremental: the kernel consumed nothing of the buffer. Otherwise the buffer is ours.
      if (!incremental) {
        (this.#filled as Uint8Array)[bid] = 1;
        this.#giveBack(bid);
      }
      return -1;
    }
    const refs = this.#refs as Uint32Array;
    refs[bid] = (refs[bid] as number) + 1;
    if (!incremental) {
      (this.#filled as Uint8Array)[bid] = 1;
      return 0;
    }
    const fill = this.#fill as Uint32Array;
    const at = fill[bid] as number;
    fill[bid] = at + res;
    if ((flags & IORING_CQE_F_BUF_MORE) === 0) (this.#filled as Uint8Array)[bid] = 1;
    return at;
  }

  /** The lease of the slice of buffer `bid` at `offset`, `bytes` long (taken with `take`). */
  lease(bid: number, offset: number, bytes: number): BufferLease {
    const at = bid * this.#size + offset;
    return new UringLease(this, bid, Buffer.from(this.#pool as ArrayBuffer, at, bytes));
  }

  /** Copies `bytes` bytes of pool buffer `bid`, from `offset` on, to the start of `target`. */
  copyOut(bid: number, offset: number, bytes: number, target: Uint8Array): void {
    const at = bid * this.#size + offset;
    (this.#poolBytes as Buffer).copy(target, 0, at, at + bytes);
  }

  /**
   * Pins the buffer that `data` lies in, for a buffered send of its bytes:
   * the buffer's id, or -1 when the send should be copied instead (not in a
   * buffer with a slice out, too small to be worth holding a buffer for, or
   * enough of the pool pinned already that recvs would run short).
   */
  pin(data: Uint8Array, size: number): number {
    if (size < PIN_MIN_BYTES || data.buffer !== this.#pool) return -1;
    const bid = Math.floor(data.byteOffset / this.#size);
    const refs = this.#refs as Uint32Array;
    const held = refs[bid] as number;
    if (held === 0 || this.#pinned >= this.#count >> 2) return -1;
    this.#pinned++;
    refs[bid] = held + 1;
    return bid;
  }

  /** A buffered send of buffer `bid` is done with it. */
  unpin(bid: number): void {
    this.#pinned--;
    this.release(bid);
  }

  /**
   * A slice of buffer `bid` is given back (a lease released, held bytes
   * taken or dropped, a pin gone); the buffer is the kernel's again once
   * the kernel is done filling it and no slice of it is out.
   */
  release(bid: number): void {
    const refs = this.#refs as Uint32Array;
    const n = (refs[bid] as number) - 1;
    refs[bid] = n;
    if (n === 0 && (this.#filled as Uint8Array)[bid] === 1) this.#giveBack(bid);
  }

  /** Buffer `bid` goes back to the kernel; a recv waiting for one is posted again. */
  #giveBack(bid: number): void {
    (this.#filled as Uint8Array)[bid] = 0;
    (this.#fill as Uint32Array)[bid] = 0;
    const ring = this.#ring;
    ring.addon.poolRelease(ring.handle, bid);
    const waiter = this.#waiters.shift();
    waiter?.retryPooled();
  }

  /** `waiter`'s pooled recv found the pool empty. */
  waitForBuffer(waiter: PoolWaiter): void {
    this.#waiters.push(waiter);
  }

  stopWaiting(waiter: PoolWaiter): void {
    const i = this.#waiters.indexOf(waiter);
    if (i >= 0) this.#waiters.splice(i, 1);
  }

  /** An empty read-ahead buffer (see STAGE_SIZE), reused when one is spare. */
  takeStage(): Stage {
    return this.#stages.pop() ?? new Stage(Buffer.allocUnsafeSlow(STAGE_SIZE));
  }

  /** A read-ahead buffer no recv is reading into any more. */
  giveStage(stage: Stage): void {
    stage.at = 0;
    stage.end = 0;
    if (this.#stages.length < STAGE_SPARES) this.#stages.push(stage);
  }
}

class UringLease implements BufferLease {
  readonly view: Buffer;
  #pool: BufferPool | null;
  readonly #bid: number;

  constructor(pool: BufferPool, bid: number, view: Buffer) {
    this.#pool = pool;
    this.#bid = bid;
    this.view = view;
    add(counters.poolLent, URING_ENGINE);
  }

  release(): void {
    const pool = this.#pool;
    if (pool === null) return;
    this.#pool = null;
    add(counters.poolLent, URING_ENGINE, -1);
    pool.release(this.#bid);
  }
}

/** A lease of bytes copied out of a read-ahead buffer (a pooled recv after plain ones). */
export class CopyLease implements BufferLease {
  readonly view: Buffer;

  constructor(view: Buffer) {
    this.view = view;
  }

  release(): void {}
}
