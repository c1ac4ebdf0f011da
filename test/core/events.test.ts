import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OverlappedError } from '../../src/core/errors.js';
import { AutoResetEvent, ManualResetEvent } from '../../src/core/events.js';
import {
  INFINITE,
  MAXIMUM_WAIT_EVENTS,
  WAIT_TIMEOUT,
  waitForMultipleEvents,
  waitForSingleObject,
} from '../../src/core/waits.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

function assertCode(code: string) {
  return (err: unknown) => err instanceof OverlappedError && err.code === code;
}

/** Tracks whether a wait has returned yet, and with what. */
function watch<T>(promise: Promise<T>): { done: boolean; value?: T } {
  const state: { done: boolean; value?: T } = { done: false };
  promise.then((value) => {
    state.done = true;
    state.value = value;
  });
  return state;
}

describe('event objects and waits', () => {
  test('a manual-reset event releases every waiter and stays signalled until reset', async () => {
    const event = new ManualResetEvent();
    assert.equal(event.signaled, false);
    const waits = [
      waitForSingleObject(event),
      waitForSingleObject(event),
      waitForSingleObject(event),
    ];
    await tick();
    event.set();
    assert.deepEqual(await Promise.all(waits), [0, 0, 0]);
    assert.equal(event.signaled, true, 'waits do not reset a manual-reset event');
    assert.equal(await waitForSingleObject(event, { timeoutMs: 0 }), 0, 'still signalled');
    event.reset();
    assert.equal(await waitForSingleObject(event, { timeoutMs: 0 }), WAIT_TIMEOUT);
  });

  test('an auto-reset event releases exactly one waiter per set() and resets itself', async () => {
    const event = new AutoResetEvent();
    const a = watch(waitForSingleObject(event));
    const b = watch(waitForSingleObject(event));
    await tick();
    event.set();
    await tick();
    assert.deepEqual([a.done, b.done], [true, false], 'the oldest waiter takes the first set()');
    assert.equal(event.signaled, false);
    event.set();
    await tick();
    assert.equal(b.done, true);
    event.set();
    assert.equal(event.signaled, true, 'with nobody waiting it stays signalled');
    assert.equal(await waitForSingleObject(event, { timeoutMs: 0 }), 0);
    assert.equal(event.signaled, false, 'the wait that came took it');
    event.set();
    event.set();
    assert.equal(await waitForSingleObject(event, { timeoutMs: 0 }), 0);
    assert.equal(
      await waitForSingleObject(event, { timeoutMs: 0 }),
      WAIT_TIMEOUT,
      'two set() without a wait in between release one wait, not two',
    );
  });

  test('waitForMultipleEvents returns the lowest signalled index and takes only that event', async () => {
    const events = [new AutoResetEvent(), new AutoResetEvent(), new AutoResetEvent()];
    (events[2] as AutoResetEvent).set();
    (events[1] as AutoResetEvent).set();
    assert.equal(await waitForMultipleEvents(events), 1);
    assert.deepEqual(
      events.map((e) => e.signaled),
      [false, false, true],
    );
    assert.equal(await waitForMultipleEvents(events), 2);
    const pending = waitForMultipleEvents(events);
    await tick();
    (events[0] as AutoResetEvent).set();
    assert.equal(await pending, 0, 'a blocked wait returns the event set while it waited');
  });

  test('waitAll waits until every event is signalled at once, then takes them together', async () => {
    const manual = new ManualResetEvent();
    const auto = new AutoResetEvent();
    const all = watch(waitForMultipleEvents([manual, auto], { waitAll: true }));
    manual.set();
    await tick();
    assert.equal(all.done, false, 'one of two is not enough');
    manual.reset();
    auto.set();
    await tick();
    assert.equal(all.done, false, 'never both at once yet');
    manual.set();
    await tick();
    assert.deepEqual(all, { done: true, value: 0 });
    assert.equal(auto.signaled, false, 'the auto-reset event was taken');
    assert.equal(manual.signaled, true);
    assert.throws(
      () => waitForMultipleEvents([manual, manual], { waitAll: true }),
      assertCode('OVL_ERR_INVALID_ARGUMENT'),
    );
  });

  test('an auto-reset event a waitAll wait cannot use yet goes to a later single wait', async () => {
    const a = new AutoResetEvent();
    const b = new AutoResetEvent();
    const all = watch(waitForMultipleEvents([a, b], { waitAll: true }));
    const single = watch(waitForSingleObject(a));
    await tick();
    a.set();
    await tick();
    assert.deepEqual([all.done, single.done], [false, true]);
  });

  test('timeouts: a blocked wait gives up after timeoutMs; 0 polls; INFINITE never times out', async () => {
    const event = new ManualResetEvent();
    const started = Date.now();
    assert.equal(await waitForMultipleEvents([event], { timeoutMs: 40 }), WAIT_TIMEOUT);
    assert.ok(Date.now() - started >= 35, 'waited for the timeout');
    assert.equal(await waitForSingleObject(event, { timeoutMs: 0 }), WAIT_TIMEOUT);
    assert.equal(
      event.waiters.filter((w) => !w.done).length,
      0,
      'timed-out waits leave no live registration',
    );
    const forever = watch(waitForSingleObject(event, { timeoutMs: INFINITE }));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(forever.done, false);
    event.set();
    await tick();
    assert.deepEqual(forever, { done: true, value: 0 });
    const late = new AutoResetEvent();
    assert.equal(await waitForSingleObject(late, { timeoutMs: 5 }), WAIT_TIMEOUT);
    late.set();
    assert.equal(late.signaled, true, 'a timed-out wait does not take a later set()');
  });

  test('more than 64 events is refused with OVL_ERR_TOO_MANY_EVENTS, pointing to sharding', () => {
    const events = Array.from({ length: MAXIMUM_WAIT_EVENTS + 1 }, () => new ManualResetEvent());
    assert.throws(
      () => waitForMultipleEvents(events),
      (err: unknown) =>
        err instanceof OverlappedError &&
        err.code === 'OVL_ERR_TOO_MANY_EVENTS' &&
        /shard/.test(err.message) &&
        err.win32.name === 'WSA_INVALID_PARAMETER',
    );
    const sixtyFour = events.slice(0, MAXIMUM_WAIT_EVENTS);
    (sixtyFour[63] as ManualResetEvent).set();
    return waitForMultipleEvents(sixtyFour).then((index) => assert.equal(index, 63));
  });

  test('bad arguments are refused with OVL_ERR_INVALID_ARGUMENT', () => {
    assert.throws(() => waitForMultipleEvents([]), assertCode('OVL_ERR_INVALID_ARGUMENT'));
    assert.throws(
      () => waitForMultipleEvents([{} as ManualResetEvent]),
      assertCode('OVL_ERR_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => waitForSingleObject(new ManualResetEvent(), { timeoutMs: -1 }),
      assertCode('OVL_ERR_INVALID_ARGUMENT'),
    );
  });

  test('an event that is rarely set does not collect finished waits', async () => {
    const rare = new ManualResetEvent();
    const busy = new AutoResetEvent();
    for (let i = 0; i < 100; i++) {
      const wait = waitForMultipleEvents([rare, busy]);
      busy.set();
      assert.equal(await wait, 1);
    }
    assert.ok(rare.waiters.length <= 1, `${rare.waiters.length} waiters left on the rare event`);
  });
});
