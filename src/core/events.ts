/**
 * Event objects (`WSAEVENT`, `CreateEvent`): a signalled/non-signalled flag
 * that waits block on. Wait on them with `waitForSingleObject` and
 * `waitForMultipleEvents` (`waits.ts`); an {@link Overlapped} may carry one,
 * which is set when its operation completes.
 *
 * - {@link ManualResetEvent} stays signalled until `reset()`: one `set()`
 *   releases every wait blocked on it, and every later wait, until reset.
 *   `WSACreateEvent` makes this kind.
 * - {@link AutoResetEvent} releases exactly one wait per `set()` and resets
 *   itself as it does; with no wait blocked it stays signalled until one comes.
 */

/** @internal A wait blocked on events; `events.ts` only pokes it, `waits.ts` implements it. */
export interface EventWaiter {
  /** True once the wait has returned; such waiters are dropped from event lists lazily. */
  readonly done: boolean;
  /** Re-checks the wait's condition and, if it is met, consumes the events and returns. */
  tryComplete(): void;
}

export abstract class WaitableEvent {
  #signaled: boolean;
  /** @internal Waits blocked on this event, oldest first; finished ones are dropped lazily. */
  readonly waiters: EventWaiter[] = [];

  constructor(initialState = false) {
    this.#signaled = initialState;
  }

  /** True while the event is signalled. */
  get signaled(): boolean {
    return this.#signaled;
  }

  /**
   * Signals the event (`WSASetEvent`) and releases the waits it satisfies,
   * oldest first: every one for a manual-reset event, one for an auto-reset
   * event. Waits return asynchronously, never inside this call.
   */
  set(): void {
    if (this.#signaled) return;
    this.#signaled = true;
    const waiters = this.waiters;
    if (waiters.length === 0) return;
    for (let i = 0; i < waiters.length && this.#signaled; i++) {
      const waiter = waiters[i] as EventWaiter;
      if (!waiter.done) waiter.tryComplete();
    }
    this.#dropFinished();
  }

  /** Returns the event to non-signalled (`WSAResetEvent`). */
  reset(): void {
    this.#signaled = false;
  }

  /** @internal A wait this event satisfied takes it: an auto-reset event resets. */
  abstract consume(): void;

  /** @internal Registers a blocked wait. */
  addWaiter(waiter: EventWaiter): void {
    // The previous wait of the same loop has usually finished: clear it out first,
    // so an event that is rarely set does not collect finished waits.
    const last = this.waiters[this.waiters.length - 1];
    if (last?.done) this.#dropFinished();
    this.waiters.push(waiter);
  }

  #dropFinished(): void {
    const waiters = this.waiters;
    let kept = 0;
    for (let i = 0; i < waiters.length; i++) {
      const waiter = waiters[i] as EventWaiter;
      if (!waiter.done) waiters[kept++] = waiter;
    }
    waiters.length = kept;
  }
}

/** Stays signalled until `reset()` (`WSACreateEvent`, `CreateEvent(…, TRUE, …)`). */
export class ManualResetEvent extends WaitableEvent {
  override consume(): void {}
}

/** Releases one wait per `set()` and resets itself (`CreateEvent(…, FALSE, …)`). */
export class AutoResetEvent extends WaitableEvent {
  override consume(): void {
    this.reset();
  }
}
