/**
 * The per-loop deadline structure: expiry order and timing, re-arming
 * (progress) and disarming, and one timer however many deadlines are armed;
 * and failPendingWith: a deadline close completes pending operations with
 * OVL_ERR_TIMEOUT on every engine.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Deadline, DeadlineTimers, RESOLUTION_MS } from '../../src/core/deadlines.js';
import { OverlappedError } from '../../src/core/errors.js';
import { Overlapped } from '../../src/core/overlapped.js';
import { waitFor } from '../support/echo-fixture.js';
import { delay, enginesUnderTest, next, openPair } from '../support/engines.js';

describe('DeadlineTimers', () => {
  test('deadlines of several durations fire in expiry order, not before they are due', async () => {
    const timers = new DeadlineTimers();
    const fired: [string, number][] = [];
    const t0 = performance.now();
    const make = (name: string) => new Deadline(() => fired.push([name, performance.now() - t0]));
    timers.arm(make('c'), 90);
    timers.arm(make('a'), 30);
    timers.arm(make('b'), 60);
    timers.arm(make('a2'), 30);
    assert.equal(timers.size, 4);
    // A loaded machine runs timers late, never early: wait for all four, then check the order.
    await waitFor(() => fired.length === 4, 'all four deadlines', 5000);
    assert.deepEqual(
      fired.map(([n]) => n),
      ['a', 'a2', 'b', 'c'],
    );
    for (const [name, at] of fired) {
      const due = name.startsWith('a') ? 30 : name === 'b' ? 60 : 90;
      assert.ok(at >= due - 1, `${name} fired at ${at.toFixed(1)} ms, due at ${due}`);
    }
    assert.equal(timers.size, 0);
  });

  test('re-arming pushes a deadline back (progress); disarming cancels it', async () => {
    const timers = new DeadlineTimers();
    let fired = 0;
    const d = new Deadline(() => fired++);
    const gone = new Deadline(() => fired++);
    timers.arm(d, 50);
    timers.arm(gone, 50);
    timers.disarm(gone);
    assert.equal(gone.armed, false);
    for (let i = 0; i < 5; i++) {
      await delay(25);
      timers.arm(d, 50);
    }
    assert.equal(fired, 0, 're-armed before it was due each time');
    await delay(50 + 5 * RESOLUTION_MS);
    assert.equal(fired, 1);
    assert.equal(d.armed, false);
  });

  test('10,000 deadlines share one timer and all fire', async () => {
    const timers = new DeadlineTimers();
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    let fired = 0;
    for (let i = 0; i < 10_000; i++) timers.arm(new Deadline(() => fired++), 20 + (i % 3) * 10);
    const during = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    assert.ok(during - before <= 1, `${during - before} timers for 10,000 deadlines`);
    await delay(40 + 5 * RESOLUTION_MS);
    assert.equal(fired, 10_000);
  });
});

for (const e of enginesUnderTest()) {
  describe(`failPendingWith on ${e.name}`, { skip: e.skip ?? false }, () => {
    test('a deadline close completes the pending recv with OVL_ERR_TIMEOUT', async () => {
      const pair = await openPair(e.engine as NonNullable<typeof e.engine>);
      try {
        const ov = new Overlapped();
        pair.socket.recv(Buffer.alloc(16), ov);
        pair.socket.failPendingWith(new OverlappedError('OVL_ERR_TIMEOUT', 'idle'));
        pair.socket.close();
        const c = await next(pair.port);
        assert.ok(c.error instanceof OverlappedError);
        assert.equal(c.error.code, 'OVL_ERR_TIMEOUT');
      } finally {
        pair.close();
      }
    });
  });
}
