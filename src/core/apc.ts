/**
 * The APC queue: where completion routines and user APCs wait until their
 * context enters an alertable wait.
 *
 * A Win32 thread has one APC queue; the context here is the JavaScript
 * thread (the main thread, or one `worker_threads` worker), so each has one
 * queue and this module holds it. Queued items run only inside an alertable
 * wait of the same thread (`sleepEx(ms, true)`, or a wait with
 * `alertable: true`), in the order they were queued; the wait then returns
 * `'io-completion'`. A non-alertable wait runs none of them.
 *
 * JavaScript lets several async loops wait at once on one thread, where
 * Win32 would have one wait per thread. When items are queued, the alertable
 * wait that has waited longest runs them all, and every other alertable wait
 * of the thread returns `'io-completion'` too: each loop wakes and checks its
 * own state (a loop told to stop by a user APC sees it, whichever wait ran
 * the APC).
 */
import type { Overlapped } from './overlapped.js';

/**
 * A completion routine (`LPWSAOVERLAPPED_COMPLETION_ROUTINE`): runs in an
 * alertable wait of the thread that posted the operation, with the
 * operation's error (or null), the bytes it moved, and its `Overlapped`,
 * which is no longer pending and may be posted again from here (the chain of
 * the classic servers: the read routine posts the write, and so on).
 */
export type CompletionRoutine<T = unknown> = (
  error: Error | null,
  bytesTransferred: number,
  ov: Overlapped<T>,
) => void;

/**
 * @internal A routine of any per-I/O data type, as stored on an Overlapped;
 * `never` keeps `Overlapped<T>` assignable to `Overlapped<unknown>`.
 */
export type StoredRoutine = (error: Error | null, bytesTransferred: number, ov: never) => void;

/** @internal An alertable wait, as the queue sees it. */
export interface AlertableWaiter {
  /** Called once, outside any engine call, when items are queued: run what is queued (if anything) and return. */
  wakeForApcs(): void;
}

// Queued items as pairs: (user APC, null) or (completion routine, its Overlapped).
// Pairs in one flat array keep queueing free of allocation.
let items: (StoredRoutine | (() => void) | Overlapped<unknown> | null)[] = [];
let spare: typeof items = [];
const alertableWaiters: AlertableWaiter[] = [];
let wakeScheduled = false;
let running = false;
const RESOLVED = Promise.resolve();

function scheduleWake(): void {
  if (wakeScheduled || alertableWaiters.length === 0) return;
  wakeScheduled = true;
  // A promise reaction: after the engine call or user code that queued the item.
  RESOLVED.then(wakeAll);
}

function wakeAll(): void {
  wakeScheduled = false;
  if (items.length === 0 || running) return;
  // wakeForApcs unregisters each waiter, so take the list first; the oldest runs the items.
  const waiters = alertableWaiters.splice(0);
  for (const waiter of waiters) waiter.wakeForApcs();
}

/** @internal Queues `ov`'s completion routine (called by delivery). */
export function queueCompletionRoutine(routine: StoredRoutine, ov: Overlapped<unknown>): void {
  items.push(routine, ov);
  scheduleWake();
}

/**
 * Queues `fn` on this thread's APC queue (`QueueUserAPC`): it runs at the
 * thread's next alertable wait, after the items queued before it.
 */
export function queueUserApc(fn: () => void): void {
  if (typeof fn !== 'function') throw new TypeError('queueUserApc() takes a function');
  items.push(fn, null);
  scheduleWake();
}

/** Items waiting to run (user APCs and completion routines). */
export function pendingApcs(): number {
  return items.length / 2;
}

/** @internal True when an alertable wait entered now would run something. */
export function hasRunnableApcs(): boolean {
  return items.length > 0 && !running;
}

/** @internal Blocks `waiter` alertably until items are queued (or it unregisters). */
export function addAlertableWaiter(waiter: AlertableWaiter): void {
  alertableWaiters.push(waiter);
  if (items.length > 0) scheduleWake();
}

/** @internal The wait returned for another reason (signal, timeout). */
export function removeAlertableWaiter(waiter: AlertableWaiter): void {
  const i = alertableWaiters.indexOf(waiter);
  if (i >= 0) alertableWaiters.splice(i, 1);
}

/**
 * @internal Runs every queued item, and the ones they queue, in order (the
 * alertable wait's part). If one throws, the rest stay queued for the next
 * alertable wait and the error propagates to the wait.
 */
export function runApcs(): void {
  if (running) return; // an alertable wait inside a routine runs nothing more
  running = true;
  try {
    while (items.length > 0) {
      const batch = items;
      items = spare;
      let i = 0;
      try {
        for (; i < batch.length; i += 2) {
          const fn = batch[i] as CompletionRoutine<unknown>;
          const ov = batch[i + 1] as Overlapped<unknown> | null;
          if (ov === null) (fn as () => void)();
          else fn(ov.error, ov.bytes, ov);
        }
      } catch (err) {
        // Keep what did not run, ahead of anything queued meanwhile.
        const rest = batch.slice(i + 2);
        for (let j = 0; j < items.length; j++) rest.push(items[j] ?? null);
        items = rest;
        batch.length = 0;
        spare = batch;
        throw err;
      }
      batch.length = 0;
      spare = batch;
    }
  } finally {
    running = false;
    if (items.length > 0) scheduleWake();
  }
}
