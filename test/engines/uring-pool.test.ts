/**
 * The uring engine's provided-buffer pool: published to the kernel on
 * demand, and when every buffer is lent a pooled recv waits (no error) until
 * a lease comes back.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Overlapped } from '../../src/core/overlapped.js';
import type { BufferLease } from '../../src/engines/contract.js';
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
