import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Completion, CompletionPort } from '../../src/core/completion-port.js';
import { OverlappedError } from '../../src/core/errors.js';
import { Overlapped } from '../../src/core/overlapped.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

function assertCode(code: string) {
  return (err: unknown) => err instanceof OverlappedError && err.code === code;
}

describe('CompletionPort', () => {
  test('entries come out in the order they were posted, with their key, bytes and Overlapped', async () => {
    const port = new CompletionPort<string, number>({ concurrency: 1 });
    const ov = new Overlapped(7);
    port.post('a', 1);
    port.post('b', 2, ov);
    port.post('c', 3);
    const first = await port.dequeue();
    assert.ok(first instanceof Completion);
    assert.deepEqual([first.key, first.bytes, first.overlapped, first.error], ['a', 1, null, null]);
    const second = await port.dequeue();
    assert.equal(second?.overlapped, ov);
    assert.equal(second?.overlapped?.data, 7);
    assert.equal(ov.pending, false, 'post carries the Overlapped without marking it pending');
    assert.equal((await port.dequeue())?.key, 'c');
    assert.equal(port.size, 0);
    port.close();
  });

  test('a timeout is a result: null from dequeue, [] from dequeueMany, null at once for 0', async () => {
    const port = new CompletionPort({ concurrency: 1 });
    const started = Date.now();
    assert.equal(await port.dequeue({ timeoutMs: 30 }), null);
    assert.ok(Date.now() - started >= 25, 'waited for the timeout');
    assert.deepEqual(await port.dequeueMany({ max: 4, timeoutMs: 10 }), []);
    assert.equal(await port.dequeue({ timeoutMs: 0 }), null);
    assert.equal(port.waiting, 0, 'timed-out waiters are removed');
    port.post('late');
    assert.equal(
      (await port.dequeue({ timeoutMs: 0 }))?.key,
      'late',
      'a timed-out waiter takes nothing',
    );
    port.close();
  });

  test('dequeueMany returns at most max entries, oldest first', async () => {
    const port = new CompletionPort<number>({ concurrency: 1 });
    for (let i = 0; i < 10; i++) port.post(i);
    const batch = await port.dequeueMany({ max: 4 });
    assert.deepEqual(
      batch.map((c) => c.key),
      [0, 1, 2, 3],
    );
    assert.equal(port.size, 6);
    const rest = await port.dequeueMany({ max: 100 });
    assert.deepEqual(
      rest.map((c) => c.key),
      [4, 5, 6, 7, 8, 9],
    );
    port.close();
  });

  test('a parked dequeueMany receives everything queued by one dispatch, up to max', async () => {
    const port = new CompletionPort<number>({ concurrency: 1 });
    const pending = port.dequeueMany({ max: 3 });
    port.post(1);
    const batch = await pending;
    assert.deepEqual(
      batch.map((c) => c.key),
      [1],
    );
    port.close();
  });

  test('waiters are woken last-in-first-out', async () => {
    const port = new CompletionPort<string>({ concurrency: 8 });
    const order: string[] = [];
    const waiters = ['first', 'second', 'third'].map((name) =>
      port.dequeue().then((c) => order.push(`${name}:${String(c?.key)}`)),
    );
    await tick();
    assert.equal(port.waiting, 3);
    port.post('x');
    await tick();
    assert.deepEqual(order, ['third:x'], 'the most recent waiter got the entry');
    port.post('y');
    port.post('z');
    await Promise.all(waiters);
    assert.deepEqual(order, ['third:x', 'second:y', 'first:z']);
    port.close();
  });

  test('no more than `concurrency` workers hold completions at once', async () => {
    const port = new CompletionPort<number>({ concurrency: 2 });
    const workers = [port.worker(), port.worker(), port.worker()];
    const got: number[][] = [[], [], []];
    const waits = workers.map((w, i) => w.dequeue().then((c) => got[i]?.push(c?.key as number)));
    for (let i = 0; i < 3; i++) port.post(i);
    await tick();
    assert.equal(port.active, 2, 'two workers released');
    assert.equal(port.size, 1, 'the third entry waits for a worker to come back');
    assert.equal(got.flat().length, 2);
    // The worker that got entry 0 comes back for more: its slot frees and it keeps running.
    const back = got.findIndex((keys) => keys.length === 1);
    const next = (workers[back] as (typeof workers)[number]).dequeue();
    const third = await next;
    assert.equal(third?.key, 2);
    assert.equal(port.active, 2);
    assert.equal(port.waiting, 1, 'the third worker still waits');
    // release() gives back a slot without dequeuing: the parked worker is served.
    for (const w of workers) w.release();
    port.post(3);
    await Promise.all(waits);
    assert.deepEqual(got.flat().sort(), [0, 1, 3]);
    port.close();
  });

  test('a batch counts once toward concurrency', async () => {
    const port = new CompletionPort<number>({ concurrency: 1 });
    const [a, b] = [port.worker(), port.worker()];
    for (let i = 0; i < 5; i++) port.post(i);
    const batch = await a.dequeueMany({ max: 3 });
    assert.equal(batch.length, 3);
    assert.equal(port.active, 1);
    let bGot = false;
    const bWait = b.dequeue().then(() => {
      bGot = true;
    });
    await tick();
    assert.equal(bGot, false, 'b is held back while a holds its batch');
    const more = await a.dequeueMany({ max: 3 });
    assert.equal(more.length, 2, 'a coming back takes the rest at once');
    a.release();
    port.post(99);
    await bWait;
    assert.equal(bGot, true);
    port.close();
  });

  test('close() wakes every waiter: dequeue rejects with OVL_ERR_PORT_CLOSED, for-await ends', async () => {
    const port = new CompletionPort<string>({ concurrency: 2 });
    const single = port.dequeue();
    const many = port.dequeueMany({ max: 2 });
    const seen: string[] = [];
    const loop = (async () => {
      for await (const c of port) seen.push(c.key);
      return 'ended';
    })();
    await tick();
    port.post('one');
    await tick();
    port.close();
    port.close();
    await assert.rejects(single, assertCode('OVL_ERR_PORT_CLOSED'));
    await assert.rejects(many, assertCode('OVL_ERR_PORT_CLOSED'));
    assert.equal(await loop, 'ended');
    assert.equal(seen.length, 1);
    assert.equal(port.waiting, 0);
    await assert.rejects(port.dequeue(), assertCode('OVL_ERR_PORT_CLOSED'));
    assert.throws(() => port.post('late'), assertCode('OVL_ERR_PORT_CLOSED'));
  });

  test('bad arguments are refused with OVL_ERR_INVALID_ARGUMENT', async () => {
    assert.throws(
      () => new CompletionPort({ concurrency: 0 }),
      assertCode('OVL_ERR_INVALID_ARGUMENT'),
    );
    const port = new CompletionPort({ concurrency: 1 });
    assert.throws(() => port.post('k', -1), assertCode('OVL_ERR_INVALID_ARGUMENT'));
    assert.throws(() => port.dequeue({ timeoutMs: -5 }), assertCode('OVL_ERR_INVALID_ARGUMENT'));
    assert.throws(() => port.dequeueMany({ max: 0 }), assertCode('OVL_ERR_INVALID_ARGUMENT'));
    port.close();
  });
});
