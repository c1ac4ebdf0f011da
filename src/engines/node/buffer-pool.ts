import { add, counters, NODE_ENGINE } from '../../core/counters.js';
import type { BufferLease } from '../contract.js';

/**
 * Bytes of each pool buffer: what one pooled recv completes with at most
 * (within the contract's MAX_POOLED_RECV_BYTES). Each lease holds a buffer
 * of its own here, so a larger one would cost small messages that much more.
 */
const NODE_POOL_BUFFER_SIZE = 8 * 1024;

/**
 * Free pool buffers kept for reuse: 1024 × 8 KiB (8 MiB). Buffers beyond that
 * go to the GC when released, so a burst does not pin memory for good.
 */
const MAX_FREE_BUFFERS = 1024;

/**
 * The node engine's pool for pooled receives: a buffer is taken only when
 * data has arrived for a pooled recv (the bytes are copied from Node's chunk
 * into it), and returned by the lease's release.
 */
export class BufferPool {
  readonly #free: Buffer[] = [];

  /** A buffer of {@link NODE_POOL_BUFFER_SIZE} bytes to copy received data into. */
  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(NODE_POOL_BUFFER_SIZE);
  }

  /** Lends `buffer`, holding `bytes` received bytes, to a completion. */
  lease(buffer: Buffer, bytes: number): BufferLease {
    return new PoolLease(this, buffer, bytes);
  }

  /** @internal */
  give(buffer: Buffer): void {
    if (this.#free.length < MAX_FREE_BUFFERS) this.#free.push(buffer);
  }
}

class PoolLease implements BufferLease {
  readonly view: Buffer;
  #pool: BufferPool | null;
  readonly #buffer: Buffer;

  constructor(pool: BufferPool, buffer: Buffer, bytes: number) {
    this.#pool = pool;
    this.#buffer = buffer;
    this.view = buffer.subarray(0, bytes);
    add(counters.poolLent, NODE_ENGINE);
  }

  release(): void {
    const pool = this.#pool;
    if (pool === null) return;
    this.#pool = null;
    add(counters.poolLent, NODE_ENGINE, -1);
    pool.give(this.#buffer);
  }
}
