/**
 * The uring engine's provided-buffer pool: published to the kernel on
 * demand, and when every buffer is lent a pooled recv waits (no error) until
 * a lease comes back. Buffered sends pin the lent buffers they send from.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Overlapped } from '../../src/core/overlapped.js';
import { type BufferLease, POOL_BUFFER_SIZE } from '../../src/engines/contract.js';
import { BufferPool } from '../../src/engines/uring/buffer-pool.js';
import { IORING_CQE_F_BUF_MORE } from '../../src/engines/uring/constants.js';
import type { UringRing } from '../../src/engines/uring/ring.js';
import { POOL_BUFFER_COUNT } from '../../src/engines/uring/settings.js';
import { delay, enginesUnderTest, next, openPair, type Pair } from '../support/engines.js';

const uring = enginesUnderTest().find((e) => e.name === 'uring');

/**
 * Takes and keeps leases until the pool has no buffer left, through `pair`:
 * the peer writes a buffer's worth at a time and the stream receives until a
 * pooled recv finds no buffer. Returns the leases and that recv, still
 * pending (the peer's last bytes wait in the socket for it).
 */
async function lendWholePool(pair: Pair): Promise<{ held: BufferLease[]; waiting: Overlapped }> {
  const held: BufferLease[] = [];
  const ov = new Overlapped();
  for (let i = 0; i <= POOL_BUFFER_COUNT; i++) {
    pair.peer.write(Buffer.alloc(POOL_BUFFER_SIZE, `m${i}`));
    for (let n = 0; n < POOL_BUFFER_SIZE; ) {
      pair.socket.recvPooled(ov);
      const c = await pair.port.dequeue({ timeoutMs: 300 });
      if (c === null) return { held, waiting: ov };
      assert.equal(c.error, null);
      const lease = ov.lease;
      assert.ok(lease !== null);
      held.push(lease);
      n += c.bytes;
    }
  }
  throw new Error(`${POOL_BUFFER_COUNT + 1} buffers' worth received: the pool never ran out`);
}

/** Releases the oldest leases until a buffer's worth is back: at least one buffer whole. */
function releaseOneBuffer(held: BufferLease[]): void {
  for (let n = 0; n < POOL_BUFFER_SIZE; ) {
    const lease = held.shift() as BufferLease;
    n += lease.view.length;
    lease.release();
  }
}

describe('uring pooled receive: pool limits', { skip: uring?.skip ?? false }, () => {
  test('every pool buffer lent: the next pooled recv waits, and completes once one comes back', async () => {
    const engine = uring?.engine;
    assert.ok(engine !== undefined);
    const pair = await openPair(engine);
    try {
      const { held, waiting } = await lendWholePool(pair);
      const lent = held.reduce((n, lease) => n + lease.view.length, 0);
      assert.ok(lent > (POOL_BUFFER_COUNT - 1) * POOL_BUFFER_SIZE, `${lent} bytes lent`);
      assert.equal(await pair.port.dequeue({ timeoutMs: 200 }), null, 'no buffer: the recv waits');
      releaseOneBuffer(held);
      const c = await next(pair.port);
      assert.equal(c.error, null);
      assert.ok(c.bytes > 0);
      assert.equal(waiting.lease?.view.length, c.bytes);
      waiting.lease?.release();
      for (const lease of held) lease.release();
    } finally {
      pair.close();
    }
  });
  test('with every pool buffer lent, a plain recv on the same stream still reads at once', async () => {
    const engine = uring?.engine;
    assert.ok(engine !== undefined);
    const pair = await openPair(engine);
    try {
      const { held, waiting } = await lendWholePool(pair);
      pair.socket.cancel(waiting);
      const aborted = await next(pair.port);
      assert.equal(aborted.overlapped, waiting);
      assert.ok(aborted.error !== null, 'the pooled recv that waited is aborted');
      // The stream's multishot recv is still armed; what arrives now finds no buffer.
      pair.peer.write('plain');
      await delay(100);
      const buffer = Buffer.alloc(2 * POOL_BUFFER_SIZE);
      const ov = new Overlapped();
      pair.socket.recv(buffer, ov);
      const c = await next(pair.port, 1000);
      assert.equal(c.error, null);
      assert.ok(
        buffer.subarray(0, c.bytes).toString().endsWith('plain'),
        'what waited, then "plain"',
      );
      for (const lease of held) lease.release();
    } finally {
      pair.close();
    }
  });
});

describe('uring pool: growth, slices, and the buffers buffered sends pin', () => {
  /**
   * A pool over a stand-in ring that records the buffers given back to the
   * kernel; `incremental`: whether the stand-in kernel takes IOU_PBUF_RING_INC.
   */
  function poolWithFakeRing(incremental = false): {
    pool: BufferPool;
    returned: number[];
    grown: number[];
  } {
    const returned: number[] = [];
    const grown: number[] = [];
    const addon = {
      registerPool: (...args: unknown[]) => (args[5] === 1 && !incremental ? -22 : 32),
      poolGrow: (_handle: unknown, n: number) => {
        grown.push(n);
        return n;
      },
      poolRelease: (_handle: unknown, bid: number) => {
        returned.push(bid);
      },
    };
    const pool = new BufferPool({ addon, handle: {} } as unknown as UringRing);
    // What the stand-in kernel can do decides here, not OVERLAPPED_URING_POOL_INCREMENTAL.
    const saved = process.env.OVERLAPPED_URING_POOL_INCREMENTAL;
    delete process.env.OVERLAPPED_URING_POOL_INCREMENTAL;
    try {
      assert.equal(pool.ready(), null);
    } finally {
      if (saved !== undefined) process.env.OVERLAPPED_URING_POOL_INCREMENTAL = saved;
    }
    assert.equal(pool.incremental, incremental);
    return { pool, returned, grown };
  }

  /** What a CQE for `bytes` of buffer `bid` hands over: its lease. */
  function arrive(pool: BufferPool, bid: number, bytes: number, more = false): BufferLease {
    const at = pool.take(bid, bytes, more ? IORING_CQE_F_BUF_MORE : 0);
    assert.ok(at >= 0);
    return pool.lease(bid, at, bytes);
  }

  test('the pool doubles at most once per turn, however many recvs of the turn found it empty', async () => {
    const { pool, grown } = poolWithFakeRing();
    assert.equal(pool.grow(), true);
    assert.equal(pool.grow(), true, 'the room made this turn serves the other recvs too');
    assert.equal(pool.grow(), true);
    assert.deepEqual(grown, [32], 'one doubling, from the 32 buffers published first');
    await new Promise<void>((resolve) => process.nextTick(resolve));
    assert.equal(pool.grow(), true);
    assert.deepEqual(grown, [32, 64], 'a later shortage doubles again');
  });

  test('incremental: slices of one buffer follow each other; it goes back once the kernel is done and every slice is', () => {
    const { pool, returned } = poolWithFakeRing(true);
    const a = arrive(pool, 7, 100, true);
    const b = arrive(pool, 7, 50, true);
    assert.equal(
      b.view.byteOffset - a.view.byteOffset,
      100,
      'the next bytes go on where the last stopped',
    );
    a.release();
    b.release();
    assert.deepEqual(returned, [], 'the kernel still fills it');
    const c = arrive(pool, 7, POOL_BUFFER_SIZE - 150); // the last slice: no F_BUF_MORE
    assert.equal(c.view.byteOffset - a.view.byteOffset, 150);
    assert.deepEqual(returned, []);
    c.release();
    assert.deepEqual(returned, [7], 'back once, after the last slice');
    const again = arrive(pool, 7, 10, true);
    assert.equal(again.view.byteOffset, a.view.byteOffset, 'refilled from its start');
    assert.equal(pool.take(7, 0, 0), -1, 'a CQE with no bytes hands over no slice');
    assert.deepEqual(returned, [7]);
  });

  test('whole buffers (a kernel before 6.12): each CQE hands over its buffer; a CQE with no bytes gives it back', () => {
    const { pool, returned } = poolWithFakeRing(false);
    const lease = arrive(pool, 2, 64);
    assert.equal(lease.view.byteOffset % POOL_BUFFER_SIZE, 0);
    lease.release();
    assert.deepEqual(returned, [2]);
    assert.equal(pool.take(4, 0, 0), -1);
    assert.deepEqual(returned, [2, 4]);
  });

  test('a lease released while a send pins its buffer goes back to the kernel only after the last unpin', () => {
    const { pool, returned } = poolWithFakeRing();
    const lease = arrive(pool, 3, POOL_BUFFER_SIZE);
    const first = pool.pin(lease.view, POOL_BUFFER_SIZE);
    const second = pool.pin(lease.view.subarray(4096), POOL_BUFFER_SIZE - 4096);
    assert.equal(first, 3);
    assert.equal(second, 3);
    lease.release();
    assert.deepEqual(returned, [], "pinned: not the kernel's yet");
    pool.unpin(3);
    assert.deepEqual(returned, []);
    pool.unpin(3);
    assert.deepEqual(returned, [3], 'back once, after the last pin');
    lease.release();
    assert.deepEqual(returned, [3], 'release stays idempotent');
  });

  test('a pinned buffer whose lease is still held stays lent after unpin; release then gives it back', () => {
    const { pool, returned } = poolWithFakeRing();
    const lease = arrive(pool, 5, POOL_BUFFER_SIZE);
    assert.equal(pool.pin(lease.view, POOL_BUFFER_SIZE), 5);
    pool.unpin(5);
    assert.deepEqual(returned, []);
    lease.release();
    assert.deepEqual(returned, [5]);
  });

  test('what is not pinned: small sends, memory outside the pool, released buffers; at most a quarter of the pool', () => {
    const { pool } = poolWithFakeRing();
    const lease = arrive(pool, 0, POOL_BUFFER_SIZE);
    assert.equal(pool.pin(lease.view.subarray(0, 64), 64), -1, 'a small send is copied');
    assert.equal(pool.pin(Buffer.alloc(POOL_BUFFER_SIZE), POOL_BUFFER_SIZE), -1, 'not pool memory');
    lease.release();
    assert.equal(pool.pin(lease.view, POOL_BUFFER_SIZE), -1, "a released buffer is the kernel's");
    const quarter = POOL_BUFFER_COUNT / 4;
    for (let bid = 1; bid <= quarter; bid++) {
      const view = arrive(pool, bid, POOL_BUFFER_SIZE).view;
      assert.equal(pool.pin(view, POOL_BUFFER_SIZE), bid);
    }
    const over = arrive(pool, quarter + 1, POOL_BUFFER_SIZE).view;
    assert.equal(pool.pin(over, POOL_BUFFER_SIZE), -1, 'past a quarter of the pool, sends copy');
    pool.unpin(1);
    assert.equal(pool.pin(over, POOL_BUFFER_SIZE), quarter + 1, 'room again after an unpin');
  });
});
