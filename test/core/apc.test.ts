import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pendingApcs, queueUserApc } from '../../src/core/apc.js';
import { OverlappedError } from '../../src/core/errors.js';
import { AutoResetEvent, ManualResetEvent } from '../../src/core/events.js';
import { Overlapped } from '../../src/core/overlapped.js';
import {
  getOverlappedResult,
  INFINITE,
  sleepEx,
  WAIT_IO_COMPLETION,
  WAIT_TIMEOUT,
  waitForMultipleEvents,
  waitForSingleObject,
} from '../../src/core/waits.js';
import { chooseEngine } from '../../src/engines/select.js';
import { delay, openPair, type Pair, readExactly } from '../support/engines.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

function assertCode(code: string) {
  return (err: unknown) => err instanceof OverlappedError && err.code === code;
}

describe('APC queue and alertable waits', () => {
  test('user APCs run only in an alertable wait, all of them, in queueing order', async () => {
    const ran: number[] = [];
    queueUserApc(() => ran.push(1));
    queueUserApc(() => ran.push(2));
    await tick();
    assert.deepEqual(ran, [], 'nothing runs on its own');
    assert.equal(await sleepEx(10, false), WAIT_TIMEOUT);
    assert.equal(await waitForSingleObject(new ManualResetEvent(), { timeoutMs: 5 }), WAIT_TIMEOUT);
    assert.deepEqual(ran, [], 'non-alertable waits run none');
    assert.equal(pendingApcs(), 2);
    assert.equal(await sleepEx(INFINITE, true), WAIT_IO_COMPLETION);
    assert.deepEqual(ran, [1, 2]);
    assert.equal(pendingApcs(), 0);
  });

  test('an alertable wait blocked before the APC is queued wakes with io-completion', async () => {
    const ran: string[] = [];
    const wait = sleepEx(INFINITE, true);
    await tick();
    queueUserApc(() => ran.push('a'));
    assert.equal(await wait, WAIT_IO_COMPLETION);
    assert.deepEqual(ran, ['a']);
    const event = new ManualResetEvent();
    const eventWait = waitForMultipleEvents([event], { alertable: true });
    queueUserApc(() => ran.push('b'));
    assert.equal(await eventWait, WAIT_IO_COMPLETION);
    assert.equal(await sleepEx(5, true), WAIT_TIMEOUT, 'nothing queued: the sleep runs out');
  });

  test('signalled events satisfy an alertable wait before queued APCs run', async () => {
    const event = new AutoResetEvent(true);
    let ran = false;
    queueUserApc(() => {
      ran = true;
    });
    assert.equal(await waitForSingleObject(event, { alertable: true }), 0);
    assert.equal(ran, false);
    assert.equal(await waitForSingleObject(event, { alertable: true }), WAIT_IO_COMPLETION);
    assert.equal(ran, true);
  });

  test('an APC that throws rejects the wait; the ones after it run at the next wait', async () => {
    const ran: string[] = [];
    queueUserApc(() => ran.push('first'));
    queueUserApc(() => {
      throw new Error('boom');
    });
    queueUserApc(() => ran.push('third'));
    await assert.rejects(sleepEx(0, true), /boom/);
    assert.deepEqual(ran, ['first']);
    assert.equal(await sleepEx(0, true), WAIT_IO_COMPLETION);
    assert.deepEqual(ran, ['first', 'third']);
  });

  test('an APC queued by an APC runs in the same wait', async () => {
    const ran: string[] = [];
    queueUserApc(() => {
      ran.push('outer');
      queueUserApc(() => ran.push('inner'));
    });
    assert.equal(await sleepEx(0, true), WAIT_IO_COMPLETION);
    assert.deepEqual(ran, ['outer', 'inner']);
  });
});

describe('completion routines and event-signalled operations over TCP', () => {
  const { engine } = chooseEngine('node');
  let pair: Pair;
  before(async () => {
    pair = await openPair(engine);
  });
  after(() => pair.close());

  test('a routine runs only in an alertable wait, not on the port, with error, bytes and ov', async () => {
    const buffer = Buffer.alloc(64);
    const ov = new Overlapped({ tag: 'r1' });
    const calls: [Error | null, number, string][] = [];
    pair.socket.recv(buffer, ov, (error, bytes, done) => {
      calls.push([error, bytes, done.data.tag]);
    });
    pair.peer.write('hello');
    await delay(50);
    assert.equal(ov.pending, false, 'the operation itself has completed');
    assert.deepEqual(calls, [], 'but its routine waits for an alertable wait');
    assert.equal(await sleepEx(20, false), WAIT_TIMEOUT);
    assert.deepEqual(calls, []);
    assert.equal(await pair.port.dequeue({ timeoutMs: 0 }), null, 'nothing went to the port');
    assert.equal(await sleepEx(INFINITE, true), WAIT_IO_COMPLETION);
    assert.deepEqual(calls, [[null, 5, 'r1']]);
    assert.equal(buffer.toString('utf8', 0, 5), 'hello');
  });

  test('routines run in completion order, and a routine can post the next operation', async () => {
    const order: string[] = [];
    const io = new Overlapped({ buffer: Buffer.alloc(16), rounds: 0 });
    // The chain of the classic servers: the recv routine posts a send, the send routine the next recv.
    const onSend = (error: Error | null, _bytes: number, ov: Overlapped<typeof io.data>) => {
      assert.equal(error, null);
      order.push(`sent ${ov.data.rounds}`);
      if (ov.data.rounds < 3) pair.socket.recv(ov.data.buffer, ov, onRecv);
    };
    const onRecv = (error: Error | null, bytes: number, ov: Overlapped<typeof io.data>) => {
      assert.equal(error, null);
      ov.data.rounds++;
      order.push(`recv ${bytes}`);
      pair.socket.send(ov.data.buffer.subarray(0, bytes), ov, onSend);
    };
    pair.socket.recv(io.data.buffer, io, onRecv);
    const words = ['one', 'three', 'seven'];
    for (const [i, word] of words.entries()) {
      pair.peer.write(word);
      while (order.length < 2 * (i + 1)) {
        assert.equal(await sleepEx(5000, true), WAIT_IO_COMPLETION);
      }
      assert.equal((await readExactly(pair.peer, word.length)).toString(), word);
    }
    assert.deepEqual(order, ['recv 3', 'sent 1', 'recv 5', 'sent 2', 'recv 5', 'sent 3']);
  });

  test('an event on the Overlapped is set on completion; getOverlappedResult reads it', async () => {
    const event = new ManualResetEvent();
    const ov = new Overlapped();
    ov.event = event;
    const buffer = Buffer.alloc(32);
    pair.socket.recv(buffer, ov);
    assert.throws(() => getOverlappedResult(ov), assertCode('OVL_ERR_IO_INCOMPLETE'));
    const waited = getOverlappedResult(ov, { wait: true });
    assert.equal(await waitForSingleObject(event, { timeoutMs: 30 }), WAIT_TIMEOUT);
    pair.peer.write('abcdef');
    assert.equal(await waitForSingleObject(event, { timeoutMs: 5000 }), 0);
    assert.equal(getOverlappedResult(ov), 6);
    assert.equal(await waited, 6);
    assert.equal(await getOverlappedResult(ov, { wait: true }), 6, 'finished: resolves at once');
    // The port also got the completion: event and port are not exclusive.
    assert.equal((await pair.port.dequeue({ timeoutMs: 1000 }))?.overlapped, ov);
  });

  test('getOverlappedResult gives the operation error of a finished operation', async () => {
    const ov = new Overlapped();
    ov.event = new AutoResetEvent();
    pair.socket.recv(Buffer.alloc(8), ov);
    const waited = getOverlappedResult(ov, { wait: true });
    pair.socket.cancel(ov);
    await assert.rejects(waited, assertCode('OVL_ERR_ABORTED'));
    assert.throws(() => getOverlappedResult(ov), assertCode('OVL_ERR_ABORTED'));
    assert.equal(ov.event.signaled, true, 'an aborted operation sets its event too');
    await pair.port.dequeue({ timeoutMs: 1000 });
    assert.throws(
      () => getOverlappedResult(new Overlapped()),
      assertCode('OVL_ERR_INVALID_ARGUMENT'),
    );
  });

  test('a routine that is not a function is refused before anything is posted', () => {
    const ov = new Overlapped();
    assert.throws(
      () => pair.socket.recv(Buffer.alloc(8), ov, 42 as never),
      assertCode('OVL_ERR_INVALID_ARGUMENT'),
    );
    assert.equal(ov.pending, false);
    assert.equal(pair.socket.pendingOperations, 0);
  });
});
