/**
 * Message mode on a byte stream: whole messages per read whatever the wire
 * does (split, coalesced), OVL_ERR_MORE_DATA with small buffers, zero-length
 * messages, end of stream as OVL_ERR_BROKEN_PIPE, and the write's byte count.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { queueUserApc } from '../../src/core/apc.js';
import { CompletionPort } from '../../src/core/completion-port.js';
import { OverlappedError } from '../../src/core/errors.js';
import { Overlapped } from '../../src/core/overlapped.js';
import { CONTROL_FLAG, PipeConnection } from '../../src/core/pipe-connection.js';
import { sleepEx } from '../../src/core/waits.js';
import { runSeed, SeededRandom } from '../support/echo-fixture.js';
import { engine, frame, rawPair, settle, unixOnly } from '../support/pipe-fixture.js';

const codeOf = (error: Error | null) => (error instanceof OverlappedError ? error.code : null);

/** Writes `bytes` to a raw socket in random slices, each flushed alone. */
async function writeSliced(raw: import('node:net').Socket, bytes: Buffer, rng: SeededRandom) {
  let at = 0;
  while (at < bytes.length) {
    const n = Math.min(bytes.length - at, rng.int(1, 3000));
    const chunk = bytes.subarray(at, at + n);
    at += n;
    if (!raw.write(chunk)) await new Promise((r) => raw.once('drain', r));
    if (rng.int(0, 3) === 0) await new Promise((r) => setImmediate(r));
  }
}

describe('pipe connection, message mode', { skip: unixOnly }, () => {
  test('keeps message boundaries for sizes 0 B to the limit, split and coalesced', async () => {
    const rng = new SeededRandom(runSeed());
    const maxMessage = 64 * 1024;
    const pair = await rawPair({ maxMessage });
    try {
      const sizes = [0, 1, 2, 3, 4, 5, 255, 256, 4096, 16 * 1024, 16 * 1024 + 1, maxMessage];
      for (let i = 0; i < 60; i++) sizes.push(rng.int(0, maxMessage));
      const messages = sizes.map((n) => rng.bytes(n));
      // Every message framed, all of it sent as one stream cut at random points.
      const wire = Buffer.concat(messages.map(frame));
      const sending = writeSliced(pair.raw, wire, rng);
      const buffer = Buffer.alloc(maxMessage);
      for (const [i, expected] of messages.entries()) {
        const ov = new Overlapped();
        pair.instance.read(buffer, ov);
        assert.equal(ov.pending, true, 'a read never completes inside the call');
        const { bytes, error } = await settle(ov);
        assert.equal(error, null, `message ${i} (${expected.length} B), seed ${rng.seed}`);
        assert.equal(bytes, expected.length, `message ${i} length, seed ${rng.seed}`);
        assert.ok(
          buffer.subarray(0, bytes).equals(expected),
          `message ${i} bytes, seed ${rng.seed}`,
        );
      }
      await sending;
    } finally {
      pair.close();
    }
  });

  test('a message larger than the buffer completes with OVL_ERR_MORE_DATA, then the rest in order', async () => {
    const rng = new SeededRandom(runSeed());
    const pair = await rawPair();
    try {
      const big = rng.bytes(10_000);
      const after = rng.bytes(7);
      pair.raw.write(Buffer.concat([frame(big), frame(after)]));
      const buffer = Buffer.alloc(4096);
      const pieces: Buffer[] = [];
      for (let i = 0; i < 2; i++) {
        const ov = new Overlapped();
        pair.instance.read(buffer, ov);
        const { bytes, error } = await settle(ov);
        assert.equal(codeOf(error), 'OVL_ERR_MORE_DATA');
        assert.equal(error?.constructor, OverlappedError);
        assert.equal(bytes, 4096);
        pieces.push(Buffer.from(buffer.subarray(0, bytes)));
      }
      const last = new Overlapped();
      pair.instance.read(buffer, last);
      const end = await settle(last);
      assert.equal(end.error, null, 'the last piece completes without error');
      assert.equal(end.bytes, 10_000 - 8192);
      pieces.push(Buffer.from(buffer.subarray(0, end.bytes)));
      assert.ok(Buffer.concat(pieces).equals(big), 'the pieces make the message, in order');
      const next = new Overlapped();
      pair.instance.read(Buffer.alloc(3), next);
      assert.equal(codeOf((await settle(next)).error), 'OVL_ERR_MORE_DATA');
      const rest = new Overlapped();
      const tail = Buffer.alloc(16);
      pair.instance.read(tail, rest);
      assert.equal((await settle(rest)).bytes, 4);
      assert.ok(tail.subarray(0, 4).equals(after.subarray(3)));
    } finally {
      pair.close();
    }
  });

  test('reads posted ahead complete in order; a write counts payload bytes only', async () => {
    const pair = await rawPair();
    try {
      const ovs = [new Overlapped(), new Overlapped(), new Overlapped()];
      const buffers = ovs.map(() => Buffer.alloc(16));
      ovs.forEach((ov, i) => {
        pair.instance.read(buffers[i] as Buffer, ov);
      });
      const order: number[] = [];
      const done = ovs.map((ov, i) =>
        settle(ov).then((r) => {
          order.push(i);
          return r;
        }),
      );
      pair.raw.write(Buffer.concat([frame(Buffer.from('a')), frame(Buffer.alloc(0))]));
      pair.raw.write(frame(Buffer.from('ccc')));
      const results = await Promise.all(done);
      assert.deepEqual(order, [0, 1, 2]);
      assert.deepEqual(
        results.map((r) => r.bytes),
        [1, 0, 3],
      );

      const write = new Overlapped();
      pair.instance.write([Buffer.from('he'), Buffer.from('llo')], write);
      assert.deepEqual(await settle(write), { bytes: 5, error: null });
      const got = await new Promise<Buffer>((resolve) => pair.raw.once('data', resolve));
      assert.ok(got.equals(frame(Buffer.from('hello'))), 'one frame: header + gathered payload');
    } finally {
      pair.close();
    }
  });

  test('end of stream is OVL_ERR_BROKEN_PIPE, mid-message too; a control frame from a client is a protocol error', async () => {
    const pair = await rawPair();
    try {
      pair.raw.end(frame(Buffer.alloc(100)).subarray(0, 50));
      const ov = new Overlapped();
      pair.instance.read(Buffer.alloc(200), ov);
      const { bytes, error } = await settle(ov);
      assert.equal(bytes, 0);
      assert.equal(codeOf(error), 'OVL_ERR_BROKEN_PIPE');
    } finally {
      pair.close();
    }
    const bad = await rawPair();
    try {
      const header = Buffer.alloc(4);
      header.writeUInt32BE((CONTROL_FLAG | 5) >>> 0);
      bad.raw.write(Buffer.concat([header, Buffer.from('READY')]));
      const ov = new Overlapped();
      bad.instance.read(Buffer.alloc(16), ov);
      assert.equal(codeOf((await settle(ov)).error), 'OVL_ERR_PIPE_PROTOCOL');
    } finally {
      bad.close();
    }
  });

  test('a message over maxMessage fails the read with OVL_ERR_MESSAGE_TOO_LARGE without buffering it', async () => {
    const pair = await rawPair({ maxMessage: 1000 });
    try {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(1001);
      pair.raw.write(header);
      const ov = new Overlapped();
      pair.instance.read(Buffer.alloc(2000), ov);
      assert.equal(codeOf((await settle(ov)).error), 'OVL_ERR_MESSAGE_TOO_LARGE');
      assert.ok(pair.instance.unreadBytes <= 1004);
    } finally {
      pair.close();
    }
  });

  test('cancel and close complete pending reads with OVL_ERR_ABORTED, exactly once', async () => {
    const pair = await rawPair();
    try {
      const a = new Overlapped();
      const b = new Overlapped();
      pair.instance.read(Buffer.alloc(8), a);
      pair.instance.read(Buffer.alloc(8), b);
      assert.equal(pair.instance.cancel(a), true);
      assert.equal(codeOf((await settle(a)).error), 'OVL_ERR_ABORTED');
      pair.instance.close();
      assert.equal(codeOf((await settle(b)).error), 'OVL_ERR_ABORTED');
      assert.equal(pair.instance.pendingOperations, 0);
      assert.throws(() => pair.instance.read(Buffer.alloc(8), new Overlapped()), {
        code: 'OVL_ERR_HANDLE_CLOSED',
      });
    } finally {
      pair.close();
    }
  });

  test('a connect waiting for READY completes aborted, once, when cancelled', async () => {
    const pair = await rawPair();
    try {
      const ov = new Overlapped();
      const conn = PipeConnection.connect({ engine: engine(), path: pair.listener.path }, ov);
      await new Promise((r) => setTimeout(r, 50)); // connected; the server never sends READY
      assert.equal(ov.pending, true);
      assert.equal(conn.cancel(ov), true);
      assert.equal(codeOf((await settle(ov)).error), 'OVL_ERR_ABORTED');
      assert.equal(conn.pendingOperations, 0);
      assert.equal(conn.closed, true);
    } finally {
      pair.close();
    }
  });

  test('connect to a path nobody listens on fails with OVL_ERR_PIPE_NOT_FOUND', async () => {
    const ov = new Overlapped();
    const conn = PipeConnection.connect({ engine: engine(), path: '/nonexistent/ovl.sock' }, ov);
    assert.equal(ov.pending, true);
    const { error } = await settle(ov);
    assert.equal(codeOf(error), 'OVL_ERR_PIPE_NOT_FOUND');
    assert.match(error?.message ?? '', /no server on pipe \/nonexistent\/ovl\.sock/);
    conn.close();
  });
});

describe('pipe connection, byte mode', { skip: unixOnly }, () => {
  test('reads return what arrived; 0 bytes is end of stream', async () => {
    const pair = await rawPair({ mode: 'byte' });
    try {
      pair.raw.end('raw bytes');
      const buffer = Buffer.alloc(64);
      const ov = new Overlapped();
      pair.instance.read(buffer, ov);
      const first = await settle(ov);
      assert.equal(buffer.toString('utf8', 0, first.bytes), 'raw bytes');
      pair.instance.read(buffer, ov);
      assert.deepEqual(await settle(ov), { bytes: 0, error: null });
    } finally {
      pair.close();
    }
  });
});

describe('pipe connection on a completion port and with routines', { skip: unixOnly }, () => {
  test('reads and writes complete exactly once on the port, never inside the call; close aborts the rest', async () => {
    const pair = await rawPair();
    const port = new CompletionPort<string, unknown>({ concurrency: 1 });
    try {
      port.associate(pair.instance, 'instance');
      const reads = Array.from({ length: 4 }, () => new Overlapped());
      for (const ov of reads) pair.instance.read(Buffer.alloc(32), ov);
      const write = new Overlapped();
      pair.instance.write(Buffer.from('reply'), write);
      assert.ok(
        [...reads, write].every((ov) => ov.pending),
        'all pending after the calls',
      );
      pair.raw.write(Buffer.concat([frame(Buffer.from('one')), frame(Buffer.from('two'))]));
      const seen = new Map<unknown, number>();
      const order: unknown[] = [];
      for (let i = 0; i < 3; i++) {
        const c = await port.dequeue({ timeoutMs: 5000 });
        assert.ok(c !== null, 'a completion');
        seen.set(c.overlapped, (seen.get(c.overlapped) ?? 0) + 1);
        order.push(c.overlapped);
        if (c.overlapped === write) assert.equal(c.bytes, 5);
      }
      assert.deepEqual(
        order.filter((ov) => ov !== write),
        [reads[0], reads[1]],
        'reads complete in posting order',
      );
      pair.instance.close();
      for (let i = 0; i < 2; i++) {
        const c = await port.dequeue({ timeoutMs: 5000 });
        assert.ok(c !== null);
        assert.equal(codeOf(c.error), 'OVL_ERR_ABORTED');
        seen.set(c.overlapped, (seen.get(c.overlapped) ?? 0) + 1);
      }
      assert.equal(await port.dequeue({ timeoutMs: 50 }), null, 'nothing completes twice');
      assert.deepEqual([...seen.values()], [1, 1, 1, 1, 1]);
      assert.equal(pair.instance.pendingOperations, 0);
    } finally {
      port.close();
      pair.close();
    }

    // With a routine the completion runs in an alertable wait, not on a port.
    const second = await rawPair();
    try {
      let ran = 0;
      const ov = new Overlapped();
      second.instance.read(Buffer.alloc(8), ov, (error, bytes) => {
        assert.equal(error, null);
        assert.equal(bytes, 2);
        ran++;
      });
      second.raw.write(frame(Buffer.from('hi')));
      while (ran === 0) {
        assert.equal(await sleepEx(5000, true), 'io-completion');
      }
      assert.equal(ran, 1);
      queueUserApc(() => {});
      await sleepEx(0, true);
    } finally {
      second.close();
    }
  });
});

describe('pipe connection flow control', { skip: unixOnly }, () => {
  test('a client writing faster than the server reads is held back, not buffered', async () => {
    const pair = await rawPair({ maxMessage: 64 * 1024 });
    try {
      const message = frame(Buffer.alloc(1000, 7));
      const total = 4000; // about 4 MB, far past what the engine and the stage may hold
      let written = 0;
      const writing = (async () => {
        while (written < total) {
          written++;
          if (!pair.raw.write(message)) await new Promise((r) => pair.raw.once('drain', r));
        }
      })();
      await new Promise((r) => setTimeout(r, 300));
      // No read posted: only the engine's bounded stash (64 KiB plus one chunk) holds data.
      assert.ok(
        pair.instance.unreadBytes <= 2 * 64 * 1024,
        `${pair.instance.unreadBytes} bytes held unread`,
      );
      assert.ok(written < total, 'the writer is held back');
      const buffer = Buffer.alloc(1000);
      for (let i = 0; i < total; i++) {
        const ov = new Overlapped();
        pair.instance.read(buffer, ov);
        const { bytes, error } = await settle(ov);
        assert.equal(error, null);
        assert.equal(bytes, 1000);
        if (i % 500 === 0) {
          // Staged by the connection: at most one largest frame, plus the engine's stash.
          assert.ok(pair.instance.unreadBytes <= 64 * 1024 + 4 + 2 * 64 * 1024);
        }
      }
      await writing;
    } finally {
      pair.close();
    }
  });
});
