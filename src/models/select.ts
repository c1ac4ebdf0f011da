/**
 * The select model: `select(read, write, except, timeout)` over sets of
 * non-blocking sockets. It waits until at least one socket of the sets is
 * ready (or the timeout passes), then trims each set to its ready sockets
 * and returns how many there are, as Winsock's `select` rewrites its
 * `fd_set`s. The program then makes the non-blocking calls that will not
 * block: `recv`/`accept` on the read set, `send` on the write set.
 *
 * - read set: bytes, the peer's end of stream or an error are there (a
 *   `recv` returns at once); on a listener, a connection waits for `accept`.
 * - write set: `send` would take at least one byte.
 * - except set: the connection failed (reset). Winsock also reports
 *   out-of-band data and a failed non-blocking connect here; this toolkit
 *   has neither.
 *
 * A set holds at most {@link FD_SETSIZE} (64) sockets, as Winsock's default
 * `FD_SETSIZE`: a server with more clients runs one select loop per 63 of
 * them plus the listener. Each call costs time in proportion to the sockets
 * in its sets, which is the model's known weakness at scale.
 *
 * Readiness comes from `poll` operations kept posted across calls: a socket
 * reported readable stays known readable until `recv` is called on it, so a
 * `select` never reports a socket as ready on stale news, and a socket that
 * is not ready costs one poll that stays pending until it is.
 */
import { check } from '../core/errors.js';
import type { Overlapped } from '../core/overlapped.js';
import { INFINITE } from '../core/waits.js';
import { Readiness } from '../engines/contract.js';
import { type NonBlockingHandle, NonBlockingListener } from './nonblocking.js';
import { isAborted, type PollOwner, pollRecord, watch } from './readiness-port.js';

/** `FD_SETSIZE`: the most sockets one set holds (Winsock's default, 64). */
export const FD_SETSIZE = 64;

/**
 * An `fd_set`: `add` is FD_SET, `delete` FD_CLR, `has` FD_ISSET, `clear`
 * FD_ZERO. `select` rewrites it to the ready sockets, so refill it before
 * every call (as the seeds say: "always clear the read set before calling
 * select()").
 */
export class FdSet implements Iterable<NonBlockingHandle> {
  /** The most sockets this set holds: {@link FD_SETSIZE} unless given (as `#define FD_SETSIZE`). */
  readonly capacity: number;
  /** @internal */
  readonly items: NonBlockingHandle[] = [];
  /** Membership, so that FD_SET and FD_ISSET cost the same whatever the set holds. */
  readonly #members = new Set<NonBlockingHandle>();

  constructor(capacity: number = FD_SETSIZE) {
    check(
      Number.isSafeInteger(capacity) && capacity >= 1,
      'OVL_ERR_INVALID_ARGUMENT',
      `an FdSet's capacity must be a whole number >= 1, got ${String(capacity)}`,
    );
    this.capacity = capacity;
  }

  get size(): number {
    return this.items.length;
  }

  /** FD_SET. Adding a socket already in the set does nothing; past `capacity` it throws OVL_ERR_TOO_MANY_SOCKETS. */
  add(handle: NonBlockingHandle): this {
    if (this.#members.has(handle)) return this;
    check(
      this.items.length < this.capacity,
      'OVL_ERR_TOO_MANY_SOCKETS',
      `an FdSet holds at most ${this.capacity} sockets (FD_SETSIZE): shard them across several select loops, e.g. one loop per ${this.capacity - 1} clients plus the listener`,
    );
    this.items.push(handle);
    this.#members.add(handle);
    return this;
  }

  /** FD_CLR. Returns false when the socket was not in the set. */
  delete(handle: NonBlockingHandle): boolean {
    if (!this.#members.delete(handle)) return false;
    this.items.splice(this.items.indexOf(handle), 1);
    return true;
  }

  /** FD_ISSET. */
  has(handle: NonBlockingHandle): boolean {
    return this.#members.has(handle);
  }

  /** FD_ZERO. */
  clear(): void {
    this.items.length = 0;
    this.#members.clear();
  }

  /** @internal Keeps the first `n` items, which select has compacted the ready ones into. */
  truncate(n: number): void {
    const items = this.items;
    items.length = n;
    this.#members.clear();
    for (let i = 0; i < n; i++) this.#members.add(items[i] as NonBlockingHandle);
  }

  [Symbol.iterator](): Iterator<NonBlockingHandle> {
    return this.items[Symbol.iterator]();
  }
}

export interface SelectSets {
  read?: FdSet;
  write?: FdSet;
  except?: FdSet;
}

const READ_READY = Readiness.READABLE | Readiness.ERROR;
const WRITE_READY = Readiness.WRITABLE | Readiness.ERROR;

/** One `select` call in progress. */
class Waiter {
  done = false;
  constructor(readonly wake: () => void) {}
}

/** Arms polls without waiting for them (a zero-timeout call). */
const ARM_ONLY = new Waiter(() => {});
ARM_ONLY.done = true;

/** A socket's polls, kept posted across select calls. */
class Tracker implements PollOwner {
  readonly #handle: NonBlockingHandle;
  readonly #read: Overlapped<PollOwner>;
  readonly #write: Overlapped<PollOwner>;
  /**
   * The except set's poll, a record of its own: were it the read poll, a
   * HANGUP-only poll left pending by an except-only select would keep a later
   * read set from posting its READABLE poll, and data would go unreported.
   */
  readonly #except: Overlapped<PollOwner>;
  /** After a FIN, a HANGUP poll would complete at once for ever: the except set stops asking. */
  #hungUp = false;
  /**
   * The select calls waiting on this socket: one in the common case (a socket
   * is in one loop's sets), more for a listener in several loops' read sets.
   */
  #waiter: Waiter | null = null;
  #moreWaiters: Waiter[] | null = null;

  constructor(handle: NonBlockingHandle) {
    this.#handle = handle;
    this.#read = pollRecord(this);
    this.#write = pollRecord(this);
    this.#except = pollRecord(this);
    watch(handle instanceof NonBlockingListener ? handle.listener : handle.socket);
  }

  /** Known readiness, arming the poll that would report `wanted` if it is not known yet. */
  readyFor(wanted: number, waiter: Waiter | null): number {
    const known = this.#handle.readiness.known;
    if ((known & wanted) !== 0 || this.#handle.closed) return known;
    if (waiter === null) return known;
    if (wanted === WRITE_READY) {
      if (!this.#write.pending) this.#post(this.#write, Readiness.WRITABLE);
    } else if (wanted === READ_READY) {
      if (!this.#read.pending) this.#post(this.#read, Readiness.READABLE);
    } else if (
      !(this.#handle instanceof NonBlockingListener) &&
      !this.#read.pending &&
      !this.#except.pending &&
      !this.#hungUp
    ) {
      // except only: a poll that a FIN or a failure ends, not plain data.
      // A listener has no except condition, and its poll completes for every
      // waiting connection: posting one here would spin (re-posted at once,
      // for as long as a connection waits), so a listener only in the except
      // set is never reported and its wait ends at the timeout.
      this.#post(this.#except, Readiness.HANGUP);
    }
    this.#listen(waiter);
    return known;
  }

  #post(ov: Overlapped<PollOwner>, events: number): void {
    const handle = this.#handle;
    if (handle instanceof NonBlockingListener) handle.listener.poll(ov);
    else handle.socket.poll(events, ov);
  }

  #listen(waiter: Waiter): void {
    const first = this.#waiter;
    if (first === null || first.done || first === waiter) {
      this.#waiter = waiter;
      return;
    }
    let more = this.#moreWaiters;
    if (more === null) {
      more = [];
      this.#moreWaiters = more;
    }
    for (let i = more.length - 1; i >= 0; i--) {
      if ((more[i] as Waiter).done) more.splice(i, 1);
    }
    if (!more.includes(waiter)) more.push(waiter);
  }

  onPoll(ready: number, error: Error | null): void {
    if (error !== null && !isAborted(error)) ready = Readiness.ERROR;
    if ((ready & Readiness.HANGUP) !== 0) this.#hungUp = true;
    this.#handle.readiness.known |= ready;
    const first = this.#waiter;
    this.#waiter = null;
    if (first !== null && !first.done) first.wake();
    const more = this.#moreWaiters;
    if (more === null || more.length === 0) return;
    this.#moreWaiters = null;
    for (const waiter of more) if (!waiter.done) waiter.wake();
  }
}

function trackerOf(handle: NonBlockingHandle): Tracker {
  const record = handle.readiness;
  if (record.tracker === null) record.tracker = new Tracker(handle);
  return record.tracker as Tracker;
}

/** Counts the ready sockets of `set` for `wanted`; with `trim`, leaves only those in the set. */
function scan(set: FdSet | undefined, wanted: number, waiter: Waiter | null, trim: boolean) {
  if (set === undefined) return 0;
  const items = set.items;
  let ready = 0;
  for (let i = 0; i < items.length; i++) {
    const handle = items[i] as NonBlockingHandle;
    const known = handle.closed ? 0 : trackerOf(handle).readyFor(wanted, waiter);
    if ((known & wanted) !== 0) {
      if (trim) items[ready] = handle;
      ready++;
    }
  }
  if (trim) set.truncate(ready);
  return ready;
}

function count(sets: SelectSets, waiter: Waiter | null, trim: boolean): number {
  return (
    scan(sets.read, READ_READY, waiter, trim) +
    scan(sets.write, WRITE_READY, waiter, trim) +
    scan(sets.except, Readiness.ERROR, waiter, trim)
  );
}

function anyClosed(set: FdSet | undefined): boolean {
  if (set === undefined) return false;
  const items = set.items;
  for (let i = 0; i < items.length; i++) if ((items[i] as NonBlockingHandle).closed) return true;
  return false;
}

function anyClosedIn(sets: SelectSets): boolean {
  return anyClosed(sets.read) || anyClosed(sets.write) || anyClosed(sets.except);
}

function checkOpen(set: FdSet | undefined): void {
  check(
    !anyClosed(set),
    'OVL_ERR_HANDLE_CLOSED',
    'select() was given a closed socket (WSAENOTSOCK): remove it from the sets when you close it',
  );
}

/**
 * `select`: resolves with the number of ready sockets once at least one of
 * the sets' sockets is ready, each set then holding only its ready sockets;
 * or with 0 and every set empty when `timeoutMs` passes first (the default
 * waits for ever). `timeoutMs` 0 polls: it returns at once with what is
 * known ready, and arms the polls that report the rest, so a socket that no
 * earlier call watched is seen from the next call on. A socket closed during
 * the wait is never reported, but ends the wait (which may then resolve 0
 * before its timeout, so the caller rebuilds its sets); a closed one in a
 * set at the call throws OVL_ERR_HANDLE_CLOSED (WSAENOTSOCK). At least one
 * set must hold a socket, as Winsock refuses three empty sets with WSAEINVAL
 * (sleep with `sleepEx` instead).
 */
export function select(sets: SelectSets, timeoutMs: number = INFINITE): Promise<number> {
  check(
    timeoutMs >= 0 && !Number.isNaN(timeoutMs),
    'OVL_ERR_INVALID_ARGUMENT',
    `select's timeout must be >= 0 ms (or INFINITE), got ${String(timeoutMs)}`,
  );
  check(
    (sets.read?.size ?? 0) + (sets.write?.size ?? 0) + (sets.except?.size ?? 0) > 0,
    'OVL_ERR_INVALID_ARGUMENT',
    'select() needs at least one socket in its read, write or except set (WSAEINVAL); use sleepEx() to sleep',
  );
  checkOpen(sets.read);
  checkOpen(sets.write);
  checkOpen(sets.except);
  // Polls are armed even for a zero timeout: readiness is learnt from their
  // completions, so a loop of zero-timeout calls sees it from the next turn on.
  if (timeoutMs === 0) return Promise.resolve(count(sets, ARM_ONLY, true));
  // One pass counts what is ready and arms the polls of what is not: those
  // polls are wanted whatever this call returns, as the next call needs them.
  let settle: ((n: number) => void) | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let scheduled = false;
  // A wake-up looks at the sets once the batch of completions that caused it
  // has been handed over, so that everything that became ready together is
  // reported together, as one select(2) call sees it.
  const evaluate = () => {
    scheduled = false;
    if (waiter.done) return;
    if (count(sets, waiter, false) === 0 && !anyClosedIn(sets)) return;
    waiter.done = true;
    clearTimeout(timer);
    settle?.(count(sets, null, true));
  };
  const waiter = new Waiter(() => {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(evaluate);
  });
  if (count(sets, waiter, false) > 0) {
    waiter.done = true;
    return Promise.resolve(count(sets, null, true));
  }
  return new Promise<number>((resolve) => {
    settle = resolve;
    if (timeoutMs !== INFINITE) {
      timer = setTimeout(() => {
        waiter.done = true;
        resolve(count(sets, null, true));
      }, timeoutMs);
    }
  });
}
