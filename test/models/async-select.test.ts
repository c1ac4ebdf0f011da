/**
 * The WSAAsyncSelect model (src/models/async-select.ts and the rules of
 * src/models/network-events.ts), on every engine that runs here, over real
 * loopback sockets with plain node:net peers. A window procedure records
 * every message its message loop dispatches; the tests count them: FD_ACCEPT
 * and FD_READ once until their re-enabling call, FD_WRITE on selection and
 * after WOULD_BLOCK, FD_CLOSE once (with 10054 after a reset), replacement,
 * inheritance, silence after close, and the window's own life cycle. An
 * engine that cannot run here is skipped with its reason.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  asyncSelect,
  createWindow,
  type MessageWindow,
  WM_USER,
  WSAGETSELECTERROR,
  WSAGETSELECTEVENT,
  WSAMAKESELECTREPLY,
} from '../../src/models/async-select.js';
import {
  describeNetworkEvents,
  FD_ACCEPT,
  FD_CLOSE,
  FD_CONNECT,
  FD_OOB,
  FD_READ,
  FD_WRITE,
} from '../../src/models/network-events.js';
import {
  type NonBlockingHandle,
  NonBlockingListener,
  NonBlockingSocket,
  WOULD_BLOCK,
} from '../../src/models/nonblocking.js';
import { enginesUnderTest } from '../support/engines.js';
import {
  delay,
  fillUntilFull,
  hasCode,
  hasOsCode,
  isRepeated,
  type ModelScope,
  recvExactly,
  recvPolling,
  TEST_TIMEOUT,
  within,
  withScope,
} from '../support/model-fixture.js';

const WM_SOCKET = WM_USER + 1;

/** One message the window procedure was called with. */
interface Dispatched {
  readonly message: number;
  readonly socket: NonBlockingHandle;
  readonly event: number;
  readonly errorNumber: number;
  readonly error: Error | null;
}

/**
 * A window whose procedure records every message (and runs `onMessage`),
 * with its message loop running; destroyed when the scope closes.
 */
class RecordingWindow {
  readonly window: MessageWindow;
  readonly messages: Dispatched[] = [];
  onMessage: ((msg: Dispatched) => void) | null = null;
  readonly loop: Promise<void>;
  #failure: Error | null = null;

  constructor(scope: ModelScope) {
    this.window = createWindow((_window, message, wParam, lParam, error) => {
      const msg: Dispatched = {
        message,
        socket: wParam as NonBlockingHandle,
        event: WSAGETSELECTEVENT(lParam),
        errorNumber: WSAGETSELECTERROR(lParam),
        error,
      };
      this.messages.push(msg);
      this.onMessage?.(msg);
    });
    this.loop = this.window.run().catch((err: Error) => {
      this.#failure = err;
    });
    scope.defer(() => this.window.destroy());
  }

  /** Messages for `socket` with `event` (and `message`, WM_SOCKET unless given). */
  of(socket: NonBlockingHandle, event: number, message = WM_SOCKET): Dispatched[] {
    return this.messages.filter(
      (m) => m.socket === socket && m.event === event && m.message === message,
    );
  }

  count(socket: NonBlockingHandle, event: number, message = WM_SOCKET): number {
    return this.of(socket, event, message).length;
  }

  /** Waits until `count(socket, event)` reaches `n`; fails after `ms` with what did arrive. */
  async waitFor(
    socket: NonBlockingHandle,
    event: number,
    n = 1,
    { ms = 5000, message = WM_SOCKET } = {},
  ): Promise<Dispatched> {
    const deadline = Date.now() + ms;
    while (this.count(socket, event, message) < n) {
      if (this.#failure !== null) throw this.#failure;
      if (Date.now() > deadline) {
        throw new Error(
          `${n} × ${describeNetworkEvents(event)} not posted within ${ms} ms; posted: ${this.describe()}`,
        );
      }
      await delay(5);
    }
    return this.of(socket, event, message)[n - 1] as Dispatched;
  }

  describe(): string {
    return (
      this.messages
        .map((m) => `${m.message}:${describeNetworkEvents(m.event)}/${m.errorNumber}`)
        .join(', ') || 'nothing'
    );
  }
}

/** Lets `ms` pass, so that a message that should not come has time to. */
const quiet = (ms = 300) => delay(ms);

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`WSAAsyncSelect: ${name}`, { skip: skip ?? false }, () => {
    if (engine === undefined) return;

    test(
      'FD_ACCEPT is posted for a waiting connection, once until accept; accept re-posts it while another waits',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const w = new RecordingWindow(scope);
          const listener = await scope.listen();
          asyncSelect(listener, w.window, WM_SOCKET, FD_ACCEPT);
          await quiet(100);
          assert.equal(w.messages.length, 0, `no client, no message; posted: ${w.describe()}`);

          await scope.connect(listener);
          await scope.connect(listener);
          const first = await w.waitFor(listener, FD_ACCEPT);
          assert.equal(first.errorNumber, 0);
          assert.equal(first.error, null);
          await quiet();
          assert.equal(w.count(listener, FD_ACCEPT), 1, 'one FD_ACCEPT until accept is called');

          const a = listener.accept();
          assert.ok(a instanceof NonBlockingSocket);
          scope.adopt(a);
          await w.waitFor(listener, FD_ACCEPT, 2);
          const b = listener.accept();
          assert.ok(b instanceof NonBlockingSocket, 'the second client waits for accept');
          scope.adopt(b);
          assert.equal(listener.accept(), null, 'nobody else waits');
          await quiet();
          assert.equal(
            w.count(listener, FD_ACCEPT),
            2,
            `no FD_ACCEPT without a client: ${w.describe()}`,
          );
          assert.equal(w.messages.length, 2, 'nothing but FD_ACCEPT was selected');
        }),
    );

    test(
      'exactly one FD_READ while data waits and recv is not called; a recv of part re-posts it; silence once drained',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const w = new RecordingWindow(scope);
          const { peer, socket } = await scope.pair();
          asyncSelect(socket, w.window, WM_SOCKET, FD_READ);
          await quiet(100);
          assert.equal(w.messages.length, 0, 'no data, no FD_READ');

          // More than any receive buffer of the engine: the rest stays in the kernel.
          const data = randomBytes(512 * 1024);
          peer.socket.write(data);
          const first = await w.waitFor(socket, FD_READ);
          assert.equal(first.errorNumber, 0);
          await quiet();
          assert.equal(w.count(socket, FD_READ), 1, 'one FD_READ until recv, however much arrives');

          const small = Buffer.alloc(1024);
          assert.equal(socket.recv(small), small.length);
          await w.waitFor(socket, FD_READ, 2);
          await quiet(200);
          assert.equal(w.count(socket, FD_READ), 2, 'one more FD_READ per recv');

          const rest = await recvExactly(socket, data.length - small.length);
          assert.ok(Buffer.concat([small, rest]).equals(data), 'the bytes, once, in order');
          await quiet(100);
          const settled = w.count(socket, FD_READ);
          assert.equal(socket.recv(small), WOULD_BLOCK, 'drained');
          await quiet();
          assert.equal(w.count(socket, FD_READ), settled, 'no FD_READ once nothing waits');
          peer.socket.write('x');
          await w.waitFor(socket, FD_READ, settled + 1);
          await quiet(200);
          assert.equal(w.count(socket, FD_READ), settled + 1, 'new bytes: one FD_READ');
          assert.equal(w.messages.length, settled + 1, 'only FD_READ was selected');
        }),
    );

    test(
      'FD_WRITE on first selection, not after sends that succeed, and once after a WOULD_BLOCK when room comes back',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const w = new RecordingWindow(scope);
          const { peer, socket } = await scope.pair({ paused: true });
          asyncSelect(socket, w.window, WM_SOCKET, FD_WRITE);
          const first = await w.waitFor(socket, FD_WRITE);
          assert.equal(first.errorNumber, 0);
          assert.equal(socket.send(Buffer.from('hello')), 5);
          await quiet();
          assert.equal(w.count(socket, FD_WRITE), 1, 'a send that succeeds re-enables nothing');

          const source = Buffer.concat([Buffer.from('hello'), randomBytes(100_000)]);
          // After each WOULD_BLOCK: room came back if an FD_WRITE follows (the
          // engine drained into the kernel); full when none comes for 300 ms.
          let expected = 1;
          const prefix = 5;
          const filled = await fillUntilFull(socket, source.subarray(prefix), async (inARow) => {
            if (inARow > 0) throw new Error('a send returned WOULD_BLOCK right after an FD_WRITE');
            const deadline = Date.now() + 300;
            while (Date.now() < deadline) {
              if (w.count(socket, FD_WRITE) > expected) {
                expected++;
                return true;
              }
              await delay(5);
            }
            return false;
          });
          assert.ok(filled.wouldBlocks >= 1);
          assert.equal(w.count(socket, FD_WRITE), expected, 'one FD_WRITE per WOULD_BLOCK');

          peer.socket.resume();
          await w.waitFor(socket, FD_WRITE, expected + 1);
          await quiet();
          assert.equal(
            w.count(socket, FD_WRITE),
            expected + 1,
            'one FD_WRITE when room came back, however much room',
          );
          await peer.atLeast(prefix + filled.taken);
          await delay(100);
          const got = peer.all();
          assert.equal(got.toString('latin1', 0, prefix), 'hello');
          const problem = isRepeated(got.subarray(prefix), source.subarray(prefix), filled.taken);
          assert.equal(problem, null, `every byte send reported arrives: ${problem}`);
        }),
    );

    test(
      'FD_CLOSE is posted once, after the peer closed and recv returned 0, with no error',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const w = new RecordingWindow(scope);
          const { peer, socket } = await scope.pair();
          asyncSelect(socket, w.window, WM_SOCKET, FD_READ | FD_CLOSE);
          peer.socket.end('bye');
          await w.waitFor(socket, FD_READ);
          await quiet(200);
          assert.equal(w.count(socket, FD_CLOSE), 0, 'not while bytes wait to be read');
          assert.equal((await recvExactly(socket, 3)).toString(), 'bye');
          // The end of stream is readable too: FD_READ again, still no FD_CLOSE.
          await w.waitFor(socket, FD_READ, 2);
          assert.equal(w.count(socket, FD_CLOSE), 0, 'not before recv returned 0');
          assert.equal(socket.recv(Buffer.alloc(16)), 0);
          const close = await w.waitFor(socket, FD_CLOSE);
          assert.equal(close.errorNumber, 0, 'a graceful close');
          assert.equal(close.error, null);
          assert.equal(socket.recv(Buffer.alloc(16)), 0);
          await quiet();
          assert.equal(w.count(socket, FD_CLOSE), 1, 'FD_CLOSE once');
          assert.equal(w.count(socket, FD_READ), 2, 'nothing after FD_CLOSE');
        }),
    );

    test(
      'with FD_READ not selected, FD_CLOSE comes when the peer closes, without a recv',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const w = new RecordingWindow(scope);
          const { peer, socket } = await scope.pair();
          asyncSelect(socket, w.window, WM_SOCKET, FD_CLOSE);
          await quiet(100);
          assert.equal(w.messages.length, 0);
          peer.socket.end();
          const close = await w.waitFor(socket, FD_CLOSE);
          assert.equal(close.errorNumber, 0);
          await quiet();
          assert.equal(w.messages.length, 1, `FD_CLOSE once: ${w.describe()}`);
        }),
    );

    test(
      'a reset: FD_READ, then recv throws ECONNRESET and FD_CLOSE carries WSAGETSELECTERROR 10054, once',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const w = new RecordingWindow(scope);
          const { peer, socket } = await scope.pair();
          asyncSelect(socket, w.window, WM_SOCKET, FD_READ | FD_CLOSE);
          peer.socket.resetAndDestroy();
          await w.waitFor(socket, FD_READ);
          assert.throws(() => socket.recv(Buffer.alloc(16)), hasOsCode('ECONNRESET'));
          const close = await w.waitFor(socket, FD_CLOSE);
          assert.equal(close.errorNumber, 10054, 'WSAECONNRESET');
          assert.ok(hasOsCode('ECONNRESET')(close.error), `the error: ${String(close.error)}`);
          assert.throws(() => socket.recv(Buffer.alloc(16)), hasOsCode('ECONNRESET'));
          await quiet();
          assert.equal(w.count(socket, FD_CLOSE), 1, `FD_CLOSE once: ${w.describe()}`);
        }),
    );

    test(
      'a reset with only FD_CLOSE selected: FD_CLOSE with 10054 at once',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const w = new RecordingWindow(scope);
          const { peer, socket } = await scope.pair();
          asyncSelect(socket, w.window, WM_SOCKET, FD_CLOSE);
          peer.socket.resetAndDestroy();
          const close = await w.waitFor(socket, FD_CLOSE);
          assert.equal(close.errorNumber, 10054, 'WSAECONNRESET');
          assert.ok(close.error instanceof Error);
          await quiet();
          assert.equal(w.messages.length, 1, `FD_CLOSE once: ${w.describe()}`);
        }),
    );

    test(
      'a new asyncSelect replaces the old selection; events 0 stops messages; re-selecting reports data already waiting',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const w = new RecordingWindow(scope);
          const { peer, socket } = await scope.pair();
          const A = WM_USER + 10;
          const B = WM_USER + 11;
          const C = WM_USER + 12;
          asyncSelect(socket, w.window, A, FD_READ);
          asyncSelect(socket, w.window, B, FD_READ);
          peer.socket.write('one');
          await w.waitFor(socket, FD_READ, 1, { message: B });
          await quiet();
          assert.equal(w.count(socket, FD_READ, A), 0, 'the replaced selection posts nothing');
          assert.equal(w.messages.length, 1, `only the new one: ${w.describe()}`);
          assert.equal((await recvExactly(socket, 3)).toString(), 'one');

          asyncSelect(socket, w.window, B, 0);
          peer.socket.write('two');
          await quiet();
          assert.equal(w.messages.length, 1, `events 0: no more messages: ${w.describe()}`);

          asyncSelect(socket, w.window, C, FD_READ);
          await w.waitFor(socket, FD_READ, 1, { message: C });
          assert.equal((await recvExactly(socket, 3)).toString(), 'two');
          await quiet(100);
          assert.equal(w.count(socket, FD_READ, A) + w.count(socket, FD_READ, B), 1);
        }),
    );

    test(
      'an accepted socket inherits the listener selection: FD_READ and FD_CLOSE for it without its own asyncSelect',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const w = new RecordingWindow(scope);
          const listener = await scope.listen();
          const accepted: NonBlockingSocket[] = [];
          w.onMessage = (msg) => {
            if (msg.event === FD_ACCEPT && msg.socket instanceof NonBlockingListener) {
              const s = msg.socket.accept();
              if (s !== null) accepted.push(scope.adopt(s));
            }
          };
          asyncSelect(listener, w.window, WM_SOCKET, FD_ACCEPT | FD_READ | FD_CLOSE);
          const peer = await scope.connect(listener);
          await w.waitFor(listener, FD_ACCEPT);
          assert.equal(accepted.length, 1);
          const socket = accepted[0] as NonBlockingSocket;
          peer.socket.end('inherited');
          await w.waitFor(socket, FD_READ);
          assert.equal((await recvExactly(socket, 9)).toString(), 'inherited');
          assert.equal(await recvPolling(socket, Buffer.alloc(16)), 0);
          await w.waitFor(socket, FD_CLOSE);
          await quiet(200);
          assert.equal(w.count(socket, FD_WRITE), 0, 'FD_WRITE was not selected');
          assert.equal(w.count(listener, FD_READ), 0, 'the listener itself gets no FD_READ');
        }),
    );

    test(
      'an accepted socket inheriting FD_WRITE gets FD_WRITE on accept; its own asyncSelect then replaces only its selection',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const w = new RecordingWindow(scope);
          const listener = await scope.listen();
          asyncSelect(listener, w.window, WM_SOCKET, FD_ACCEPT | FD_WRITE | FD_READ);
          const peer = await scope.connect(listener);
          await w.waitFor(listener, FD_ACCEPT);
          const socket = scope.adopt(listener.accept() as NonBlockingSocket);
          assert.ok(socket instanceof NonBlockingSocket);
          await w.waitFor(socket, FD_WRITE);
          const OTHER = WM_USER + 20;
          asyncSelect(socket, w.window, OTHER, FD_READ);
          peer.socket.write('x');
          await w.waitFor(socket, FD_READ, 1, { message: OTHER });
          await scope.connect(listener);
          await w.waitFor(listener, FD_ACCEPT, 2);
          const second = scope.adopt(listener.accept() as NonBlockingSocket);
          await w.waitFor(second, FD_WRITE);
          await quiet(200);
          assert.equal(w.count(socket, FD_READ), 0, 'the first socket uses its own selection now');
          assert.equal(w.count(socket, FD_WRITE), 1);
        }),
    );

    test('nothing is posted for a socket after close()', TEST_TIMEOUT, async () =>
      withScope(engine, async (scope) => {
        const w = new RecordingWindow(scope);
        const listener = await scope.listen();
        const peer1 = await scope.connect(listener);
        const closedAtOnce = await scope.accept(listener);
        const peer2 = await scope.connect(listener);
        const closedLater = await scope.accept(listener);

        asyncSelect(closedAtOnce, w.window, WM_SOCKET, FD_READ | FD_CLOSE);
        closedAtOnce.close();
        assert.throws(
          () => asyncSelect(closedAtOnce, w.window, WM_SOCKET, FD_READ),
          hasCode('OVL_ERR_HANDLE_CLOSED'),
        );
        peer1.socket.end('ignored');

        asyncSelect(closedLater, w.window, WM_SOCKET, FD_READ | FD_CLOSE);
        peer2.socket.write('data');
        await w.waitFor(closedLater, FD_READ);
        closedLater.close();
        peer2.socket.end();
        await quiet();
        assert.equal(w.messages.filter((m) => m.socket === closedAtOnce).length, 0, w.describe());
        assert.equal(w.messages.filter((m) => m.socket === closedLater).length, 1, w.describe());
      }),
    );

    test(
      'destroy(): a waiting getMessage resolves null, run() returns, nothing more is queued',
      TEST_TIMEOUT,
      async () => {
        const seen: number[] = [];
        const window = createWindow((_w, message) => seen.push(message));
        assert.equal(window.postMessage(1, null, 0), true);
        assert.equal(window.postMessage(2, null, 0), true);
        assert.equal(window.queued, 2);
        const first = await window.getMessage();
        assert.equal(first?.message, 1, 'messages come in the order posted');
        if (first !== null) window.dispatchMessage(first);
        assert.deepEqual(seen, [1]);

        const run = window.run();
        await delay(20);
        assert.deepEqual(seen, [1, 2], 'run() dispatches what was queued');
        window.postMessage(3, null, 0);
        await delay(20);
        assert.deepEqual(seen, [1, 2, 3], 'and what comes later');
        window.destroy();
        await within(run, 2000, 'run() returns after destroy()');
        assert.equal(window.destroyed, true);
        assert.equal(window.postMessage(4, null, 0), false, 'nothing is queued after destroy');
        assert.equal(await within(window.getMessage(), 1000, 'getMessage'), null);
        window.destroy();

        const other = createWindow(() => {});
        const waiting = other.getMessage();
        other.destroy();
        assert.equal(await within(waiting, 2000, 'a waiting getMessage resolves'), null);
      },
    );

    test(
      'asyncSelect on a destroyed window throws OVL_ERR_HANDLE_CLOSED; bad arguments are refused',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { socket } = await scope.pair();
          const window = createWindow(() => {});
          assert.throws(
            () => asyncSelect(socket, window, WM_SOCKET, FD_OOB),
            hasCode('OVL_ERR_NOT_SUPPORTED'),
          );
          assert.throws(
            () => asyncSelect(socket, window, WM_SOCKET, FD_CONNECT),
            hasCode('OVL_ERR_NOT_SUPPORTED'),
          );
          assert.throws(
            () => asyncSelect(socket, window, -1, FD_READ),
            hasCode('OVL_ERR_INVALID_ARGUMENT'),
          );
          assert.throws(
            () => asyncSelect(socket, {} as MessageWindow, WM_SOCKET, FD_READ),
            hasCode('OVL_ERR_INVALID_ARGUMENT'),
          );
          window.destroy();
          assert.throws(
            () => asyncSelect(socket, window, WM_SOCKET, FD_READ),
            hasCode('OVL_ERR_HANDLE_CLOSED'),
          );
        }),
    );

    test('WSAMAKESELECTREPLY packs what WSAGETSELECTEVENT and WSAGETSELECTERROR read', () => {
      const lParam = WSAMAKESELECTREPLY(FD_CLOSE, 10054);
      assert.equal(WSAGETSELECTEVENT(lParam), FD_CLOSE);
      assert.equal(WSAGETSELECTERROR(lParam), 10054);
      assert.equal(WSAGETSELECTERROR(WSAMAKESELECTREPLY(FD_READ, 0)), 0);
      assert.equal(WSAGETSELECTEVENT(WSAMAKESELECTREPLY(FD_ACCEPT, 10053)), FD_ACCEPT);
    });
  });
}
