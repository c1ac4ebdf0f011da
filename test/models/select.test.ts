/**
 * The select model (src/models/select.ts), on every engine that runs here,
 * over real loopback sockets with plain node:net peers: timeouts, the read,
 * write and except sets, trimming and the count, readiness that stays known
 * until recv, FD_SETSIZE, and the argument errors of Winsock's select. An
 * engine that cannot run here is skipped with its reason.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NonBlockingHandle, NonBlockingSocket } from '../../src/models/nonblocking.js';
import { FD_SETSIZE, FdSet, select } from '../../src/models/select.js';
import { enginesUnderTest } from '../support/engines.js';
import {
  delay,
  hasCode,
  hasOsCode,
  type ModelScope,
  recvExactly,
  TEST_TIMEOUT,
  within,
  withScope,
} from '../support/model-fixture.js';

const set = (...handles: NonBlockingHandle[]) => {
  const s = new FdSet();
  for (const h of handles) s.add(h);
  return s;
};

/** select() with a bound: a wait that should end but hangs fails the test. */
function bounded(sets: Parameters<typeof select>[0], timeoutMs?: number, boundMs = 5000) {
  return within(select(sets, timeoutMs), boundMs, 'select returns');
}

/** Opens `n` connections on one listener; returns the accepted sockets and their peers. */
async function connections(scope: ModelScope, n: number) {
  const listener = await scope.listen();
  const peers = [];
  const sockets: NonBlockingSocket[] = [];
  for (let i = 0; i < n; i++) {
    peers.push(await scope.connect(listener));
    sockets.push(await scope.accept(listener));
  }
  return { listener, peers, sockets };
}

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`select: ${name}`, { skip: skip ?? false }, () => {
    if (engine === undefined) return;

    test(
      'timeout 0 with nothing ready returns 0 at once and empties the sets',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { socket } = await scope.pair();
          const read = set(socket);
          const except = set(socket);
          const started = performance.now();
          assert.equal(await bounded({ read, except }, 0), 0);
          const took = performance.now() - started;
          assert.ok(
            took < 100,
            `a 0 timeout polls and returns at once (took ${took.toFixed(1)} ms)`,
          );
          assert.equal(read.size, 0, 'the read set is emptied');
          assert.equal(except.size, 0, 'the except set is emptied');
        }),
    );

    test(
      'a 50 ms timeout with nothing ready resolves 0 after about 50 ms',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { socket } = await scope.pair();
          const read = set(socket);
          const started = performance.now();
          assert.equal(await bounded({ read }, 50), 0);
          const took = performance.now() - started;
          assert.ok(took >= 45, `not much earlier than the timeout (took ${took.toFixed(1)} ms)`);
          assert.ok(took < 1000, `not much later than the timeout (took ${took.toFixed(1)} ms)`);
          assert.equal(read.size, 0);
        }),
    );

    test(
      'the read set reports a socket once the peer writes, and not before',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          assert.equal(await bounded({ read: set(socket) }, 100), 0, 'nothing to read yet');
          const read = set(socket);
          const started = performance.now();
          const waiting = bounded({ read });
          setTimeout(() => peer.socket.write('ping'), 100);
          assert.equal(await waiting, 1);
          const took = performance.now() - started;
          assert.ok(took >= 90, `not reported before the peer wrote (took ${took.toFixed(1)} ms)`);
          assert.equal(read.has(socket), true);
          assert.equal((await recvExactly(socket, 4)).toString(), 'ping');
        }),
    );

    test(
      'a listener in the read set reports a waiting connection; accept then returns it',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const listener = await scope.listen();
          assert.equal(await bounded({ read: set(listener) }, 100), 0, 'no client yet');
          const read = set(listener);
          const waiting = bounded({ read });
          const peer = await scope.connect(listener);
          assert.equal(await waiting, 1);
          assert.equal(read.has(listener), true);
          const socket = listener.accept();
          assert.notEqual(socket, null, 'accept after select does not block');
          if (socket !== null) scope.adopt(socket);
          assert.equal(socket?.remoteAddress?.port, peer.socket.localPort);
          assert.equal(await bounded({ read: set(listener) }, 50), 0, 'nothing more waits');
        }),
    );

    test('the write set reports a fresh socket at once', TEST_TIMEOUT, async () =>
      withScope(engine, async (scope) => {
        const { socket } = await scope.pair();
        const write = set(socket);
        assert.equal(await bounded({ write }, 1000), 1);
        assert.equal(write.has(socket), true);
      }),
    );

    test(
      'sets are trimmed to the ready sockets and the return value counts them',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peers, sockets } = await connections(scope, 3);
          const [a, b, c] = sockets as [NonBlockingSocket, NonBlockingSocket, NonBlockingSocket];
          (peers[1] as (typeof peers)[0]).socket.write('b');
          (peers[2] as (typeof peers)[0]).socket.write('c');
          await delay(100);
          const read = set(a, b, c);
          const write = set(a);
          const except = set(a, b, c);
          assert.equal(
            await bounded({ read, write, except }, 1000),
            3,
            'b and c readable, a writable',
          );
          assert.deepEqual([...read], [b, c], 'the read set holds the readable sockets, in order');
          assert.deepEqual([...write], [a]);
          assert.equal(except.size, 0, 'no connection failed');
          assert.equal(read.size + write.size + except.size, 3);
        }),
    );

    test(
      'a socket reported readable stays reported until recv, and not after recv drained it',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          peer.socket.write('0123456789');
          assert.equal(await bounded({ read: set(socket) }), 1);
          for (let i = 0; i < 3; i++) {
            assert.equal(await bounded({ read: set(socket) }, 0), 1, `still readable (${i})`);
          }
          // recv of part: the rest is still there, so it is reported again.
          const small = Buffer.alloc(4);
          assert.equal(socket.recv(small), 4);
          assert.equal(await bounded({ read: set(socket) }, 2000), 1, 'bytes remain');
          const rest = Buffer.alloc(64);
          assert.equal(socket.recv(rest), 6);
          assert.equal(rest.toString('latin1', 0, 6), '456789');
          assert.equal(await bounded({ read: set(socket) }, 0), 0, 'drained: not readable now');
          assert.equal(await bounded({ read: set(socket) }, 100), 0, 'nor after a wait');
          peer.socket.write('x');
          assert.equal(await bounded({ read: set(socket) }, 2000), 1, 'new bytes: readable again');
        }),
    );

    test('end of stream makes a socket readable (recv returns 0)', TEST_TIMEOUT, async () =>
      withScope(engine, async (scope) => {
        const { peer, socket } = await scope.pair();
        const read = set(socket);
        const waiting = bounded({ read });
        peer.socket.end();
        assert.equal(await waiting, 1);
        assert.equal(socket.recv(Buffer.alloc(8)), 0);
      }),
    );

    test(
      'a reset is reported in the except set (and the read set), and recv throws ECONNRESET',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          const except = set(socket);
          const waiting = bounded({ except });
          peer.socket.resetAndDestroy();
          assert.equal(await waiting, 1, 'the except set reports the failed connection');
          assert.equal(except.has(socket), true);
          assert.equal(
            await bounded({ read: set(socket) }, 1000),
            1,
            'readable: recv fails at once',
          );
          assert.throws(() => socket.recv(Buffer.alloc(8)), hasOsCode('ECONNRESET'));
        }),
    );

    test(
      'a socket waited on in the except set alone is still reported readable by a later read set',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          assert.equal(await bounded({ except: set(socket) }, 50), 0, 'nothing failed');
          peer.socket.write('data');
          const started = performance.now();
          assert.equal(await bounded({ read: set(socket) }, 2000), 1, 'the bytes are reported');
          const took = performance.now() - started;
          assert.ok(
            took < 1000,
            `reported when they came, not at the timeout (${took.toFixed(0)} ms)`,
          );
          assert.equal((await recvExactly(socket, 4)).toString(), 'data');
        }),
    );

    test(
      'a listener in the except set is not reported while a connection waits (select times out)',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const listener = await scope.listen();
          await scope.connect(listener);
          assert.equal(await bounded({ read: set(listener) }, 2000), 1, 'a connection waits');
          const except = set(listener);
          const cpu = process.cpuUsage();
          assert.equal(await bounded({ except }, 200, 3000), 0);
          const used = process.cpuUsage(cpu);
          const cpuMs = (used.user + used.system) / 1000;
          assert.ok(
            cpuMs < 150,
            `the wait does not spin (${cpuMs.toFixed(0)} ms of CPU in 200 ms)`,
          );
          assert.equal(except.size, 0);
          const socket = listener.accept();
          assert.notEqual(socket, null, 'the connection still waits for accept');
          if (socket !== null) scope.adopt(socket);
        }),
    );

    test(
      `an FdSet holds FD_SETSIZE (${FD_SETSIZE}) sockets; the next throws OVL_ERR_TOO_MANY_SOCKETS, saying to shard`,
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          assert.equal(FD_SETSIZE, 64);
          const { listener, sockets } = await connections(scope, FD_SETSIZE);
          const full = new FdSet();
          for (const socket of sockets) full.add(socket);
          assert.equal(full.size, FD_SETSIZE);
          full.add(sockets[0] as NonBlockingSocket);
          assert.equal(full.size, FD_SETSIZE, 'adding a socket already in the set does nothing');
          assert.throws(() => full.add(listener), hasCode('OVL_ERR_TOO_MANY_SOCKETS', /shard/));
          assert.equal(full.size, FD_SETSIZE);
          // A full set still works: every fresh socket is writable.
          assert.equal(await bounded({ write: full }, 2000), FD_SETSIZE);
        }),
    );

    test('FdSet add/has/delete/clear are FD_SET/FD_ISSET/FD_CLR/FD_ZERO', TEST_TIMEOUT, async () =>
      withScope(engine, async (scope) => {
        const { listener, socket } = await scope.pair();
        const s = set(socket, listener);
        assert.equal(s.has(socket), true);
        assert.equal(s.delete(socket), true);
        assert.equal(s.delete(socket), false);
        assert.equal(s.has(socket), false);
        assert.equal(s.size, 1);
        s.clear();
        assert.equal(s.size, 0);
        assert.throws(() => new FdSet(0), hasCode('OVL_ERR_INVALID_ARGUMENT'));
      }),
    );

    test('three empty sets throw OVL_ERR_INVALID_ARGUMENT', TEST_TIMEOUT, async () => {
      assert.throws(() => select({}, 0), hasCode('OVL_ERR_INVALID_ARGUMENT'));
      assert.throws(
        () => select({ read: new FdSet(), write: new FdSet(), except: new FdSet() }, 10),
        hasCode('OVL_ERR_INVALID_ARGUMENT'),
      );
    });

    test('a negative timeout throws OVL_ERR_INVALID_ARGUMENT', TEST_TIMEOUT, async () =>
      withScope(engine, async (scope) => {
        const { socket } = await scope.pair();
        assert.throws(() => select({ read: set(socket) }, -1), hasCode('OVL_ERR_INVALID_ARGUMENT'));
      }),
    );

    test('a closed socket in a set throws OVL_ERR_HANDLE_CLOSED', TEST_TIMEOUT, async () =>
      withScope(engine, async (scope) => {
        const { listener, socket } = await scope.pair();
        socket.close();
        assert.throws(() => select({ read: set(socket) }, 0), hasCode('OVL_ERR_HANDLE_CLOSED'));
        assert.throws(
          () => select({ read: set(listener), write: set(socket) }, 0),
          hasCode('OVL_ERR_HANDLE_CLOSED'),
        );
        listener.close();
        assert.throws(() => select({ read: set(listener) }, 0), hasCode('OVL_ERR_HANDLE_CLOSED'));
      }),
    );

    test(
      'a socket closed while select waits ends the wait and is not reported',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { sockets } = await connections(scope, 2);
          const [a, b] = sockets as [NonBlockingSocket, NonBlockingSocket];
          const read = set(a, b);
          const started = performance.now();
          const waiting = bounded({ read }, undefined, 5000);
          setTimeout(() => a.close(), 50);
          assert.equal(await waiting, 0, 'nothing is ready: the closed socket is not counted');
          const took = performance.now() - started;
          assert.ok(took < 2000, `the close ended the wait (took ${took.toFixed(1)} ms)`);
          assert.equal(read.size, 0);
        }),
    );

    test('a listener closed while select waits ends the wait', TEST_TIMEOUT, async () =>
      withScope(engine, async (scope) => {
        const listener = await scope.listen();
        const waiting = bounded({ read: set(listener) }, undefined, 5000);
        setTimeout(() => listener.close(), 50);
        assert.equal(await waiting, 0);
      }),
    );
  });
}
