/**
 * The uring engine's provided-buffer pool: published to the kernel on
 * demand, and when every buffer is lent a pooled recv waits (no error) until
 * a lease comes back. Buffered sends pin the lent buffers they send from.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Overlapped } from '../../src/core/overlapped.js';
import type { BufferLease, Engine } from '../../src/engines/contract.js';
import { BufferPool } from '../../src/engines/uring/buffer-pool.js';
import { IORING_CQE_F_BUF_MORE } from '../../src/engines/uring/constants.js';
import type { UringRing } from '../../src/engines/uring/ring.js';
import type { UringEngine } from '../../src/engines/uring/uring-engine.js';
import { delay, enginesUnderTest, next, openPair, type Pair } from '../support/engines.js';

const uring = enginesUnderTest().find((e) => e.name === 'uring');

/**
 * Takes and keeps leases until the pool has no buffer left, through `pair`:
 * the peer writes 8 KiB at a time and the stream receives until a pooled
 * recv finds no buffer. Returns the leases and that recv, still pending (the
 * peer's last bytes wait in the socket for it).
 */
async function lendWholePool(
  pair: Pair,
  pool: BufferPool,
): Promise<{ held: BufferLease[]; waiting: Overlapped }> {
  const held: BufferLease[] = [];
  const ov = new Overlapped();
  const chunk = 8 * 1024;
  for (let i = 0; ; i++) {
    // The first recv registers the pool; past twice its bytes it is not running out.
    if (i > 0 && i * chunk > 2 * pool.bufferCount * pool.bufferSize) {
      throw new Error(`${i * chunk} bytes received: the pool never ran out`);
    }
    pair.peer.write(Buffer.alloc(chunk, `m${i}`));
    for (let n = 0; n < chunk; ) {
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
}

/**
 * Releases the oldest leases until a buffer's worth is back: the first
 * buffer whole (the kernel fills a buffer before it takes the next).
 */
function releaseOneBuffer(held: BufferLease[], pool: BufferPool): void {
  for (let n = 0; n < pool.bufferSize; ) {
    const lease = held.shift() as BufferLease;
    n += lease.view.length;
    lease.release();
  }
}

/** The pool of the uring engine under test. */
function poolOf(engine: Engine): BufferPool {
  return (engine as UringEngine).pool;
}

describe('uring pooled receive: pool limits', { skip: uring?.skip ?? false }, () => {
  test('every pool buffer lent: the next pooled recv waits, and completes once one comes back', async () => {
    const engine = uring?.engine;
    assert.ok(engine !== undefined);
    const pair = await openPair(engine);
    try {
      const pool = poolOf(engine);
      const { held, waiting } = await lendWholePool(pair, pool);
      const lent = held.reduce((n, lease) => n + lease.view.length, 0);
      assert.ok(lent > (pool.bufferCount - 1) * pool.bufferSize, `${lent} bytes lent`);
      assert.equal(await pair.port.dequeue({ timeoutMs: 200 }), null, 'no buffer: the recv waits');
      releaseOneBuffer(held, pool);
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
      const pool = poolOf(engine);
      const { held, waiting } = await lendWholePool(pair, pool);
      pair.socket.cancel(waiting);
      const aborted = await next(pair.port);
      assert.equal(aborted.overlapped, waiting);
      assert.ok(aborted.error !== null, 'the pooled recv that waited is aborted');
      // The stream's multishot recv is still armed; what arrives now finds no buffer.
      pair.peer.write('plain');
      await delay(100);
      const buffer = Buffer.alloc(2 * pool.bufferSize);
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
    registered: unknown[][];
  } {
    const returned: number[] = [];
    const grown: number[] = [];
    const registered: unknown[][] = [];
    const addon = {
      registerPool: (...args: unknown[]) => {
        registered.push(args.slice(2));
        return args[5] === 1 && !incremental ? -22 : 32;
      },
      poolGrow: (_handle: unknown, n: number) => {
        grown.push(n);
        return n;
      },
      poolRelease: (_handle: unknown, bid: number) => {
        returned.push(bid);
      },
    };
    const pool = new BufferPool({ addon, handle: {} } as unknown as UringRing);
    // The stand-in kernel and the defaults decide the layout here, not the tuning variables.
    const names = ['OVERLAPPED_URING_POOL_INCREMENTAL', 'OVERLAPPED_URING_POOL_BUFFERS'];
    const saved = names.map((name) => process.env[name]);
    for (const name of names) delete process.env[name];
    try {
      assert.equal(pool.ready(), null);
    } finally {
      names.forEach((name, i) => {
        const value = saved[i];
        if (value !== undefined) process.env[name] = value;
      });
    }
    assert.equal(pool.incremental, incremental);
    return { pool, returned, grown, registered };
  }

  /** What a CQE for `bytes` of buffer `bid` hands over: its lease. */
  function arrive(pool: BufferPool, bid: number, bytes: number, more = false): BufferLease {
    const at = pool.take(bid, bytes, more ? IORING_CQE_F_BUF_MORE : 0);
    assert.ok(at >= 0);
    return pool.lease(bid, at, bytes);
  }

  test('the pool is 8 MiB: 128 buffers of 64 KiB where the kernel shares them, else 1024 of 8 KiB', () => {
    const shared = poolWithFakeRing(true);
    assert.deepEqual(shared.registered, [[64 * 1024, 128, 32, 1]]);
    assert.equal(shared.pool.bufferSize, 64 * 1024);
    const whole = poolWithFakeRing(false);
    assert.deepEqual(
      whole.registered,
      [
        [64 * 1024, 128, 32, 1],
        [8 * 1024, 1024, 32, 0],
      ],
      'refused with incremental consumption, registered again with whole buffers',
    );
    assert.equal(whole.pool.bufferSize, 8 * 1024);
    const lease = arrive(whole.pool, 1023, 100);
    assert.equal(lease.view.byteOffset, 1023 * 8 * 1024, 'the last buffer, in the smaller layout');
  });

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
    const c = arrive(pool, 7, pool.bufferSize - 150); // the last slice: no F_BUF_MORE
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
    assert.equal(lease.view.byteOffset % pool.bufferSize, 0);
    lease.release();
    assert.deepEqual(returned, [2]);
    assert.equal(pool.take(4, 0, 0), -1);
    assert.deepEqual(returned, [2, 4]);
  });

  test('a lease released while a send pins its buffer goes back to the kernel only after the last unpin', () => {
    const { pool, returned } = poolWithFakeRing();
    const lease = arrive(pool, 3, pool.bufferSize);
    const first = pool.pin(lease.view, pool.bufferSize);
    const second = pool.pin(lease.view.subarray(4096), pool.bufferSize - 4096);
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
    const lease = arrive(pool, 5, pool.bufferSize);
    assert.equal(pool.pin(lease.view, pool.bufferSize), 5);
    pool.unpin(5);
    assert.deepEqual(returned, []);
    lease.release();
    assert.deepEqual(returned, [5]);
  });

  test('what is not pinned: small sends, memory outside the pool, released buffers; at most a quarter of the pool', () => {
    const { pool } = poolWithFakeRing();
    const lease = arrive(pool, 0, pool.bufferSize);
    assert.equal(pool.pin(lease.view.subarray(0, 64), 64), -1, 'a small send is copied');
    assert.equal(pool.pin(Buffer.alloc(pool.bufferSize), pool.bufferSize), -1, 'not pool memory');
    lease.release();
    assert.equal(pool.pin(lease.view, pool.bufferSize), -1, "a released buffer is the kernel's");
    const quarter = pool.bufferCount / 4;
    for (let bid = 1; bid <= quarter; bid++) {
      const view = arrive(pool, bid, pool.bufferSize).view;
      assert.equal(pool.pin(view, pool.bufferSize), bid);
    }
    const over = arrive(pool, quarter + 1, pool.bufferSize).view;
    assert.equal(pool.pin(over, pool.bufferSize), -1, 'past a quarter of the pool, sends copy');
    pool.unpin(1);
    assert.equal(pool.pin(over, pool.bufferSize), quarter + 1, 'room again after an unpin');
  });
});
