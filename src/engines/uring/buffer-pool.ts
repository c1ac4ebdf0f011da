/**
 * Receive memory that is not the caller's: the provided-buffer pool of
 * pooled recvs (a kernel buffer ring, its leases, the recvs waiting for a
 * buffer to come back) and the read-ahead stages of plain recvs.
 *
 * Contracts:
 * - The pool is one ArrayBuffer of POOL_BUFFER_COUNT × POOL_BUFFER_SIZE,
 *   registered with the kernel on the first pooled recv; the kernel gets
 *   POOL_INITIAL buffers and more (doubling, once per turn) only when it answers -ENOBUFS,
 *   so the pages the pool touches follow the peak of buffers in use.
 * - A buffer the kernel filled is the lease holder's until `release()`
 *   (idempotent), then the kernel's again; a recv waiting for one is posted
 *   again at each release, oldest first.
 * - A buffered send of a lent buffer's bytes pins the buffer instead of
 *   copying them (`pin`): a release while it is pinned is kept until the
 *   last pin goes, so the kernel never refills memory a send still reads.
 * - A stage is never handed out while the kernel still reads into it.
 */
import { add, counters, URING_ENGINE } from '../../core/counters.js';
import { osErrorFromErrno } from '../../core/errors.js';
import { type BufferLease, POOL_BUFFER_SIZE } from '../contract.js';
import { PIN_MIN_BYTES, POOL_INITIAL, STAGE_SIZE, STAGE_SPARES } from './constants.js';
import type { UringRing } from './ring.js';
import { SendArena } from './send-arena.js';
import { multishotRecvWanted, POOL_BUFFER_COUNT } from './settings.js';

/** A stream whose pooled recv waits for a pool buffer to come back. */
export interface PoolWaiter {
  retryPooled(): void;
}

/**
 * Read-ahead for a stream that receives more than its recv buffers hold: one
 * kernel recv into `buffer` (STAGE_SIZE), copied out to the recvs that follow.
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

/** States of a pool buffer in BufferPool#lent (0: the kernel's, or held for no recv). */
const LENT = 1;
const RELEASE_DUE = 2;

/** The pool buffers, read-ahead stages and send arena of one ring. */
export class BufferPool {
  readonly #ring: UringRing;
  /**
   * Pooled recvs use one multishot recv per stream (kernel 6.0+); false
   * after a kernel refused one, or with OVERLAPPED_URING_RECV_MULTISHOT=0.
   */
  multishotRecv = multishotRecvWanted();
  #pool: ArrayBuffer | null = null;
  /** The whole pool as one Buffer, for copies out of it without a view per copy. */
  #poolBytes: Buffer | null = null;
  #poolError: Error | null = null;
  #published = 0;
  /** A grow happened in this turn (see `grow`). */
  #grewThisTurn = false;
  /** Per buffer: LENT while a lease has it, RELEASE_DUE once released while pinned. */
  #lent: Uint8Array | null = null;
  /** Per buffer: buffered sends reading it (see `pin`). */
  #pins: Uint16Array | null = null;
  /** Buffers with at least one pin; at most a quarter of the pool, so recvs keep the rest. */
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
    const pool = new ArrayBuffer(POOL_BUFFER_SIZE * POOL_BUFFER_COUNT);
    const ring = this.#ring;
    const rc = ring.addon.registerPool(
      ring.handle,
      pool,
      POOL_BUFFER_SIZE,
      POOL_BUFFER_COUNT,
      POOL_INITIAL,
    );
    if (rc < 0) {
      this.#poolError = osErrorFromErrno(rc, 'io_uring_register_buf_ring');
      return this.#poolError;
    }
    this.#pool = pool;
    this.#poolBytes = Buffer.from(pool);
    this.#lent = new Uint8Array(POOL_BUFFER_COUNT);
    this.#pins = new Uint16Array(POOL_BUFFER_COUNT);
    this.#published = POOL_INITIAL;
    return null;
  }

  /**
   * The kernel found no pool buffer: publish more if the pool has some it
   * never had (true), else the recv must wait for a release (false).
   */
  grow(): boolean {
    // Every -ENOBUFS of one batch reports the same shortage: grow once for it, not once each.
    if (this.#grewThisTurn) return true;
    if (this.#published >= POOL_BUFFER_COUNT) return false;
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

  /** The lease of pool buffer `bid`, whose bytes from `offset` on are `bytes` long. */
  lease(bid: number, offset: number, bytes: number): BufferLease {
    const at = bid * POOL_BUFFER_SIZE + offset;
    (this.#lent as Uint8Array)[bid] = LENT;
    return new UringLease(this, bid, Buffer.from(this.#pool as ArrayBuffer, at, bytes));
  }

  /** A lease of buffer `bid` was released: the buffer goes back once no send reads it. */
  giveBack(bid: number): void {
    const lent = this.#lent as Uint8Array;
    if (((this.#pins as Uint16Array)[bid] as number) > 0) {
      lent[bid] = RELEASE_DUE;
      return;
    }
    lent[bid] = 0;
    this.release(bid);
  }

  /**
   * Pins the lent buffer that `data` lies in, for a buffered send of its
   * bytes: the buffer's id, or -1 when the send should be copied instead
   * (not a lent pool buffer, too small to be worth a buffer, or enough of
   * the pool pinned already that recvs would run short).
   */
  pin(data: Uint8Array, size: number): number {
    if (size < PIN_MIN_BYTES || data.buffer !== this.#pool) return -1;
    const bid = Math.floor(data.byteOffset / POOL_BUFFER_SIZE);
    if ((this.#lent as Uint8Array)[bid] !== LENT) return -1;
    const pins = this.#pins as Uint16Array;
    const n = pins[bid] as number;
    if (n === 0) {
      if (this.#pinned >= POOL_BUFFER_COUNT >> 2) return -1;
      this.#pinned++;
    }
    pins[bid] = n + 1;
    return bid;
  }

  /** A buffered send of buffer `bid` is done with it. */
  unpin(bid: number): void {
    const pins = this.#pins as Uint16Array;
    const n = (pins[bid] as number) - 1;
    pins[bid] = n;
    if (n > 0) return;
    this.#pinned--;
    const lent = this.#lent as Uint8Array;
    if (lent[bid] !== RELEASE_DUE) return;
    lent[bid] = 0;
    this.release(bid);
  }

  /** Copies `bytes` bytes of pool buffer `bid`, from `offset` on, to the start of `target`. */
  copyOut(bid: number, offset: number, bytes: number, target: Uint8Array): void {
    const at = bid * POOL_BUFFER_SIZE + offset;
    (this.#poolBytes as Buffer).copy(target, 0, at, at + bytes);
  }

  /** Buffer `bid` is free again; a recv waiting for one is posted again. */
  release(bid: number): void {
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
    pool.giveBack(this.#bid);
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
