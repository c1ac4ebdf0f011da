/**
 * The WSAEventSelect model (src/models/event-select.ts and the rules of
 * src/models/network-events.ts), on every engine that runs here, over real
 * loopback sockets with plain node:net peers: events recorded per socket and
 * an event object set; enumNetworkEvents returns the record, clears it and
 * resets the event in one step; waitForMultipleEvents finds the socket;
 * FD_CLOSE errors; inheritance from the listener; the 64-event limit. An
 * engine that cannot run here is skipped with its reason.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ManualResetEvent } from '../../src/core/events.js';
import {
  MAXIMUM_WAIT_EVENTS,
  WAIT_TIMEOUT,
  waitForMultipleEvents,
  waitForSingleObject,
} from '../../src/core/waits.js';
import { createEvent, enumNetworkEvents, eventSelect } from '../../src/models/event-select.js';
import {
  describeNetworkEvents,
  FD_ACCEPT,
  FD_CLOSE,
  FD_OOB,
  FD_READ,
  FD_WRITE,
} from '../../src/models/network-events.js';
import { NonBlockingSocket, WOULD_BLOCK } from '../../src/models/nonblocking.js';
import { enginesUnderTest } from '../support/engines.js';
import {
  delay,
  hasCode,
  hasOsCode,
  recvExactly,
  TEST_TIMEOUT,
  withScope,
} from '../support/model-fixture.js';

/** Waits for `event` to be signalled; fails with `what` after `ms`. */
async function signalled(event: ManualResetEvent, what: string, ms = 5000): Promise<void> {
  const result = await waitForSingleObject(event, { timeoutMs: ms });
  assert.equal(result, 0, `${what}: the event was not set within ${ms} ms`);
}

/** Checks that `event` stays unsignalled for `ms`. */
async function staysUnsignalled(event: ManualResetEvent, what: string, ms = 300): Promise<void> {
  const result = await waitForSingleObject(event, { timeoutMs: ms });
  assert.equal(result, WAIT_TIMEOUT, `${what}: the event was set`);
}

const names = describeNetworkEvents;

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`WSAEventSelect: ${name}`, { skip: skip ?? false }, () => {
    if (engine === undefined) return;

    test(
      'the event is set when data arrives; enumNetworkEvents returns FD_READ, clears the record and resets the event in one step',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          const event = createEvent();
          assert.equal(event.signaled, false, 'WSACreateEvent: not signalled');
          eventSelect(socket, event, FD_READ | FD_CLOSE);
          await staysUnsignalled(event, 'no data yet');
          assert.equal(enumNetworkEvents(socket, event).events, 0, 'nothing recorded yet');

          peer.socket.write('0123456789');
          await signalled(event, 'data arrived');
          const first = enumNetworkEvents(socket, event);
          assert.equal(first.events, FD_READ, `recorded: ${names(first.events)}`);
          assert.equal(first.errors.size, 0);
          assert.equal(event.signaled, false, 'enumNetworkEvents reset the event');
          const second = enumNetworkEvents(socket, event);
          assert.equal(second.events, 0, 'the record was cleared');
          assert.equal(event.signaled, false);

          await staysUnsignalled(event, 'no recv: FD_READ is not recorded again');
          assert.equal(enumNetworkEvents(socket, event).events, 0);

          const part = Buffer.alloc(4);
          assert.equal(socket.recv(part), 4);
          await signalled(event, 'recv of part re-enables FD_READ while bytes remain');
          assert.equal(enumNetworkEvents(socket, event).events, FD_READ);
          assert.equal((await recvExactly(socket, 6)).toString(), '456789');
          await delay(100);
          enumNetworkEvents(socket, event);
          assert.equal(socket.recv(part), WOULD_BLOCK);
          await staysUnsignalled(event, 'drained: nothing to report');
        }),
    );

    test(
      'enumNetworkEvents without the event clears the record but leaves the event; another event is refused',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          const event = createEvent();
          eventSelect(socket, event, FD_READ);
          peer.socket.write('x');
          await signalled(event, 'data arrived');
          assert.throws(
            () => enumNetworkEvents(socket, createEvent()),
            hasCode('OVL_ERR_INVALID_ARGUMENT'),
          );
          assert.equal(enumNetworkEvents(socket).events, FD_READ);
          assert.equal(event.signaled, true, 'no event given: not reset');
          assert.equal(enumNetworkEvents(socket).events, 0);
        }),
    );

    test(
      'FD_WRITE is recorded when a connected socket is selected, and not again after sends that succeed',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          const event = createEvent();
          eventSelect(socket, event, FD_READ | FD_WRITE | FD_CLOSE);
          await signalled(event, 'FD_WRITE on selection');
          assert.equal(enumNetworkEvents(socket, event).events, FD_WRITE);
          assert.equal(socket.send(Buffer.from('abc')), 3);
          await staysUnsignalled(event, 'a send that succeeds records nothing');
          await peer.atLeast(3);
        }),
    );

    test(
      'waitForMultipleEvents over several sockets returns the index of the one that has data',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const listener = await scope.listen();
          const peers = [];
          const sockets: NonBlockingSocket[] = [];
          const events: ManualResetEvent[] = [];
          for (let i = 0; i < 4; i++) {
            peers.push(await scope.connect(listener));
            const socket = await scope.accept(listener);
            const event = createEvent();
            eventSelect(socket, event, FD_READ | FD_CLOSE);
            sockets.push(socket);
            events.push(event);
          }
          assert.equal(
            await waitForMultipleEvents(events, { timeoutMs: 200 }),
            WAIT_TIMEOUT,
            'no data anywhere',
          );
          for (const i of [2, 0, 3]) {
            peers[i]?.socket.write(`to ${i}`);
            const index = await waitForMultipleEvents(events, { timeoutMs: 5000 });
            assert.equal(index, i, `the socket that got data is index ${i}`);
            const socket = sockets[i] as NonBlockingSocket;
            assert.equal(enumNetworkEvents(socket, events[i]).events, FD_READ);
            assert.equal((await recvExactly(socket, 4)).toString(), `to ${i}`);
            await delay(50);
            enumNetworkEvents(socket, events[i]);
          }
          assert.equal(await waitForMultipleEvents(events, { timeoutMs: 200 }), WAIT_TIMEOUT);
        }),
    );

    test(
      'a graceful close records FD_CLOSE with no error once recv returned 0',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          const event = createEvent();
          eventSelect(socket, event, FD_READ | FD_CLOSE);
          peer.socket.end('end');
          await signalled(event, 'data and FIN');
          assert.equal(enumNetworkEvents(socket, event).events, FD_READ);
          assert.equal((await recvExactly(socket, 3)).toString(), 'end');
          await signalled(event, 'the end of stream is readable');
          assert.equal(enumNetworkEvents(socket, event).events, FD_READ, 'no FD_CLOSE yet');
          assert.equal(socket.recv(Buffer.alloc(8)), 0);
          await signalled(event, 'FD_CLOSE');
          const close = enumNetworkEvents(socket, event);
          assert.equal(close.events, FD_CLOSE);
          assert.equal(close.errors.size, 0, 'a graceful close has no error');
          await staysUnsignalled(event, 'FD_CLOSE once');
        }),
    );

    test(
      'a reset records FD_CLOSE with ECONNRESET in errors (FD_READ selected: after recv throws)',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          const event = createEvent();
          eventSelect(socket, event, FD_READ | FD_CLOSE);
          peer.socket.resetAndDestroy();
          await signalled(event, 'the reset');
          const first = enumNetworkEvents(socket, event);
          assert.ok(first.events & FD_READ, `recorded: ${names(first.events)}`);
          assert.throws(() => socket.recv(Buffer.alloc(8)), hasOsCode('ECONNRESET'));
          await signalled(event, 'FD_CLOSE after the failed recv');
          const close = enumNetworkEvents(socket, event);
          assert.equal(close.events, FD_CLOSE, `recorded: ${names(close.events)}`);
          const error = close.errors.get(FD_CLOSE);
          assert.ok(hasOsCode('ECONNRESET')(error), `iErrorCode[FD_CLOSE_BIT]: ${String(error)}`);
          await staysUnsignalled(event, 'FD_CLOSE once');
        }),
    );

    test(
      'a reset with only FD_CLOSE selected records FD_CLOSE with ECONNRESET at once',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          const event = createEvent();
          eventSelect(socket, event, FD_CLOSE);
          peer.socket.resetAndDestroy();
          await signalled(event, 'the reset');
          const close = enumNetworkEvents(socket, event);
          assert.equal(close.events, FD_CLOSE, `recorded: ${names(close.events)}`);
          const error = close.errors.get(FD_CLOSE);
          assert.ok(hasOsCode('ECONNRESET')(error), `iErrorCode[FD_CLOSE_BIT]: ${String(error)}`);
        }),
    );

    test(
      'an accepted socket inherits the listener selection: the same event, a record of its own',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const listener = await scope.listen();
          const event = createEvent();
          eventSelect(listener, event, FD_ACCEPT | FD_READ | FD_CLOSE);
          await staysUnsignalled(event, 'no client yet', 100);
          const peer = await scope.connect(listener);
          await signalled(event, 'FD_ACCEPT');
          assert.equal(enumNetworkEvents(listener, event).events, FD_ACCEPT);
          const socket = listener.accept();
          assert.ok(socket instanceof NonBlockingSocket);
          scope.adopt(socket);
          await staysUnsignalled(event, 'nothing from the accepted socket yet', 200);
          assert.equal(enumNetworkEvents(socket, event).events, 0);

          peer.socket.write('hello');
          await signalled(event, 'FD_READ of the accepted socket');
          assert.equal(enumNetworkEvents(listener, event).events, 0, 'the listener has nothing');
          assert.equal(enumNetworkEvents(socket, event).events, FD_READ, 'its own record');
          assert.equal((await recvExactly(socket, 5)).toString(), 'hello');
          peer.socket.end();
          await signalled(event, 'the end of stream');
          assert.equal(socket.recv(Buffer.alloc(8)), 0);
          await signalled(event, 'FD_CLOSE of the accepted socket');
          assert.ok(enumNetworkEvents(socket, event).events & FD_CLOSE);
        }),
    );

    test(
      'a new eventSelect replaces the old one (new event, empty record); events 0 stops recording',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          const a = createEvent();
          const b = createEvent();
          eventSelect(socket, a, FD_READ);
          eventSelect(socket, b, FD_READ);
          peer.socket.write('one');
          await signalled(b, 'the new event');
          assert.equal(a.signaled, false, 'the old event is not set');
          assert.equal(enumNetworkEvents(socket, b).events, FD_READ);
          assert.equal((await recvExactly(socket, 3)).toString(), 'one');
          await delay(50);
          enumNetworkEvents(socket, b);
          eventSelect(socket, b, 0);
          peer.socket.write('two');
          await staysUnsignalled(b, 'events 0: nothing recorded');
          assert.equal(enumNetworkEvents(socket).events, 0);
          assert.equal((await recvExactly(socket, 3)).toString(), 'two');
        }),
    );

    test(
      'a refused eventSelect (unsupported events) leaves the earlier selection and its event in place',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { peer, socket } = await scope.pair();
          const event = createEvent();
          const other = createEvent();
          eventSelect(socket, event, FD_READ);
          assert.throws(
            () => eventSelect(socket, other, FD_READ | FD_OOB),
            hasCode('OVL_ERR_NOT_SUPPORTED'),
          );
          peer.socket.write('x');
          await signalled(event, 'the selection still in place sets its own event');
          assert.equal(other.signaled, false, 'the refused call associated nothing');
          assert.equal(enumNetworkEvents(socket, event).events, FD_READ);
        }),
    );

    test('nothing is recorded for a socket after close()', TEST_TIMEOUT, async () =>
      withScope(engine, async (scope) => {
        const { peer, socket } = await scope.pair();
        const event = createEvent();
        eventSelect(socket, event, FD_READ | FD_CLOSE);
        socket.close();
        peer.socket.write('late');
        await staysUnsignalled(event, 'closed: nothing is recorded');
        assert.throws(() => eventSelect(socket, event, FD_READ), hasCode('OVL_ERR_HANDLE_CLOSED'));
      }),
    );

    test(
      `waitForMultipleEvents takes ${MAXIMUM_WAIT_EVENTS} events; more throws OVL_ERR_TOO_MANY_EVENTS`,
      TEST_TIMEOUT,
      async () => {
        assert.equal(MAXIMUM_WAIT_EVENTS, 64);
        const events = Array.from({ length: MAXIMUM_WAIT_EVENTS + 1 }, () => createEvent());
        assert.throws(
          () => waitForMultipleEvents(events, { timeoutMs: 0 }),
          hasCode('OVL_ERR_TOO_MANY_EVENTS', /shard/),
        );
        const sixtyFour = events.slice(0, MAXIMUM_WAIT_EVENTS);
        assert.equal(await waitForMultipleEvents(sixtyFour, { timeoutMs: 0 }), WAIT_TIMEOUT);
        sixtyFour[63]?.set();
        assert.equal(await waitForMultipleEvents(sixtyFour, { timeoutMs: 1000 }), 63);
      },
    );
  });
}
