/**
 * The engine contract (DESIGN.md, seven rules), checked on every engine that
 * runs here through the public core API. An engine that cannot run here is
 * skipped with its reason.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, test } from 'node:test';
import { CompletionPort } from '../../src/core/completion-port.js';
import { OsError, OverlappedError } from '../../src/core/errors.js';
import { Overlapped } from '../../src/core/overlapped.js';
import { TcpListener } from '../../src/core/tcp-listener.js';
import { TcpSocket } from '../../src/core/tcp-socket.js';
import { MAX_UNREAD_BYTES } from '../../src/engines/contract.js';
import { delay, enginesUnderTest, next, openPair, readExactly } from '../support/engines.js';

const hasCode = (code: string) => (err: unknown) =>
  err instanceof OverlappedError && err.code === code;

/** Resolves once the peer has seen end of stream (or its socket is already gone). */
function peerSeesEnd(peer: net.Socket): Promise<void> {
  if (peer.readableEnded || peer.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    peer.once('end', resolve);
    peer.once('close', resolve);
    peer.resume();
  });
}

function aborted(error: Error | null): boolean {
  return error instanceof OverlappedError && error.code === 'OVL_ERR_ABORTED';
}

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`engine contract: ${name}`, { skip: skip ?? false }, () => {
    if (engine === undefined) return;

    test('a recv completes with the first bytes, never inside the call that posted it', async () => {
      const pair = await openPair(engine);
      try {
        pair.peer.write('hello');
        await delay(50);
        const ov = new Overlapped();
        const buffer = Buffer.alloc(1024);
        pair.socket.recv(buffer, ov);
        assert.equal(ov.pending, true, 'still pending when recv() returns, though data is there');
        assert.equal(pair.port.size, 0);
        const c = await next(pair.port);
        assert.equal(c.overlapped, ov);
        assert.equal(c.key, 'socket');
        assert.equal(c.bytes, 5, 'completes with what arrived, not when the buffer is full');
        assert.equal(ov.requested, 1024);
        assert.equal(buffer.subarray(0, 5).toString(), 'hello');
        assert.equal(pair.socket.pendingOperations, 0);
      } finally {
        pair.close();
      }
    });

    test('a gathered send arrives whole and in order; bytes is the total', async () => {
      const pair = await openPair(engine);
      try {
        const parts = [
          Buffer.from('one,'),
          Buffer.from('two,'),
          Buffer.alloc(0),
          randomBytes(70_000),
        ];
        const ov = new Overlapped();
        const arriving = readExactly(pair.peer, 8 + 70_000);
        pair.socket.send(parts, ov);
        assert.equal(ov.pending, true);
        const c = await next(pair.port);
        assert.equal(c.error, null);
        assert.equal(c.bytes, 8 + 70_000);
        assert.ok((await arriving).equals(Buffer.concat(parts)));
        assert.equal(pair.socket.pendingSendBytes, 0);
      } finally {
        pair.close();
      }
    });

    test('several pending recvs complete in order with the stream in order', async () => {
      const pair = await openPair(engine);
      try {
        const ovs = [new Overlapped(), new Overlapped(), new Overlapped()];
        const buffers = ovs.map(() => Buffer.alloc(4));
        ovs.forEach((ov, i) => {
          pair.socket.recv(buffers[i] as Buffer, ov);
        });
        pair.peer.write('aaaabbbbcc');
        const seen: Overlapped[] = [];
        for (let i = 0; i < 3; i++) seen.push((await next(pair.port)).overlapped as Overlapped);
        assert.deepEqual(seen, ovs);
        assert.equal(Buffer.concat(buffers).toString('latin1', 0, 10), 'aaaabbbbcc');
        assert.deepEqual(
          ovs.map((ov) => ov.bytes),
          [4, 4, 2],
        );
      } finally {
        pair.close();
      }
    });

    test('a recv completing with 0 bytes and no error is end of stream', async () => {
      const pair = await openPair(engine);
      try {
        pair.peer.end('bye');
        const ov = new Overlapped();
        const buffer = Buffer.alloc(64);
        pair.socket.recv(buffer, ov);
        const first = await next(pair.port);
        assert.equal(first.bytes, 3);
        pair.socket.recv(buffer, ov);
        const eof = await next(pair.port);
        assert.equal(eof.bytes, 0);
        assert.equal(eof.error, null);
        pair.socket.recv(buffer, ov);
        assert.equal((await next(pair.port)).bytes, 0, 'end of stream stays end of stream');
      } finally {
        pair.close();
      }
    });

    test('the socket can still send after the peer half-closed, and shutdown ends our side', async () => {
      const pair = await openPair(engine);
      try {
        pair.peer.end();
        const ov = new Overlapped();
        pair.socket.recv(Buffer.alloc(8), ov);
        assert.equal((await next(pair.port)).bytes, 0);
        const arriving = readExactly(pair.peer, 5);
        pair.socket.send(Buffer.from('after'), ov);
        assert.equal((await next(pair.port)).bytes, 5);
        assert.equal((await arriving).toString(), 'after');
        const ended = new Promise((resolve) => pair.peer.once('end', resolve));
        pair.peer.resume();
        pair.socket.shutdown(ov);
        const c = await next(pair.port);
        assert.equal(c.error, null);
        assert.equal(ov.operation, 'shutdown');
        await ended;
      } finally {
        pair.close();
      }
    });

    test('cancel(ov) aborts a pending recv with OVL_ERR_ABORTED and 0 bytes; the socket goes on', async () => {
      const pair = await openPair(engine);
      try {
        const ov = new Overlapped();
        const buffer = Buffer.alloc(16);
        pair.socket.recv(buffer, ov);
        assert.equal(pair.socket.cancel(ov), true);
        assert.equal(pair.socket.cancel(ov), false, 'a second cancel finds nothing left to cancel');
        const c = await next(pair.port);
        assert.ok(aborted(c.error), `expected OVL_ERR_ABORTED, got ${String(c.error)}`);
        assert.equal(c.bytes, 0);
        assert.equal((c.error as OverlappedError).win32.name, 'ERROR_OPERATION_ABORTED');
        assert.equal(await pair.port.dequeue({ timeoutMs: 50 }), null, 'completed exactly once');
        assert.equal(pair.socket.cancel(ov), false, 'nothing left to cancel');
        pair.socket.recv(buffer, ov);
        pair.peer.write('still here');
        const again = await next(pair.port);
        assert.equal(buffer.subarray(0, again.bytes).toString(), 'still here');
      } finally {
        pair.close();
      }
    });

    test('close() with operations pending completes each exactly once with OVL_ERR_ABORTED', async () => {
      const pair = await openPair(engine);
      try {
        const recvs = [new Overlapped(), new Overlapped(), new Overlapped()];
        for (const ov of recvs) pair.socket.recv(Buffer.alloc(8), ov);
        assert.equal(pair.socket.pendingOperations, 3);
        pair.socket.close();
        pair.socket.close();
        const done = new Set<unknown>();
        for (let i = 0; i < 3; i++) {
          const c = await next(pair.port);
          assert.ok(aborted(c.error));
          assert.equal(done.has(c.overlapped), false, 'no operation completes twice');
          done.add(c.overlapped);
        }
        assert.equal(await pair.port.dequeue({ timeoutMs: 50 }), null);
        assert.equal(pair.socket.pendingOperations, 0, 'nothing left pending');
        assert.throws(
          () => pair.socket.recv(Buffer.alloc(8), new Overlapped()),
          hasCode('OVL_ERR_HANDLE_CLOSED'),
        );
        await peerSeesEnd(pair.peer);
      } finally {
        pair.close();
      }
    });

    test('cancel() with no argument aborts every pending recv of the handle', async () => {
      const pair = await openPair(engine);
      try {
        const ovs = [new Overlapped(), new Overlapped()];
        for (const ov of ovs) pair.socket.recv(Buffer.alloc(8), ov);
        assert.equal(pair.socket.cancel(), true);
        for (let i = 0; i < 2; i++) assert.ok(aborted((await next(pair.port)).error));
        assert.equal(pair.socket.cancel(), false);
      } finally {
        pair.close();
      }
    });

    test('posting an Overlapped that is still pending throws OVL_ERR_OVERLAPPED_IN_USE', async () => {
      const pair = await openPair(engine);
      try {
        const ov = new Overlapped({ tag: 'mine' });
        const buffer = Buffer.alloc(8);
        pair.socket.recv(buffer, ov);
        assert.throws(
          () => pair.socket.recv(Buffer.alloc(8), ov),
          hasCode('OVL_ERR_OVERLAPPED_IN_USE'),
        );
        assert.throws(
          () => pair.socket.send(Buffer.from('x'), ov),
          hasCode('OVL_ERR_OVERLAPPED_IN_USE'),
        );
        assert.equal(pair.socket.pendingOperations, 1, 'the refused posts left nothing behind');
        pair.peer.write('ok');
        const c = await next(pair.port);
        assert.equal(c.bytes, 2, 'the original operation completes normally');
        assert.deepEqual(ov.data, { tag: 'mine' });
        pair.socket.recv(buffer, ov);
        assert.equal(ov.pending, true, 'reusable once completed');
      } finally {
        pair.close();
      }
    });

    test('unread data is bounded: the engine stops reading until a recv is posted', async () => {
      const pair = await openPair(engine);
      try {
        const total = 8 * 1024 * 1024;
        const data = randomBytes(total);
        pair.peer.write(data);
        await delay(300);
        const unread = pair.socket.unreadBytes;
        assert.ok(
          unread <= MAX_UNREAD_BYTES + 64 * 1024,
          `engine holds ${unread} unread bytes, more than the bound`,
        );
        assert.ok(
          pair.peer.writableLength > total / 2,
          `flow control should hold the peer back (it still buffers ${pair.peer.writableLength} bytes)`,
        );
        const received = Buffer.alloc(total);
        let got = 0;
        const ov = new Overlapped();
        while (got < total) {
          pair.socket.recv(received.subarray(got, Math.min(total, got + 256 * 1024)), ov);
          const c = await next(pair.port);
          assert.equal(c.error, null);
          got += c.bytes;
        }
        assert.ok(received.equals(data), 'every byte arrived once, in order');
      } finally {
        pair.close();
      }
    });

    test('recvs into small buffers of a long stream get every byte once, in order', async () => {
      // Small full recvs are where an engine may read ahead (the uring engine does,
      // 64 KiB at a time); what it holds ahead stays within the unread bound.
      const pair = await openPair(engine);
      try {
        const data = randomBytes(1024 * 1024 + 17);
        pair.peer.write(Buffer.concat([data, Buffer.from('after')]));
        const received = Buffer.alloc(data.length);
        const buffer = Buffer.alloc(1000);
        const ov = new Overlapped();
        let got = 0;
        while (got < data.length) {
          const into = buffer.subarray(0, Math.min(buffer.length, data.length - got));
          pair.socket.recv(into, ov);
          const c = await next(pair.port);
          assert.equal(c.error, null);
          assert.ok(c.bytes > 0 && c.bytes <= into.length);
          buffer.copy(received, got, 0, c.bytes);
          got += c.bytes;
          assert.ok(pair.socket.unreadBytes <= MAX_UNREAD_BYTES + 64 * 1024);
        }
        assert.ok(received.equals(data), 'every byte once, in order');
        // Pooled recvs after them get the bytes that follow (maybe already read ahead), in order.
        let tail = '';
        while (tail.length < 5) {
          pair.socket.recvPooled(ov);
          const c = await next(pair.port);
          assert.equal(c.error, null);
          tail += ov.lease?.view.toString() ?? '';
          ov.lease?.release();
        }
        assert.equal(tail, 'after');
      } finally {
        pair.close();
      }
    });

    test('a send past maxPendingSendBytes completes with OVL_ERR_SEND_QUEUE_FULL', async () => {
      const pair = await openPair(engine, { maxPendingSendBytes: 64 * 1024 });
      try {
        pair.peer.pause();
        const big = Buffer.alloc(48 * 1024, 1);
        const sends: Overlapped[] = [];
        // Fill the kernel buffers first so sends stay pending.
        for (let i = 0; i < 200 && pair.socket.pendingSendBytes === 0; i++) {
          const ov = new Overlapped();
          pair.socket.send(big, ov);
          sends.push(ov);
          await delay(5);
          while (pair.port.size > 0) await next(pair.port);
        }
        assert.ok(pair.socket.pendingSendBytes > 0, 'a send stays pending against a paused reader');
        const refused = new Overlapped();
        pair.socket.send(big, refused);
        assert.equal(
          refused.pending,
          true,
          'even a refused send completes later, not inside send()',
        );
        let c = await next(pair.port);
        while (c.overlapped !== refused) c = await next(pair.port);
        assert.ok(c.error instanceof OverlappedError && c.error.code === 'OVL_ERR_SEND_QUEUE_FULL');
        assert.equal(c.error.win32.name, 'WSAENOBUFS');
        assert.ok(pair.socket.pendingSendBytes <= 64 * 1024);
      } finally {
        pair.close();
      }
    });

    test('a peer reset surfaces as a Node-style OS error on the pending recv', async () => {
      const pair = await openPair(engine);
      try {
        const ov = new Overlapped();
        pair.socket.recv(Buffer.alloc(8), ov);
        pair.peer.resetAndDestroy();
        const c = await next(pair.port);
        assert.ok(c.error instanceof OsError, `expected an OsError, got ${String(c.error)}`);
        assert.equal(c.error.code, 'ECONNRESET');
        assert.equal(typeof c.error.errno, 'number');
        assert.equal(typeof c.error.syscall, 'string');
        assert.equal(c.error.win32?.name, 'WSAECONNRESET');
        pair.socket.send(Buffer.from('x'), ov);
        const s = await next(pair.port);
        assert.ok(s.error instanceof OsError, 'later operations fail too');
      } finally {
        pair.close();
      }
    });

    test('connect completes on the socket; refusal is ECONNREFUSED', async () => {
      const port = new CompletionPort<string, unknown>({ concurrency: 1 });
      const server = net.createServer((s) => s.pipe(s));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port: serverPort } = server.address() as net.AddressInfo;
      try {
        const ov = new Overlapped();
        const socket = TcpSocket.connect({ engine, port: serverPort }, ov);
        port.associate(socket, 'client');
        const c = await next(port);
        assert.equal(c.error, null);
        assert.equal(ov.operation, 'connect');
        assert.equal(ov.socket, socket);
        assert.equal(socket.remoteAddress?.port, serverPort);
        socket.send(Buffer.from('ping'), ov);
        await next(port);
        const buffer = Buffer.alloc(4);
        socket.recv(buffer, ov);
        await next(port);
        assert.equal(buffer.toString(), 'ping');
        socket.close();

        const closed = net.createServer();
        await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
        const deadPort = (closed.address() as net.AddressInfo).port;
        await new Promise((resolve) => closed.close(resolve));
        const refusedOv = new Overlapped();
        const refused = TcpSocket.connect({ engine, port: deadPort }, refusedOv);
        port.associate(refused, 'refused');
        const r = await next(port);
        assert.equal(r.key, 'refused');
        assert.ok(r.error instanceof OsError);
        assert.equal(r.error.code, 'ECONNREFUSED');
        assert.equal(r.error.win32?.name, 'WSAECONNREFUSED');
        assert.equal(refused.pendingOperations, 0);
        refused.close();
      } finally {
        server.close();
        port.close();
      }
    });

    test('accept: each completes once with a socket; cancel and close abort pending accepts', async () => {
      const port = new CompletionPort<string, unknown>({ concurrency: 1 });
      const listener = await TcpListener.listen({ engine, port: 0 });
      port.associate(listener, 'listener');
      try {
        assert.throws(
          () => port.associate(listener, 'again'),
          hasCode('OVL_ERR_ALREADY_ASSOCIATED'),
        );
        const ovs = [new Overlapped(), new Overlapped(), new Overlapped()];
        for (const ov of ovs) listener.accept(ov);
        const client = net.connect(listener.address.port, '127.0.0.1');
        client.on('error', () => {});
        const c = await next(port);
        assert.equal(c.overlapped, ovs[0], 'the oldest accept takes the first connection');
        assert.ok(ovs[0]?.socket instanceof TcpSocket);
        assert.equal(ovs[0]?.socket?.port, null, 'an accepted socket is not associated yet');
        assert.equal(listener.cancel(ovs[1]), true);
        assert.ok(aborted((await next(port)).error));
        listener.close();
        const last = await next(port);
        assert.equal(last.overlapped, ovs[2]);
        assert.ok(aborted(last.error));
        assert.equal(listener.pendingOperations, 0);
        assert.throws(() => listener.accept(new Overlapped()), hasCode('OVL_ERR_HANDLE_CLOSED'));
        ovs[0]?.socket?.close();
        client.destroy();
      } finally {
        listener.close();
        port.close();
      }
    });

    test('listening on a port in use fails with EADDRINUSE', async () => {
      const first = await TcpListener.listen({ engine, port: 0 });
      try {
        await assert.rejects(
          TcpListener.listen({ engine, port: first.address.port }),
          (err: unknown) => err instanceof OsError && err.code === 'EADDRINUSE',
        );
      } finally {
        first.close();
      }
    });

    test('many small sends posted at once all complete, and the peer gets them whole, in order', async () => {
      const pair = await openPair(engine);
      try {
        const pieces = Array.from({ length: 200 }, (_, i) =>
          Buffer.from(`<${i}:${'x'.repeat(i % 50)}>`),
        );
        const expected = Buffer.concat(pieces);
        const arriving = readExactly(pair.peer, expected.length);
        const ovs = pieces.map(() => new Overlapped());
        pieces.forEach((piece, i) => {
          pair.socket.send(piece, ovs[i] as Overlapped);
        });
        assert.ok(
          ovs.every((ov) => ov.pending),
          'none completes inside send()',
        );
        const order: Overlapped[] = [];
        for (let i = 0; i < pieces.length; i++) {
          const c = await next(pair.port);
          assert.equal(c.error, null);
          assert.equal(c.bytes, (c.overlapped as Overlapped).requested);
          order.push(c.overlapped as Overlapped);
        }
        assert.deepEqual(order, ovs, 'sends complete in the order they were posted');
        assert.ok((await arriving).equals(expected));
      } finally {
        pair.close();
      }
    });

    test('close() right after sends still delivers every byte they completed with', async () => {
      const pair = await openPair(engine);
      try {
        const data = randomBytes(24 * 1024);
        const ovs: Overlapped[] = [];
        for (let at = 0; at < data.length; at += 1024) {
          const ov = new Overlapped();
          pair.socket.send(data.subarray(at, at + 1024), ov);
          ovs.push(ov);
        }
        let sent = 0;
        for (let i = 0; i < ovs.length; i++) {
          const c = await next(pair.port);
          if (c.error === null) sent += c.bytes;
        }
        pair.socket.close();
        const chunks: Buffer[] = [];
        pair.peer.on('data', (chunk: Buffer) => chunks.push(chunk));
        await peerSeesEnd(pair.peer);
        const got = Buffer.concat(chunks);
        assert.equal(got.length, sent, 'the peer got exactly the bytes that completed');
        assert.ok(got.equals(data.subarray(0, sent)));
      } finally {
        pair.close();
      }
    });

    test('close() ends the connection at once while other connections have recvs pending', async () => {
      // An idle connection keeps a recv in the kernel for the whole test. Closing
      // another one, after it has sent and received, must still reach its peer at
      // once: nothing the engine keeps (e.g. a registered-file slot) may hold it open.
      const idle = await openPair(engine);
      const busy = await openPair(engine);
      try {
        idle.socket.recv(Buffer.alloc(16), new Overlapped());
        busy.peer.write('ping');
        const buffer = Buffer.alloc(16);
        busy.socket.recv(buffer, new Overlapped());
        assert.equal((await next(busy.port)).bytes, 4);
        const arriving = readExactly(busy.peer, 4);
        busy.socket.send(buffer.subarray(0, 4), new Overlapped());
        await next(busy.port);
        assert.equal((await arriving).toString(), 'ping');
        busy.socket.close();
        const ended = await Promise.race([
          peerSeesEnd(busy.peer).then(() => true),
          delay(2000).then(() => false),
        ]);
        assert.ok(ended, 'the peer of the closed connection saw its end within 2 s');
        assert.equal(idle.socket.pendingOperations, 1, 'the idle recv is still pending');
      } finally {
        busy.close();
        idle.close();
      }
    });

    test('a graceful close while the OS is still taking bytes delivers them before FIN', async () => {
      const pair = await openPair(engine);
      try {
        pair.peer.pause();
        const block = randomBytes(256 * 1024);
        let sent = 0;
        const ov = new Overlapped();
        // Fill the kernel's buffers until a send stays pending against the paused peer.
        for (let i = 0; i < 200; i++) {
          pair.socket.send(block, ov);
          const c = await pair.port.dequeue({ timeoutMs: 100 });
          if (c === null) break;
          assert.equal(c.error, null);
          sent += c.bytes;
        }
        assert.equal(ov.pending, true, 'a send stays pending while the peer does not read');
        pair.socket.close();
        assert.equal(
          await pair.port.dequeue({ timeoutMs: 100 }),
          null,
          'the send stays pending while Node still holds its buffer (rule 3)',
        );
        const chunks: Buffer[] = [];
        pair.peer.on('data', (chunk: Buffer) => chunks.push(chunk));
        const ended = peerSeesEnd(pair.peer);
        const aborted = await next(pair.port);
        assert.ok(
          aborted.error instanceof OverlappedError && aborted.error.code === 'OVL_ERR_ABORTED',
          `the pending send completes aborted, got ${String(aborted.error)}`,
        );
        assert.ok(aborted.bytes <= block.length);
        await ended;
        const got = Buffer.concat(chunks);
        assert.ok(
          got.length >= sent,
          `the ${sent} bytes of completed sends arrive (got ${got.length})`,
        );
        for (let at = 0; at < sent; at += block.length) {
          const n = Math.min(block.length, sent - at);
          assert.ok(got.subarray(at, at + n).equals(block.subarray(0, n)), `bytes at ${at} intact`);
        }
      } finally {
        pair.close();
      }
    });

    test('cancelling a send the OS has not taken completes it once, aborted, and resets the connection', async () => {
      const pair = await openPair(engine);
      try {
        pair.peer.pause();
        const block = Buffer.alloc(512 * 1024, 7);
        const ov = new Overlapped();
        for (let i = 0; i < 200; i++) {
          pair.socket.send(block, ov);
          if ((await pair.port.dequeue({ timeoutMs: 100 })) === null) break;
        }
        assert.equal(ov.pending, true);
        assert.equal(pair.socket.cancel(ov), true);
        const c = await next(pair.port);
        assert.equal(c.overlapped, ov);
        assert.ok(aborted(c.error), `expected OVL_ERR_ABORTED, got ${String(c.error)}`);
        assert.ok(c.bytes < block.length, 'reports the bytes moved so far, not all of them');
        assert.equal(await pair.port.dequeue({ timeoutMs: 50 }), null, 'completed exactly once');
        assert.equal(pair.socket.pendingOperations, 0);
        const recv = new Overlapped();
        pair.socket.recv(Buffer.alloc(8), recv);
        const r = await next(pair.port);
        assert.ok(r.error instanceof OsError, `later operations fail, got ${String(r.error)}`);
        assert.equal(r.error.code, 'ECONNABORTED');
      } finally {
        pair.close();
      }
    });

    test('a zero-length recv buffer is refused: it could not be told from end of stream', async () => {
      const pair = await openPair(engine);
      try {
        assert.throws(
          () => pair.socket.recv(Buffer.alloc(0), new Overlapped()),
          hasCode('OVL_ERR_INVALID_ARGUMENT'),
        );
      } finally {
        pair.close();
      }
    });
  });
}
