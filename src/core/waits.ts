/**
 * Waits: `WaitForSingleObject(Ex)`, `WSAWaitForMultipleEvents`, `SleepEx` and
 * `WSAGetOverlappedResult`, as promises.
 *
 * A wait resolves with the index of the event that satisfied it, with
 * {@link WAIT_TIMEOUT}, or (alertable waits only) with
 * {@link WAIT_IO_COMPLETION} after running every completion routine and user
 * APC queued on this thread (`apc.ts`). When events are already signalled at
 * the call, the wait is satisfied by them before any queued APC runs, as the
 * Windows kernel checks the objects first.
 *
 * A wait satisfied by an auto-reset event resets that event: two waits never
 * both take one `set()`.
 */
import {
  type AlertableWaiter,
  addAlertableWaiter,
  hasRunnableApcs,
  removeAlertableWaiter,
  runApcs,
} from './apc.js';
import { check, UsageError } from './errors.js';
import { type EventWaiter, WaitableEvent } from './events.js';
import type { Overlapped } from './overlapped.js';

/** `WSA_MAXIMUM_WAIT_EVENTS`: the most events one wait covers. */
export const MAXIMUM_WAIT_EVENTS = 64;
/** `INFINITE`: a timeout that never passes. */
export const INFINITE = Number.POSITIVE_INFINITY;
/** `WAIT_TIMEOUT` / `WSA_WAIT_TIMEOUT`: the timeout passed first. */
export const WAIT_TIMEOUT = 'timeout';
/** `WAIT_IO_COMPLETION`: an alertable wait ran queued completion routines or APCs. */
export const WAIT_IO_COMPLETION = 'io-completion';

/**
 * What a wait returned: the index of the signalled event (`WSA_WAIT_EVENT_0 + i`;
 * the lowest when several are; 0 for `waitAll`), {@link WAIT_TIMEOUT}, or
 * {@link WAIT_IO_COMPLETION}.
 */
export type WaitResult = number | typeof WAIT_TIMEOUT | typeof WAIT_IO_COMPLETION;

export interface WaitOptions {
  /** Milliseconds before the wait gives up with `'timeout'`; default {@link INFINITE}; 0 polls. */
  timeoutMs?: number;
  /** Run queued completion routines and APCs, and return `'io-completion'`. Default false. */
  alertable?: boolean;
}

export interface WaitMultipleOptions extends WaitOptions {
  /** Wait until every event is signalled at once (then take them all together). Default false. */
  waitAll?: boolean;
}

/** Takes the events that satisfy the wait now, returning the index; -1 if not satisfied. */
function satisfy(events: readonly WaitableEvent[], waitAll: boolean): number {
  if (!waitAll) {
    for (let i = 0; i < events.length; i++) {
      const event = events[i] as WaitableEvent;
      if (event.signaled) {
        event.consume();
        return i;
      }
    }
    return -1;
  }
  for (let i = 0; i < events.length; i++) if (!(events[i] as WaitableEvent).signaled) return -1;
  for (let i = 0; i < events.length; i++) (events[i] as WaitableEvent).consume();
  return 0;
}

class Wait implements EventWaiter, AlertableWaiter {
  done = false;
  readonly #events: readonly WaitableEvent[];
  readonly #waitAll: boolean;
  readonly #alertable: boolean;
  readonly #resolve: (result: WaitResult) => void;
  readonly #reject: (error: unknown) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    events: readonly WaitableEvent[],
    waitAll: boolean,
    alertable: boolean,
    timeoutMs: number,
    resolve: (result: WaitResult) => void,
    reject: (error: unknown) => void,
  ) {
    this.#events = events;
    this.#waitAll = waitAll;
    this.#alertable = alertable;
    this.#resolve = resolve;
    this.#reject = reject;
    for (let i = 0; i < events.length; i++) (events[i] as WaitableEvent).addWaiter(this);
    if (alertable) addAlertableWaiter(this);
    if (timeoutMs !== INFINITE) this.#timer = setTimeout(() => this.#timeout(), timeoutMs);
  }

  tryComplete(): void {
    const index = satisfy(this.#events, this.#waitAll);
    if (index < 0) return;
    this.#finish();
    this.#resolve(index);
  }

  wakeForApcs(): void {
    if (this.done) return;
    this.#finish();
    try {
      runApcs();
    } catch (err) {
      this.#reject(err);
      return;
    }
    this.#resolve(WAIT_IO_COMPLETION);
  }

  #timeout(): void {
    if (this.done) return;
    this.#timer = undefined;
    this.#finish();
    this.#resolve(WAIT_TIMEOUT);
  }

  #finish(): void {
    this.done = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#alertable) removeAlertableWaiter(this);
  }
}

function checkTimeout(timeoutMs: number): void {
  check(
    typeof timeoutMs === 'number' && timeoutMs >= 0 && !Number.isNaN(timeoutMs),
    'OVL_ERR_INVALID_ARGUMENT',
    `timeoutMs must be a number >= 0 (or INFINITE), got ${String(timeoutMs)}`,
  );
}

/**
 * @internal `waitForMultipleEvents(events)` (any, no timeout, not alertable)
 * without the argument checks, for models that build the array themselves
 * and wait on it once per completion.
 */
export function waitAnyUnchecked(events: readonly WaitableEvent[]): Promise<WaitResult> {
  return wait(events, false, INFINITE, false);
}

function wait(
  events: readonly WaitableEvent[],
  waitAll: boolean,
  timeoutMs: number,
  alertable: boolean,
): Promise<WaitResult> {
  const index = satisfy(events, waitAll);
  if (index >= 0) return Promise.resolve(index);
  if (alertable && hasRunnableApcs()) {
    try {
      runApcs();
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve(WAIT_IO_COMPLETION);
  }
  if (timeoutMs === 0) return Promise.resolve(WAIT_TIMEOUT);
  return new Promise((resolve, reject) => {
    new Wait(events, waitAll, alertable, timeoutMs, resolve, reject);
  });
}

/**
 * `WSAWaitForMultipleEvents`: waits until one of `events` is signalled (or,
 * with `waitAll`, all of them at once), the timeout passes, or (alertable)
 * queued routines have run. At most {@link MAXIMUM_WAIT_EVENTS} events: more
 * throws `OVL_ERR_TOO_MANY_EVENTS`; shard them across several wait loops.
 */
export function waitForMultipleEvents(
  events: readonly WaitableEvent[],
  options: WaitMultipleOptions = {},
): Promise<WaitResult> {
  const { waitAll = false, timeoutMs = INFINITE, alertable = false } = options;
  check(
    Array.isArray(events) && events.length > 0,
    'OVL_ERR_INVALID_ARGUMENT',
    'waitForMultipleEvents() needs a non-empty array of events',
  );
  if (events.length > MAXIMUM_WAIT_EVENTS) {
    throw new UsageError(
      'OVL_ERR_TOO_MANY_EVENTS',
      `${events.length} events given, but one wait covers at most ${MAXIMUM_WAIT_EVENTS} (WSA_MAXIMUM_WAIT_EVENTS): shard them across several wait loops, e.g. one loop per ${MAXIMUM_WAIT_EVENTS - 1} sockets plus a wake-up event`,
    );
  }
  for (let i = 0; i < events.length; i++) {
    check(
      events[i] instanceof WaitableEvent,
      'OVL_ERR_INVALID_ARGUMENT',
      `events[${i}] is not a ManualResetEvent or AutoResetEvent`,
    );
  }
  if (waitAll) {
    check(
      new Set(events).size === events.length,
      'OVL_ERR_INVALID_ARGUMENT',
      'waitAll cannot take the same event twice',
    );
  }
  checkTimeout(timeoutMs);
  return wait(events, waitAll, timeoutMs, alertable);
}

/** `WaitForSingleObjectEx` on one event: resolves 0 when it is signalled. */
export function waitForSingleObject(
  event: WaitableEvent,
  options: WaitOptions = {},
): Promise<WaitResult> {
  const { timeoutMs = INFINITE, alertable = false } = options;
  check(
    event instanceof WaitableEvent,
    'OVL_ERR_INVALID_ARGUMENT',
    'waitForSingleObject() takes a ManualResetEvent or AutoResetEvent',
  );
  checkTimeout(timeoutMs);
  return wait([event], false, timeoutMs, alertable);
}

const NO_EVENTS: readonly WaitableEvent[] = [];

/**
 * `SleepEx`: waits `ms`, resolving `'timeout'`. Alertable, it returns early
 * with `'io-completion'` once it has run the queued completion routines and
 * APCs (at once if some are queued already). `sleepEx(INFINITE, true)` is the
 * wait loop of a completion-routine server. `sleepEx(INFINITE, false)` never
 * resolves, as on Windows.
 */
export function sleepEx(ms: number, alertable: boolean): Promise<WaitResult> {
  checkTimeout(ms);
  return wait(NO_EVENTS, false, ms, alertable);
}

/**
 * `WSAGetOverlappedResult` without waiting: the bytes the finished operation
 * moved, or its error thrown. On an operation still pending it throws
 * `OVL_ERR_IO_INCOMPLETE`.
 */
export function getOverlappedResult(ov: Overlapped<unknown>): number;
/** `WSAGetOverlappedResult` with `fWait`: resolves with the bytes (or rejects with the error) once the operation completes. */
export function getOverlappedResult(
  ov: Overlapped<unknown>,
  options: { wait: true },
): Promise<number>;
export function getOverlappedResult(
  ov: Overlapped<unknown>,
  options?: { wait?: boolean },
): number | Promise<number>;
export function getOverlappedResult(
  ov: Overlapped<unknown>,
  options: { wait?: boolean } = {},
): number | Promise<number> {
  check(
    ov !== null && typeof ov === 'object' && 'pending' in ov,
    'OVL_ERR_INVALID_ARGUMENT',
    'getOverlappedResult() takes an Overlapped',
  );
  check(
    ov.operation !== null,
    'OVL_ERR_INVALID_ARGUMENT',
    'this Overlapped was never posted: it has no result',
  );
  if (options.wait === true) {
    if (!ov.pending)
      return ov.error === null ? Promise.resolve(ov.bytes) : Promise.reject(ov.error);
    return new Promise((resolve, reject) => {
      ov.whenDone(() => (ov.error === null ? resolve(ov.bytes) : reject(ov.error)));
    });
  }
  if (ov.pending) throw new UsageError('OVL_ERR_IO_INCOMPLETE');
  if (ov.error !== null) throw ov.error;
  return ov.bytes;
}
