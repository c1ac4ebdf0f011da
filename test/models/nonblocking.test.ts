/**
 * The non-blocking socket mode (src/models/nonblocking.ts), on every engine
 * that runs here, over real loopback sockets with plain node:net peers:
 * recv, send and accept return at once, moving what can be moved now, and
 * say WOULD_BLOCK (null for accept) when nothing can; a closed socket
 * refuses every call. An engine that cannot run here is skipped with its
 * reason.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { NonBlockingSocket, setNonBlocking, WOULD_BLOCK } from '../../src/models/nonblocking.js';
import { enginesUnderTest } from '../support/engines.js';
import {
  delay,
  fillUntilFull,
  hasCode,
  isRepeated,
  recvExactly,
  recvPolling,
  TEST_TIMEOUT,
  waitUntil,
  withScope,
} from '../support/model-fixture.js';

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`non-blocking sockets: ${name}`, { skip: skip ?? false }, () => {
    if (engine === undefined) return;

    test('WOULD_BLOCK is Winsock SOCKET_ERROR (-1)', () => {
      assert.equal(WOULD_BLOCK, -1);
    });

    test(
      'recv: WOULD_BLOCK on an empty socket, then the exact bytes, then 0 after the peer FIN',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          const buffer = Buffer.alloc(4096);
          assert.equal(socket.recv(buffer), WOULD_BLOCK, 'nothing has arrived yet');
          await delay(50);
          assert.equal(socket.recv(buffer), WOULD_BLOCK, 'still nothing: the call does not wait');

          const data = randomBytes(10_000);
          peer.socket.write(data);
          const got = await recvExactly(socket, data.length);
          assert.ok(got.equals(data), 'the exact bytes, once, in order');
          assert.equal(socket.recv(buffer), WOULD_BLOCK, 'nothing is left over');

          peer.socket.end();
          assert.equal(await recvPolling(socket, buffer), 0, 'end of stream after the FIN');
          assert.equal(socket.recv(buffer), 0, 'end of stream stays end of stream');
        }),
    );

    test(
      'recv fills at most the buffer given; the rest waits for the next recv',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          peer.socket.write('0123456789');
          const small = Buffer.alloc(4);
          assert.equal(await recvPolling(socket, small), 4);
          assert.equal(small.toString(), '0123');
          const rest = await recvExactly(socket, 6);
          assert.equal(rest.toString(), '456789');
        }),
    );

    test(
      'send to a peer that never reads: partial counts, then WOULD_BLOCK (bounded); every byte send reported arrives byte-exact',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair({ paused: true });
          // An odd length moves the seams between calls around.
          const source = randomBytes(256 * 1024 + 3);
          const { taken, partial, wouldBlocks } = await fillUntilFull(socket, source);
          assert.ok(wouldBlocks >= 1, 'send returned WOULD_BLOCK once the connection was full');
          assert.ok(partial >= 1, `send took part of a buffer at least once (partial: ${partial})`);
          assert.ok(taken > 0);
          assert.equal(socket.send(source), WOULD_BLOCK, 'still full while the peer does not read');

          peer.socket.resume();
          await peer.atLeast(taken);
          await delay(100);
          const problem = isRepeated(peer.all(), source, taken);
          assert.equal(problem, null, `the peer got exactly the bytes send reported: ${problem}`);
        }),
    );

    test(
      'accept: null with no client waiting, then a non-blocking socket for the client, then null again',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const listener = await scope.listen();
          assert.equal(listener.accept(), null, 'no client yet');
          await delay(30);
          assert.equal(listener.accept(), null, 'still none: accept does not wait');
          const peer = await scope.connect(listener);
          const socket = await scope.accept(listener);
          assert.ok(socket instanceof NonBlockingSocket);
          assert.equal(
            socket.remoteAddress?.port,
            peer.socket.localPort,
            'the client, not another',
          );
          assert.equal(listener.accept(), null, 'one client, one socket');
          peer.socket.write('hi');
          assert.equal((await recvExactly(socket, 2)).toString(), 'hi');
          assert.equal(socket.send(Buffer.from('yo')), 2);
          await peer.atLeast(2);
          assert.equal(peer.all().toString(), 'yo');
        }),
    );

    test('shutdown sends FIN after the bytes sent; receiving goes on', TEST_TIMEOUT, async () =>
      withScope(engine, async (scope) => {
        const { peer, socket } = await scope.pair({ allowHalfOpen: true });
        assert.equal(socket.send(Buffer.from('last words')), 10);
        socket.shutdown();
        socket.shutdown();
        await waitUntil(() => peer.record.ended, 5000, 'the peer sees the FIN');
        assert.equal(peer.all().toString(), 'last words');
        peer.socket.end('reply');
        assert.equal((await recvExactly(socket, 5)).toString(), 'reply');
        assert.equal(await recvPolling(socket, Buffer.alloc(16)), 0);
      }),
    );

    test(
      'calls on a closed socket or listener throw OVL_ERR_HANDLE_CLOSED; close is idempotent',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { listener, peer, socket } = await scope.pair();
          assert.equal(socket.send(Buffer.from('bye')), 3);
          socket.close();
          socket.close();
          assert.equal(socket.closed, true);
          assert.throws(() => socket.recv(Buffer.alloc(8)), hasCode('OVL_ERR_HANDLE_CLOSED'));
          assert.throws(() => socket.send(Buffer.from('x')), hasCode('OVL_ERR_HANDLE_CLOSED'));
          // Bytes the OS took before close are still delivered, then FIN.
          await waitUntil(() => peer.record.ended, 5000, 'the peer sees the close');
          assert.equal(peer.all().toString(), 'bye');

          listener.close();
          listener.close();
          assert.equal(listener.closed, true);
          assert.throws(() => listener.accept(), hasCode('OVL_ERR_HANDLE_CLOSED'));
        }),
    );

    test(
      'a socket made non-blocking from a core TcpSocket is the same connection',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { socket } = await scope.pair();
          const again = setNonBlocking(socket.socket);
          assert.ok(again instanceof NonBlockingSocket);
          assert.equal(again.socket, socket.socket);
        }),
    );
  });
}
