/**
 * Pooled receive mode (contract: "Pooled receive mode"), on every engine that
 * runs here: recvPooled lends a pool buffer only when data arrives.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { counters, engineIndex } from '../../src/core/counters.js';
import { OverlappedError } from '../../src/core/errors.js';
import { Overlapped } from '../../src/core/overlapped.js';
import {
  type BufferLease,
  MAX_POOLED_RECV_BYTES,
  MAX_UNREAD_BYTES,
} from '../../src/engines/contract.js';
import { enginesUnderTest, next, openPair, type Pair, readExactly } from '../support/engines.js';

/** The lease of `ov` (a function, so assertions on an earlier completion do not narrow it). */
const leaseOf = (ov: Overlapped): BufferLease | null => ov.lease;

/** Drains `total` bytes with pooled recvs, releasing each lease. */
async function receivePooled(pair: Pair, total: number): Promise<Buffer> {
  const got: Buffer[] = [];
  let n = 0;
  const ov = new Overlapped();
  while (n < total) {
    pair.socket.recvPooled(ov);
    const c = await next(pair.port);
    assert.equal(c.error, null);
    assert.ok(c.bytes > 0, 'no end of stream before every byte');
    const lease = leaseOf(ov) as BufferLease;
    got.push(Buffer.from(lease.view));
    n += c.bytes;
    lease.release();
  }
  return Buffer.concat(got);
}

/** A pooled recv completes as end of stream: 0 bytes, no error, no lease. */
async function expectPooledEnd(pair: Pair): Promise<void> {
  const ov = new Overlapped();
  pair.socket.recvPooled(ov);
  const eof = await next(pair.port);
  assert.equal(eof.bytes, 0);
  assert.equal(eof.error, null);
  assert.equal(ov.lease, null);
}

/** One pooled recv of `text` written by the peer: the stream is then reading (armed). */
async function firstPooled(pair: Pair, text: string): Promise<void> {
  pair.peer.write(text);
  assert.equal((await receivePooled(pair, text.length)).toString(), text);
}

const aborted = (error: Error | null) =>
  error instanceof OverlappedError && error.code === 'OVL_ERR_ABORTED';

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`pooled receive: ${name}`, { skip: skip ?? false }, () => {
    if (engine === undefined) return;

    test('bytes arrive exact and in order across many messages; each lease holds at most one pool buffer', async () => {
      const pair = await openPair(engine);
      try {
        const data = randomBytes(300 * 1024);
        pair.peer.write(data);
        const got: Buffer[] = [];
        let total = 0;
        const ov = new Overlapped();
        while (total < data.length) {
          pair.socket.recvPooled(ov);
          const c = await next(pair.port);
          assert.equal(c.error, null);
          assert.ok(c.bytes > 0 && c.bytes <= MAX_POOLED_RECV_BYTES, `bytes ${c.bytes}`);
          const lease = ov.lease;
          assert.ok(lease !== null);
          assert.equal(lease.view.length, c.bytes);
          got.push(Buffer.from(lease.view));
          total += c.bytes;
          lease.release();
          lease.release(); // idempotent
        }
        assert.ok(Buffer.concat(got).equals(data), 'every byte once, in order');
      } finally {
        pair.close();
      }
    });

    test('a lease counts as a pool buffer lent (the metrics gauge) until it is released', async () => {
      const pair = await openPair(engine);
      try {
        const e = engineIndex(engine);
        const before = counters.poolLent[e] as number;
        pair.peer.write('lent');
        const ov = new Overlapped();
        pair.socket.recvPooled(ov);
        const c = await next(pair.port);
        assert.equal(c.error, null);
        const lease = leaseOf(ov) as BufferLease;
        assert.equal(lease.view.toString(), 'lent');
        assert.equal(counters.poolLent[e], before + 1);
        lease.release();
        lease.release();
        assert.equal(counters.poolLent[e], before, 'released once, counted back once');
      } finally {
        pair.close();
      }
    });

    test('released leases go back to the pool: more receives than the pool has buffers', async () => {
      const pair = await openPair(engine);
      try {
        const ov = new Overlapped();
        const send = new Overlapped();
        // 1100 round trips of 8 KiB each: more bytes than the uring engine's pool (8 MiB)
        // holds. TCP may split a message, so each is read until complete.
        for (let i = 0; i < 1100; i++) {
          const message = Buffer.alloc(8 * 1024, `message ${i};`);
          pair.peer.write(message);
          const arriving = readExactly(pair.peer, message.length);
          const got: Buffer[] = [];
          for (let n = 0; n < message.length; ) {
            pair.socket.recvPooled(ov);
            const c = await next(pair.port);
            assert.equal(c.error, null);
            assert.ok(c.bytes > 0, 'no end of stream before the whole message');
            const lease = leaseOf(ov) as BufferLease;
            assert.equal(lease.view.length, c.bytes);
            got.push(Buffer.from(lease.view));
            n += c.bytes;
            // Answer from the lease itself, then give it back once the send has completed.
            pair.socket.send(lease.view, send);
            const s = await next(pair.port);
            assert.equal(s.bytes, c.bytes);
            lease.release();
          }
          assert.ok(Buffer.concat(got).equals(message));
          assert.ok((await arriving).equals(message));
        }
      } finally {
        pair.close();
      }
    });

    test('an echo sent from the leases, each released as soon as its send completes: byte-exact, every buffer back', async () => {
      const pair = await openPair(engine);
      try {
        const e = engineIndex(engine);
        const lentBefore = counters.poolLent[e] as number;
        // More than the pool holds (8 MiB on uring): a buffer a send still reads must come back after.
        const data = randomBytes(12 * 1024 * 1024 + 7);
        const chunks: Buffer[] = [];
        let got = 0;
        // The peer stops reading now and then, so that sends wait in the kernel while recvs go on.
        let pauseAt = 1024 * 1024;
        const arrived = new Promise<void>((resolve) => {
          pair.peer.on('data', (chunk: Buffer) => {
            chunks.push(chunk);
            got += chunk.length;
            if (got >= data.length) resolve();
            else if (got >= pauseAt) {
              pauseAt += 1024 * 1024;
              pair.peer.pause();
              setTimeout(() => pair.peer.resume(), 30);
            }
          });
        });
        pair.peer.end(data);
        const ov = new Overlapped();
        const send = new Overlapped();
        for (;;) {
          pair.socket.recvPooled(ov);
          const r = await next(pair.port);
          assert.equal(r.error, null);
          if (r.bytes === 0) break;
          const lease = leaseOf(ov) as BufferLease;
          pair.socket.send(lease.view, send);
          const s = await next(pair.port);
          assert.equal(s.error, null);
          assert.equal(s.bytes, r.bytes, 'a send completes whole');
          // The engine may still be sending these bytes: releasing now must not let the pool
          // refill the buffer under them.
          lease.release();
        }
        await arrived;
        assert.equal(got, data.length);
        assert.ok(Buffer.concat(chunks).equals(data), 'byte-exact, in order');
        assert.equal(counters.poolLent[e], lentBefore, 'every lease counted back');
        assert.equal(pair.port.size, 0);
      } finally {
        pair.close();
      }
    });

    test('end of stream completes with 0 bytes and no lease', async () => {
      const pair = await openPair(engine);
      try {
        pair.peer.end('last');
        const ov = new Overlapped();
        pair.socket.recvPooled(ov);
        const first = await next(pair.port);
        assert.equal(first.bytes, 4);
        assert.equal(ov.lease?.view.toString(), 'last');
        ov.lease?.release();
        await expectPooledEnd(pair);
      } finally {
        pair.close();
      }
    });

    test('between pooled recvs what arrives is bounded (rule 6), then comes once, in order', async () => {
      const pair = await openPair(engine);
      try {
        await firstPooled(pair, 'armed');
        const total = 8 * 1024 * 1024;
        const data = randomBytes(total);
        pair.peer.write(data);
        await delay(300);
        const unread = pair.socket.unreadBytes;
        assert.ok(unread <= MAX_UNREAD_BYTES + 64 * 1024, `engine holds ${unread} unread bytes`);
        assert.ok(
          pair.peer.writableLength > total / 2,
          `flow control should hold the peer back (it still buffers ${pair.peer.writableLength} bytes)`,
        );
        assert.ok((await receivePooled(pair, total)).equals(data), 'every byte once, in order');
      } finally {
        pair.close();
      }
    });

    test('bytes and end of stream that arrive with no recv posted come in order', async () => {
      const pair = await openPair(engine);
      try {
        await firstPooled(pair, 'first');
        pair.peer.end('last words');
        await delay(100);
        assert.equal((await receivePooled(pair, 10)).toString(), 'last words');
        await expectPooledEnd(pair);
      } finally {
        pair.close();
      }
    });

    test('a plain recv after pooled ones takes the bytes that arrived meanwhile, in order', async () => {
      const pair = await openPair(engine);
      try {
        await firstPooled(pair, 'x');
        pair.peer.write('hello world');
        await delay(100);
        const plain = new Overlapped();
        const buffer = Buffer.alloc(5);
        pair.socket.recv(buffer, plain);
        const c = await next(pair.port);
        assert.equal(c.overlapped, plain);
        assert.equal(buffer.toString(), 'hello');
        assert.equal((await receivePooled(pair, 6)).toString(), ' world');
        // And a plain recv posted before anything arrives still gets the next bytes.
        pair.socket.recv(buffer, plain);
        pair.peer.write('again');
        await next(pair.port);
        assert.equal(buffer.toString(), 'again');
      } finally {
        pair.close();
      }
    });

    test('closing a stream with bytes no recv took gives their pool buffers back', async () => {
      // 160 streams x 64 KiB held: more than the uring pool's 1024 buffers if they leaked.
      for (let i = 0; i < 160; i++) {
        const pair = await openPair(engine);
        await firstPooled(pair, 'armed');
        pair.peer.write(Buffer.alloc(128 * 1024, 7));
        await delay(5);
        pair.close();
      }
      const pair = await openPair(engine);
      try {
        await firstPooled(pair, 'the pool still lends');
      } finally {
        pair.close();
      }
    });

    test('close with a pooled recv pending aborts it exactly once, with no lease', async () => {
      const pair = await openPair(engine);
      try {
        const ov = new Overlapped();
        pair.socket.recvPooled(ov);
        pair.socket.close();
        const c = await next(pair.port);
        assert.ok(aborted(c.error), `expected OVL_ERR_ABORTED, got ${String(c.error)}`);
        assert.equal(c.bytes, 0);
        assert.equal(ov.lease, null);
        assert.equal(await pair.port.dequeue({ timeoutMs: 50 }), null, 'completed exactly once');
        assert.equal(pair.socket.pendingOperations, 0);
      } finally {
        pair.close();
      }
    });

    test('cancel(ov) aborts a pending pooled recv; plain and pooled recvs mix in order', async () => {
      const pair = await openPair(engine);
      try {
        const ov = new Overlapped();
        pair.socket.recvPooled(ov);
        assert.equal(pair.socket.cancel(ov), true);
        assert.equal(pair.socket.cancel(ov), false);
        const c = await next(pair.port);
        assert.ok(aborted(c.error));
        assert.equal(ov.lease, null);

        const plain = new Overlapped();
        const buffer = Buffer.alloc(3);
        pair.socket.recv(buffer, plain);
        pair.socket.recvPooled(ov);
        pair.peer.write('abcdef');
        assert.equal((await next(pair.port)).overlapped, plain);
        assert.equal(buffer.toString(), 'abc');
        const second = await next(pair.port);
        assert.equal(second.overlapped, ov);
        assert.equal(leaseOf(ov)?.view.toString(), 'def');
        leaseOf(ov)?.release();
      } finally {
        pair.close();
      }
    });
  });
}
