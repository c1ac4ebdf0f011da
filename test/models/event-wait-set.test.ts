import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualResetEvent } from '../../src/core/events.js';
import { EventWaitSet } from '../../src/models/event-wait-set.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('EventWaitSet', () => {
  test('a loop blocked in next() takes in items added later and returns the signalled one', async () => {
    const set = new EventWaitSet<string>();
    const next = set.next();
    await tick();
    const a = new ManualResetEvent();
    const b = new ManualResetEvent();
    set.add(a, 'a');
    set.add(b, 'b');
    assert.equal(set.size, 2);
    b.set();
    assert.equal(await next, 'b');
    assert.equal(b.signaled, false, 'next() resets the event it returns');
    a.set();
    b.set();
    assert.equal(await set.next(), 'a', 'the lowest slot first');
    assert.equal(await set.next(), 'b');
  });

  test('remove() compacts: the last item takes the freed slot and keeps its event', async () => {
    const set = new EventWaitSet<number>();
    const events = [0, 1, 2].map(() => new ManualResetEvent());
    for (const [i, e] of events.entries()) set.add(e, i);
    const blocked = set.next();
    await tick();
    assert.equal(set.remove(0), true);
    assert.equal(set.remove(0), false, 'already gone');
    (events[0] as ManualResetEvent).set();
    (events[2] as ManualResetEvent).set();
    assert.equal(await blocked, 2, 'the removed item never comes back');
    assert.equal(set.size, 2);
  });

  test('holds 63 items (64 events with its own) and refuses the 64th', () => {
    const set = new EventWaitSet<number>();
    for (let i = 0; i < EventWaitSet.CAPACITY; i++) set.add(new ManualResetEvent(), i);
    assert.equal(EventWaitSet.CAPACITY, 63);
    assert.equal(set.full, true);
    assert.throws(() => set.add(new ManualResetEvent(), 99), RangeError);
  });

  test('close() makes a blocked next() resolve null', async () => {
    const set = new EventWaitSet<number>();
    const next = set.next();
    await tick();
    set.close();
    assert.equal(await next, null);
    assert.equal(await set.next(), null);
  });
});
