/**
 * The contract's "Buffered sends" (src/engines/contract.ts): a send may
 * complete once the engine has copied its bytes, and those bytes still
 * leave in order, before the FIN of a graceful close, never behind a FIN
 * after an abortive one, untouched by cancel, with a failure reported by
 * the operations after. Checked on every engine, over real TCP sockets,
 * with the traffic that makes the uring engine buffer: an echo of a stream
 * in 8 KiB pieces, each send completing before the next recv is posted.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { describe, test } from 'node:test';
import type { CompletionPort } from '../../src/core/completion-port.js';
import { Overlapped } from '../../src/core/overlapped.js';
import type { TcpSocket } from '../../src/core/tcp-socket.js';
import { SEND_BUFFER_BYTES } from '../../src/engines/contract.js';
import { delay, enginesUnderTest, next, openPair } from '../support/engines.js';

const PIECE = 8 * 1024;

interface Received {
  data: Buffer;
  /** The error the peer's socket ended with, or null after a clean end of stream. */
  code: string | null;
}

/** Everything the peer receives until its socket closes. */
function collect(peer: net.Socket, timeoutMs = 10_000): Promise<Received> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let code: string | null = null;
    const timer = setTimeout(
      () => reject(new Error(`the peer's socket did not end within ${timeoutMs} ms`)),
      timeoutMs,
    );
    peer.on('data', (chunk: Buffer) => chunks.push(chunk));
    peer.on('error', (err: NodeJS.ErrnoException) => {
      code ??= err.code ?? 'unknown';
    });
    peer.once('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), code });
    });
  });
}

/**
 * Like `collect`, but tells a reset from a FIN even when libuv reports the
 * reset as end of stream: a reset that arrives with the last bytes sets
 * POLLHUP, and after a short read libuv ends the stream without reading the
 * error (src/unix/stream.c). So at end of stream the peer writes one byte: a
 * socket the other side reset refuses it (ECONNRESET or EPIPE), a half-closed
 * one takes it.
 */
function collectProbingReset(peer: net.Socket, timeoutMs = 10_000): Promise<Received> {
  peer.allowHalfOpen = true;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(
      () => reject(new Error(`the peer's socket did not end within ${timeoutMs} ms`)),
      timeoutMs,
    );
    let ended = false;
    const done = (code: string | null) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      peer.removeAllListeners('error');
      peer.on('error', () => {});
      peer.destroy();
      resolve({ data: Buffer.concat(chunks), code });
    };
    peer.on('data', (chunk: Buffer) => chunks.push(chunk));
    // EPIPE is how a write meets a reset socket once the reset's own error was read.
    const reset = (err: NodeJS.ErrnoException) =>
      err.code === 'EPIPE' ? 'ECONNRESET' : (err.code ?? 'unknown');
    peer.on('error', (err: NodeJS.ErrnoException) => done(reset(err)));
    peer.once('end', () => {
      peer.write('?', (err?: Error | null) => {
        done(err ? reset(err as NodeJS.ErrnoException) : null);
      });
    });
  });
}

/**
 * The completion-port echo, one piece at a time, until end of stream, an
 * error, or (with `total`) the completion of the send that echoes the
 * last of `total` bytes, in the turn it is delivered in: resolves with the
 * bytes echoed and the error (null at end of stream).
 */
async function echo(
  socket: TcpSocket,
  port: CompletionPort<string, unknown>,
  total = Number.POSITIVE_INFINITY,
): Promise<{ echoed: number; error: Error | null }> {
  const buffer = Buffer.alloc(PIECE);
  let echoed = 0;
  while (echoed < total) {
    const recv = new Overlapped();
    socket.recv(buffer, recv);
    const r = await next(port);
    if (r.error !== null) return { echoed, error: r.error };
    if (r.bytes === 0) return { echoed, error: null };
    const send = new Overlapped();
    socket.send(buffer.subarray(0, r.bytes), send);
    const s = await next(port);
    if (s.error !== null) return { echoed, error: s.error };
    assert.equal(s.bytes, r.bytes, 'a send completes whole');
    echoed += s.bytes;
  }
  return { echoed, error: null };
}

function code(error: Error | null): string | null {
  if (error === null) return null;
  return (error as { code?: string }).code ?? error.message;
}

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`buffered sends: ${name}`, { skip: skip ?? false }, () => {
    if (engine === undefined) return;
    test('an echo in 8 KiB pieces closed as soon as its last send completes: every byte, in order, then a FIN', async () => {
      const pair = await openPair(engine);
      try {
        const data = randomBytes(1024 * 1024 + 123);
        const received = collect(pair.peer);
        pair.peer.end(data);
        const result = await echo(pair.socket, pair.port, data.length);
        assert.equal(result.error, null);
        assert.equal(result.echoed, data.length);
        pair.socket.close(); // in the turn the last send completed: its bytes may not have left
        const peer = await received;
        assert.equal(peer.code, null, 'a clean end of stream, no reset');
        assert.equal(peer.data.length, data.length);
        assert.ok(peer.data.equals(data), 'byte-exact, in order');
        assert.equal(pair.port.size, 0);
      } finally {
        pair.close();
      }
    });

    test('destroy() right after the last send completes: every byte and a FIN, or a reset, never a FIN after missing bytes', async () => {
      const pair = await openPair(engine);
      try {
        const data = randomBytes(512 * 1024);
        const received = collectProbingReset(pair.peer);
        // No end(): a reader that has sent its FIN may see a reset as a plain end of stream.
        pair.peer.write(data);
        const result = await echo(pair.socket, pair.port, data.length);
        assert.equal(result.error, null);
        pair.socket.destroy();
        const peer = await received;
        if (peer.code === null) {
          assert.ok(
            peer.data.equals(data),
            `a clean end of stream comes after every byte: ${peer.data.length} of ${data.length}`,
          );
        } else {
          assert.equal(peer.code, 'ECONNRESET');
          assert.ok(peer.data.length <= data.length);
          assert.ok(
            peer.data.equals(data.subarray(0, peer.data.length)),
            'what arrived is a prefix',
          );
        }
        await delay(20);
        assert.equal(pair.port.size, 0);
      } finally {
        pair.close();
      }
    });

    test('sends of every size posted in one turn leave in the order posted', async () => {
      const pair = await openPair(engine);
      try {
        // Put the stream in the state that buffers: a recv that filled its buffer (and no
        // byte left unread, which would make the close a reset).
        pair.peer.write(randomBytes(PIECE));
        const primer = Buffer.alloc(PIECE);
        pair.socket.recv(primer, new Overlapped());
        assert.equal((await next(pair.port)).bytes, PIECE);
        const sizes = [100, PIECE, 40_000, 1, 16 * 1024, 70_000, PIECE, 3, 200_000, 512];
        const parts = sizes.map((n) => randomBytes(n));
        const expected = Buffer.concat(parts);
        const received = collect(pair.peer);
        for (const part of parts) pair.socket.send(part, new Overlapped());
        for (let i = 0; i < parts.length; i++) {
          const c = await next(pair.port);
          assert.equal(c.error, null);
          assert.equal(c.bytes, (c.overlapped as Overlapped).requested);
        }
        pair.socket.close();
        const peer = await received;
        assert.equal(peer.code, null);
        assert.ok(peer.data.equals(expected), 'byte-exact, in the order posted');
      } finally {
        pair.close();
      }
    });

    test('cancel() after the sends completed aborts only the recv: the bytes still arrive, then a FIN', async () => {
      const pair = await openPair(engine);
      try {
        const data = randomBytes(8 * PIECE);
        const received = collect(pair.peer);
        pair.peer.write(data);
        const buffer = Buffer.alloc(PIECE);
        let echoed = 0;
        while (echoed < data.length) {
          pair.socket.recv(buffer, new Overlapped());
          const r = await next(pair.port);
          assert.equal(r.error, null);
          // Copied out: the echo of this piece must not change when the buffer is reused.
          pair.socket.send(Buffer.from(buffer.subarray(0, r.bytes)), new Overlapped());
          const s = await next(pair.port);
          assert.equal(s.error, null);
          echoed += s.bytes;
        }
        const recv = new Overlapped();
        pair.socket.recv(buffer, recv);
        assert.equal(pair.socket.cancel(), true, 'the recv was pending');
        const c = await next(pair.port);
        assert.equal(c.overlapped, recv);
        assert.equal(code(c.error), 'OVL_ERR_ABORTED');
        pair.socket.close();
        pair.peer.end();
        const peer = await received;
        assert.equal(peer.code, null, 'no reset: nothing of the caller was half sent');
        assert.ok(peer.data.equals(data), 'every echoed byte arrived');
      } finally {
        pair.close();
      }
    });

    test('a peer that resets mid-stream: the echo ends with the reset, nothing left pending', async () => {
      const pair = await openPair(engine);
      try {
        pair.peer.pause();
        const chunk = randomBytes(64 * 1024);
        let writing = true;
        const feed = async () => {
          while (writing && !pair.peer.destroyed) {
            if (!pair.peer.write(chunk)) await delay(1);
          }
        };
        void feed();
        const result = echo(pair.socket, pair.port);
        await delay(100);
        writing = false;
        pair.peer.resetAndDestroy();
        const { error } = await result;
        assert.ok(
          ['ECONNRESET', 'EPIPE', 'OVL_ERR_CONNECTION_CLOSED'].includes(code(error) ?? ''),
          `the reset is reported, got ${code(error)}`,
        );
        pair.socket.close();
        await delay(20);
        assert.equal(pair.port.size, 0);
      } finally {
        pair.close();
      }
    });

    test('a peer that never reads: sends stop completing after a bounded amount', async () => {
      const pair = await openPair(engine);
      try {
        pair.peer.pause();
        pair.peer.write(randomBytes(4 * PIECE));
        const buffer = Buffer.alloc(PIECE);
        pair.socket.recv(buffer, new Overlapped());
        assert.equal((await next(pair.port)).bytes, PIECE);
        const piece = randomBytes(PIECE);
        let completed = 0;
        // Loopback takes some MiB into its buffers; past them (and the engine's bound) a send waits.
        for (;;) {
          const send = new Overlapped();
          pair.socket.send(piece, send);
          const c = await pair.port.dequeue({ timeoutMs: 500 });
          if (c === null) break;
          assert.equal(c.error, null);
          completed += c.bytes;
          assert.ok(completed < 256 * 1024 * 1024, 'sends to a reader that never reads must stall');
        }
        assert.ok(completed > SEND_BUFFER_BYTES, `${completed} bytes completed before the stall`);
        pair.socket.destroy();
        const c = await next(pair.port);
        assert.equal(code(c.error), 'OVL_ERR_ABORTED', 'the waiting send is aborted');
      } finally {
        pair.close();
      }
    });
  });
}
