/**
 * The contract's rule for close() and destroy() together (EngineStream.close
 * in src/engines/contract.ts): both idempotent, abortive wins. destroy()
 * after close() cuts a lingering graceful close short (the lingering send
 * completes aborted at once, the peer sees a reset); once nothing lingers it
 * changes nothing (the peer still gets every byte and a FIN). Checked on
 * every engine over real TCP sockets.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { describe, test } from 'node:test';
import { OverlappedError } from '../../src/core/errors.js';
import { Overlapped } from '../../src/core/overlapped.js';
import { delay, enginesUnderTest, next, openPair } from '../support/engines.js';

/** Far more than loopback's send and receive buffers hold, so a send to a paused reader stays pending. */
const LINGERING_SEND = 32 * 1024 * 1024;

interface PeerOutcome {
  bytes: number;
  /** The error the peer's socket ended with, or null after a clean end of stream. */
  code: string | null;
  /** The first chunks received (enough for the small transfers compared byte for byte). */
  data: Buffer;
}

/** Resumes the peer and collects what it receives until its socket ends, cleanly or not. */
function drainPeer(peer: net.Socket, timeoutMs = 5000): Promise<PeerOutcome> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let code: string | null = null;
    const timer = setTimeout(
      () => reject(new Error(`the peer's socket did not end within ${timeoutMs} ms`)),
      timeoutMs,
    );
    peer.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (chunks.length < 64) chunks.push(chunk);
    });
    peer.on('error', (err: NodeJS.ErrnoException) => {
      code ??= err.code ?? 'unknown';
    });
    peer.once('close', () => {
      clearTimeout(timer);
      resolve({ bytes, code, data: Buffer.concat(chunks) });
    });
    peer.resume();
  });
}

function isAborted(error: Error | null): boolean {
  return error instanceof OverlappedError && error.code === 'OVL_ERR_ABORTED';
}

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`close() then destroy(): ${name}`, { skip: skip ?? false }, () => {
    if (engine === undefined) return;

    test('destroy() resets a lingering graceful close: its send completes aborted at once, the peer sees a reset', async () => {
      const pair = await openPair(engine, { maxPendingSendBytes: 2 * LINGERING_SEND });
      try {
        pair.peer.pause();
        const send = new Overlapped();
        pair.socket.send(Buffer.alloc(LINGERING_SEND, 7), send);
        await delay(100);
        assert.equal(send.pending, true, 'the send waits for the paused reader');
        pair.socket.close();
        await delay(100);
        assert.equal(send.pending, true, 'a graceful close lets the send linger');
        assert.equal(pair.port.size, 0);

        pair.socket.destroy();
        pair.socket.destroy();
        pair.socket.close();
        const c = await next(pair.port, 2000);
        assert.equal(c.overlapped, send);
        assert.ok(isAborted(c.error), `expected OVL_ERR_ABORTED, got ${String(c.error)}`);
        assert.ok(c.bytes < LINGERING_SEND, `moved ${c.bytes} of ${LINGERING_SEND} bytes`);
        assert.equal(pair.socket.pendingOperations, 0, 'nothing left pending');

        // A FIN would follow every byte of the send (a graceful close delivers them all);
        // after the reset the peer's socket ends short, the bytes still in flight lost.
        const peer = await drainPeer(pair.peer, 2000);
        assert.ok(peer.bytes < LINGERING_SEND, `the peer got ${peer.bytes} bytes, not all`);
        await delay(50);
        assert.equal(pair.port.size, 0, 'nothing completes twice');
      } finally {
        pair.close();
      }
    });

    test('destroy() once a close() has nothing left lingering changes nothing: every byte and a FIN', async () => {
      const pair = await openPair(engine);
      try {
        pair.peer.pause();
        const data = randomBytes(16 * 1024);
        const send = new Overlapped();
        pair.socket.send(data, send);
        const c = await next(pair.port);
        assert.equal(c.error, null);
        assert.equal(c.bytes, data.length);
        pair.socket.close();
        // A completed send may still be the engine's to deliver (contract: buffered sends);
        // once the peer has every byte and the FIN, nothing is left for destroy() to cut.
        const drained = drainPeer(pair.peer);
        await new Promise<void>((resolve) => pair.peer.once('end', resolve));
        pair.socket.destroy();
        pair.socket.destroy();
        const peer = await drained;
        assert.equal(peer.code, null, 'a clean end of stream, no reset');
        assert.equal(peer.bytes, data.length);
        assert.ok(peer.data.equals(data), 'byte-exact');
        assert.equal(pair.port.size, 0);
      } finally {
        pair.close();
      }
    });
  });
}
