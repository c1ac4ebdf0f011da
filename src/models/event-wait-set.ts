/**
 * The event-notification model's building block: the event array one wait
 * loop blocks on.
 *
 * `WSAWaitForMultipleEvents` covers at most 64 events, so a server that
 * learns of completions through events runs one loop per 63 sockets, and
 * each loop's array keeps slot 0 for its own "changed" event: whoever adds a
 * socket (the acceptor) signals it, so the blocked loop wakes and takes the
 * new socket into its array. This is the I/O thread of the classic
 * event-model server, and {@link EventWaitSet} is one such array.
 */
import { ManualResetEvent, type WaitableEvent } from '../core/events.js';
import { MAXIMUM_WAIT_EVENTS, waitAnyUnchecked } from '../core/waits.js';

/**
 * Up to {@link EventWaitSet.CAPACITY} items, each with the event its
 * overlapped operations signal, and the set's own wake-up event in slot 0.
 * One loop calls {@link EventWaitSet.next} at a time.
 */
export class EventWaitSet<T> {
  /** Items one set holds: every event of a wait but slot 0. */
  static readonly CAPACITY = MAXIMUM_WAIT_EVENTS - 1;

  /** Slot 0 is manual-reset: `take()` resets it when it takes the incoming items. */
  readonly #events: WaitableEvent[] = [new ManualResetEvent()];
  readonly #items: (T | null)[] = [null];
  /** Added since the loop last woke: taken into the arrays at slot 0's signal. */
  readonly #incoming: { event: WaitableEvent; item: T }[] = [];
  #closed = false;
  /** Where `take()` starts its next scan (0-based over slots 1..n). */
  #cursor = 0;

  /** Items held, including those added and not yet taken in. */
  get size(): number {
    return this.#items.length - 1 + this.#incoming.length;
  }

  /** True when the set cannot take another item: open another set. */
  get full(): boolean {
    return this.size >= EventWaitSet.CAPACITY;
  }

  /**
   * Adds `item`, whose operations signal `event` (a manual-reset event the
   * loop resets). Callable from anywhere; the loop takes it in when it next
   * wakes. Post the item's first operation before or after: an event already
   * signalled is seen at once.
   */
  add(event: WaitableEvent, item: T): void {
    if (this.full) throw new RangeError(`an EventWaitSet holds at most ${EventWaitSet.CAPACITY}`);
    this.#incoming.push({ event, item });
    (this.#events[0] as WaitableEvent).set();
  }

  /**
   * Removes `item` and its event, compacting the arrays (the last entry takes
   * its slot). Returns false if it was not here.
   */
  remove(item: T): boolean {
    const i = this.#items.indexOf(item, 1);
    if (i < 0) {
      const j = this.#incoming.findIndex((entry) => entry.item === item);
      if (j < 0) return false;
      this.#incoming.splice(j, 1);
      return true;
    }
    const last = this.#items.length - 1;
    this.#items[i] = this.#items[last] as T;
    this.#events[i] = this.#events[last] as WaitableEvent;
    this.#items.length = last;
    this.#events.length = last;
    return true;
  }

  /**
   * Takes a signalled item without waiting (a wait with timeout 0): resets
   * its event and returns it; undefined when none is signalled. Scans round
   * robin from the slot after the last one taken, so that under load every
   * slot is served in turn (a plain wait returns the lowest signalled slot,
   * which favours low slots). A loop drains the set with this before it
   * blocks in `next()`.
   */
  take(): T | undefined {
    const events = this.#events;
    if ((events[0] as WaitableEvent).signaled) {
      (events[0] as WaitableEvent).reset();
      this.#takeIncoming();
    }
    // Round robin from the slot after the last one taken: always starting at slot 1 would
    // serve low slots first on every pass and starve the high ones under load.
    const n = events.length - 1;
    for (let k = 0; k < n; k++) {
      const i = ((this.#cursor + k) % n) + 1;
      const event = events[i] as WaitableEvent;
      if (event.signaled) {
        event.reset();
        this.#cursor = i % n;
        return this.#items[i] as T;
      }
    }
    return undefined;
  }

  /**
   * Resolves once any event of the set is signalled (an item's, or slot 0:
   * an item was added or the set closed), taking nothing: call `take()`
   * next. The loop `for (;;) { const item = set.take(); if (item === undefined)
   * { if (set.closed) break; await set.wait(); continue; } … }` wakes in one
   * step, so the work it posts joins the same turn's writes.
   */
  wait(): Promise<unknown> {
    return waitAnyUnchecked(this.#events);
  }

  /**
   * The next signalled item, waiting if none is (`take()`, else `wait()`,
   * in a loop). Resolves null once the set is closed.
   */
  async next(): Promise<T | null> {
    for (;;) {
      const item = this.take();
      if (item !== undefined) return item;
      if (this.#closed) return null;
      await this.wait();
    }
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Makes the loop's `next()` resolve null. Items still held are the caller's to close. */
  close(): void {
    this.#closed = true;
    (this.#events[0] as WaitableEvent).set();
  }

  #takeIncoming(): void {
    for (const { event, item } of this.#incoming) {
      this.#events.push(event);
      this.#items.push(item);
    }
    this.#incoming.length = 0;
  }
}
