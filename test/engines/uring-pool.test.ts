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
import type { UringRing } from '../../src/engines/uring/ring.js';
import { delay, enginesUnderTest, next, openPair, type Pair } from '../support/engines.js';

const uring = enginesUnderTest().find((e) => e.name === 'uring');

/** Takes and keeps a lease of every one of the pool's 1024 buffers, through `pair`. */
async function lendWholePool(pair: Pair): Promise<BufferLease[]> {
  const held: BufferLease[] = [];
  const ov = new Overlapped();
  for (let i = 0; i < 1024; i++) {
    pair.socket.recvPooled(ov);
    pair.peer.write(`m${i}`);
    const c = await next(pair.port);
    assert.equal(c.error, null);
    const lease = ov.lease;
    assert.ok(lease !== null);
    // Several writes can arrive as one: what matters is every byte lands in order.
    held.push(lease);
  }
  return held;
}

describe('uring pooled receive: pool limits', { skip: uring?.skip ?? false }, () => {
  test('1024 leases held: the next pooled recv waits, and completes once one is released', async () => {
    const engine = uring?.engine;
    assert.ok(engine !== undefined);
    const pair = await openPair(engine);
    try {
      const held = await lendWholePool(pair);
      const ov = new Overlapped();
      pair.socket.recvPooled(ov);
      pair.peer.write('waiting');
      assert.equal(await pair.port.dequeue({ timeoutMs: 200 }), null, 'no buffer: the recv waits');
      (held.shift() as BufferLease).release();
      const c = await next(pair.port);
      assert.equal(c.error, null);
      assert.ok(ov.lease?.view.toString().endsWith('waiting'));
      ov.lease?.release();
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
      const held = await lendWholePool(pair);
      const ov = new Overlapped();
      // The stream's multishot recv is still armed; what arrives now finds no buffer.
      pair.peer.write('plain');
      await delay(100);
      const buffer = Buffer.alloc(16);
      pair.socket.recv(buffer, ov);
      const c = await next(pair.port, 1000);
      assert.equal(c.error, null);
      assert.equal(buffer.subarray(0, c.bytes).toString(), 'plain');
      for (const lease of held) lease.release();
    } finally {
      pair.close();
    }
  });
});

describe('uring pool: growth, and the lent buffers buffered sends pin', () => {
  /** A pool over a stand-in ring that records the buffers given back to the kernel. */
  function poolWithFakeRing(): { pool: BufferPool; returned: number[]; grown: number[] } {
    const returned: number[] = [];
    const grown: number[] = [];
    const addon = {
      registerPool: () => 0,
      poolGrow: (_handle: unknown, n: number) => {
        grown.push(n);
        return n;
      },
      poolRelease: (_handle: unknown, bid: number) => {
        returned.push(bid);
      },
    };
    return { pool: new BufferPool({ addon, handle: {} } as unknown as UringRing), returned, grown };
  }

  test('the pool doubles at most once per turn, however many recvs of the turn found it empty', async () => {
    const { pool, grown } = poolWithFakeRing();
    assert.equal(pool.ready(), null);
    assert.equal(pool.grow(), true);
    assert.equal(pool.grow(), true, 'the room made this turn serves the other recvs too');
    assert.equal(pool.grow(), true);
    assert.deepEqual(grown, [32], 'one doubling, from the 32 buffers published first');
    await new Promise<void>((resolve) => process.nextTick(resolve));
    assert.equal(pool.grow(), true);
    assert.deepEqual(grown, [32, 64], 'a later shortage doubles again');
  });

  test('a lease released while a send pins its buffer goes back to the kernel only after the last unpin', () => {
    const { pool, returned } = poolWithFakeRing();
    assert.equal(pool.ready(), null);
    const lease = pool.lease(3, 0, POOL_BUFFER_SIZE);
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
    assert.equal(pool.ready(), null);
    const lease = pool.lease(5, 0, POOL_BUFFER_SIZE);
    assert.equal(pool.pin(lease.view, POOL_BUFFER_SIZE), 5);
    pool.unpin(5);
    assert.deepEqual(returned, []);
    lease.release();
    assert.deepEqual(returned, [5]);
  });

  test('what is not pinned: small sends, memory outside the pool, released buffers; at most a quarter of the pool', () => {
    const { pool } = poolWithFakeRing();
    assert.equal(pool.ready(), null);
    const lease = pool.lease(0, 0, POOL_BUFFER_SIZE);
    assert.equal(pool.pin(lease.view.subarray(0, 64), 64), -1, 'a small send is copied');
    assert.equal(pool.pin(Buffer.alloc(POOL_BUFFER_SIZE), POOL_BUFFER_SIZE), -1, 'not pool memory');
    lease.release();
    assert.equal(pool.pin(lease.view, POOL_BUFFER_SIZE), -1, "a released buffer is the kernel's");
    const quarter = 1024 / 4;
    for (let bid = 1; bid <= quarter; bid++) {
      const view = pool.lease(bid, 0, POOL_BUFFER_SIZE).view;
      assert.equal(pool.pin(view, POOL_BUFFER_SIZE), bid);
    }
    const over = pool.lease(quarter + 1, 0, POOL_BUFFER_SIZE).view;
    assert.equal(pool.pin(over, POOL_BUFFER_SIZE), -1, 'past a quarter of the pool, sends copy');
    pool.unpin(1);
    assert.equal(pool.pin(over, POOL_BUFFER_SIZE), quarter + 1, 'room again after an unpin');
  });
});
