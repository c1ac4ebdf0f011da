/**
 * Deadlines: the one timer structure of an event loop (DESIGN.md, "Limits,
 * deadlines and stopping"). Servers arm a {@link Deadline} per connection for
 * idle, read-progress and write-progress limits; none of them owns a timer.
 *
 * Structure: one list per distinct duration, each kept in expiry order for
 * free, because every entry of a list was armed `ms` after "now" and "now"
 * only grows. Arming is therefore an unlink and an append (O(1)), the cost a
 * server pays on each completion that resets a deadline; firing takes
 * expired entries off the list heads (O(expired)). A server has a handful of
 * durations (its idle, read and write limits), so finding the earliest head
 * is a scan of a few lists. One `setTimeout`, unreferenced so that it never
 * keeps a process alive, is armed for the earliest head, rounded up to
 * {@link RESOLUTION_MS} so that entries expiring together fire together.
 *
 * Each worker thread loads its own copy of this module, so {@link deadlines}
 * is one structure per event loop. Callbacks run on that loop, outside any
 * completion batch.
 */
import { check } from './errors.js';

/**
 * A graceful stop's quiet period: a connection that waited this long for
 * bytes with nothing arriving (and owes nothing) is closed with a FIN. Long
 * enough that a client whose last bytes are still leaving a busy process is
 * not taken for one that stopped; short beside the stop's 5 s deadline.
 */
export const STOP_QUIET_MS = 250;

/**
 * Checks the idle and write limits of a server's options: whole numbers of
 * ms, 0 (or absent) for off. Throws `OVL_ERR_INVALID_ARGUMENT`.
 */
export function checkTimeouts(options: { idleTimeoutMs?: number; writeTimeoutMs?: number }): void {
  for (const name of ['idleTimeoutMs', 'writeTimeoutMs'] as const) {
    const value = options[name] ?? 0;
    check(
      Number.isSafeInteger(value) && value >= 0,
      'OVL_ERR_INVALID_ARGUMENT',
      `${name} must be a whole number of ms >= 0 (0: off), got ${String(value)}`,
    );
  }
}

/** What a deadline close says of itself, in its one log line and its `OVL_ERR_TIMEOUT`. */
export function describeDeadline(reason: 'idle' | 'write', timeoutMs: number): string {
  return reason === 'idle'
    ? `no byte moved for ${timeoutMs} ms (--idle-timeout)`
    : `the client took no byte of a send for ${timeoutMs} ms (--write-timeout)`;
}

/** Deadlines fire up to this late, so that many fire in one timer callback. */
export const RESOLUTION_MS = 10;

/** One armed-or-not deadline; reuse it (re-arm) for the life of a connection. */
export class Deadline {
  /** @internal */ prev: Deadline | null = null;
  /** @internal */ next: Deadline | null = null;
  /** @internal */ list: DeadlineList | null = null;
  /** When it expires, on the `performance.now()` clock; meaningful while armed. */
  at = 0;
  readonly #onExpire: (deadline: Deadline) => void;

  /** `onExpire` runs once per arming that is not disarmed or re-armed before it passes. */
  constructor(onExpire: (deadline: Deadline) => void) {
    this.#onExpire = onExpire;
  }

  get armed(): boolean {
    return this.list !== null;
  }

  /** @internal */
  expire(): void {
    this.#onExpire(this);
  }
}

/** @internal Entries of one duration, earliest first. */
class DeadlineList {
  head: Deadline | null = null;
  tail: Deadline | null = null;
  constructor(readonly ms: number) {}

  append(d: Deadline): void {
    d.list = this;
    d.prev = this.tail;
    d.next = null;
    if (this.tail === null) this.head = d;
    else this.tail.next = d;
    this.tail = d;
  }

  unlink(d: Deadline): void {
    if (d.prev === null) this.head = d.next;
    else d.prev.next = d.next;
    if (d.next === null) this.tail = d.prev;
    else d.next.prev = d.prev;
    d.prev = d.next = null;
    d.list = null;
  }
}

/** The deadline structure of one event loop. Use {@link deadlines}, not a new one. */
export class DeadlineTimers {
  readonly #lists = new Map<number, DeadlineList>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** When the timer fires, or Infinity when it is not armed. */
  #timerAt = Number.POSITIVE_INFINITY;
  #armed = 0;

  /** Deadlines armed now. */
  get size(): number {
    return this.#armed;
  }

  /** Arms `d` to expire `ms` (a whole number > 0) from now, replacing any earlier arming. */
  arm(d: Deadline, ms: number): void {
    if (d.list !== null) {
      d.list.unlink(d);
      this.#armed--;
    }
    let list = this.#lists.get(ms);
    if (list === undefined) {
      list = new DeadlineList(ms);
      this.#lists.set(ms, list);
    }
    d.at = performance.now() + ms;
    list.append(d);
    this.#armed++;
    if (d.at + RESOLUTION_MS < this.#timerAt) this.#schedule(d.at);
  }

  /** Disarms `d` (no-op when it is not armed). */
  disarm(d: Deadline): void {
    if (d.list === null) return;
    d.list.unlink(d);
    this.#armed--;
    // The timer is left as it is: firing early with nothing due costs one callback.
  }

  #schedule(at: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    const delay = Math.max(0, Math.ceil(at - performance.now())) + RESOLUTION_MS;
    this.#timerAt = performance.now() + delay;
    this.#timer = setTimeout(this.#fire, delay);
    this.#timer.unref();
  }

  readonly #fire = (): void => {
    this.#timer = null;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    const due: Deadline[] = [];
    for (const list of this.#lists.values()) {
      for (let d = list.head; d !== null && d.at <= now; d = list.head) {
        list.unlink(d);
        this.#armed--;
        due.push(d);
      }
    }
    // Callbacks may arm and disarm freely: the lists are settled before any runs.
    for (const d of due) {
      try {
        d.expire();
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
    let earliest = Number.POSITIVE_INFINITY;
    for (const [ms, list] of this.#lists) {
      if (list.head === null) {
        this.#lists.delete(ms);
      } else if (list.head.at < earliest) {
        earliest = list.head.at;
      }
    }
    if (earliest !== Number.POSITIVE_INFINITY && earliest + RESOLUTION_MS < this.#timerAt) {
      this.#schedule(earliest);
    }
  };
}

/** This event loop's deadline structure. */
export const deadlines = new DeadlineTimers();
