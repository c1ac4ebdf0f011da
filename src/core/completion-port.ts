import { availableParallelism } from 'node:os';
import { livePorts } from './counters.js';
import { check, OverlappedError, UsageError } from './errors.js';
import type { Handle } from './handle.js';
import type { Overlapped } from './overlapped.js';

/**
 * One dequeued entry, as `GetQueuedCompletionStatus` returns it: the
 * completion key of the handle (or of the `post` call), the bytes
 * transferred, the Overlapped the operation was posted with (null for a
 * packet posted without one), and the operation's error (null on success).
 */
export class Completion<K = unknown, T = unknown> {
  constructor(
    readonly key: K,
    readonly bytes: number,
    readonly overlapped: Overlapped<T> | null,
    readonly error: Error | null,
  ) {}
}

export interface CompletionPortOptions {
  /**
   * How many workers may hold completions at once (IOCP's
   * NumberOfConcurrentThreads). Default: the number of CPUs.
   */
  concurrency?: number;
}

export interface DequeueOptions {
  /** How long to wait; 0 polls, undefined or Infinity waits for ever. */
  timeoutMs?: number;
}

export interface DequeueManyOptions extends DequeueOptions {
  /** Most entries to remove in one call (GetQueuedCompletionStatusEx's ulCount). */
  max: number;
}

/** A parked dequeue call. `many` 0 means a single dequeue. */
interface Waiter {
  readonly many: number;
  readonly worker: PortWorker<unknown, unknown> | null;
  readonly resolve: (value: never) => void;
  readonly reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

function validateTimeout(timeoutMs: number | undefined): void {
  check(
    timeoutMs === undefined || (typeof timeoutMs === 'number' && timeoutMs >= 0),
    'OVL_ERR_INVALID_ARGUMENT',
    `timeoutMs must be a number >= 0 (0 polls, Infinity waits for ever), got ${String(timeoutMs)}`,
  );
}

/**
 * An I/O completion port: a queue of completions that worker loops drain.
 *
 * - `associate(handle, key)` routes every completion of that handle here,
 *   tagged with `key` (the per-handle data).
 * - `post(key, bytes, ov)` queues a packet of your own
 *   (PostQueuedCompletionStatus), e.g. to stop workers or hand over work.
 * - `dequeue()` / `dequeueMany()` / `for await (const c of port)` remove
 *   entries in FIFO order. Waiting callers are served last-in-first-out, as
 *   IOCP wakes the most recent waiter (its state is the warmest).
 * - `concurrency` caps how many *workers* (see {@link PortWorker}; each
 *   `for await` loop is one) hold a completion at once: a worker holds its
 *   completion or batch until it asks for the next one or calls `release()`.
 *   A batch from `dequeueMany` counts once, as in GetQueuedCompletionStatusEx.
 *   Calls made on the port itself name no worker, so the cap cannot apply to
 *   them: use workers for loops that the cap should govern.
 * - `close()` rejects every waiting call with `OVL_ERR_PORT_CLOSED` (a
 *   `for await` loop simply ends) and drops queued entries; completions of
 *   associated handles that arrive later are dropped too. Idempotent.
 */
export class CompletionPort<K = unknown, T = unknown> implements AsyncIterable<Completion<K, T>> {
  readonly concurrency: number;
  #queue: Completion<K, T>[] = [];
  #head = 0;
  readonly #waiters: Waiter[] = [];
  #active = 0;
  #closed = false;
  /** @internal Set while the port has entries queued by the current delivery batch. */
  dirty = false;

  constructor(options: CompletionPortOptions = {}) {
    const concurrency = options.concurrency ?? availableParallelism();
    check(
      Number.isInteger(concurrency) && concurrency >= 1,
      'OVL_ERR_INVALID_ARGUMENT',
      `concurrency must be a whole number >= 1, got ${String(concurrency)}`,
    );
    this.concurrency = concurrency;
    livePorts.add(new WeakRef(this));
  }

  /** Entries queued and not yet dequeued. */
  get size(): number {
    return this.#queue.length - this.#head;
  }

  /** Dequeue calls currently waiting. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Workers that hold a completion and have not asked for the next one. */
  get active(): number {
    return this.#active;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Routes every completion of `handle` to this port with `key` as its
   * completion key. A handle has one port for life (`OVL_ERR_ALREADY_ASSOCIATED`).
   */
  associate(handle: Handle, key: K): void {
    check(!this.#closed, 'OVL_ERR_PORT_CLOSED');
    handle.attachPort(this as CompletionPort<unknown, unknown>, key);
  }

  /**
   * Queues a packet of your own: it is dequeued like an I/O completion, with
   * exactly these values. The Overlapped is carried, not posted: it is not
   * marked pending.
   */
  post(key: K, bytes = 0, overlapped: Overlapped<T> | null = null): void {
    check(!this.#closed, 'OVL_ERR_PORT_CLOSED');
    check(
      Number.isInteger(bytes) && bytes >= 0,
      'OVL_ERR_INVALID_ARGUMENT',
      `bytes must be a whole number >= 0, got ${String(bytes)}`,
    );
    this.#queue.push(new Completion(key, bytes, overlapped, null));
    this.dispatch();
  }

  /** Removes one entry; resolves to null when `timeoutMs` passes first. */
  dequeue(options: DequeueOptions = {}): Promise<Completion<K, T> | null> {
    return this.wait(null, 0, options.timeoutMs);
  }

  /** Removes up to `max` entries at once; resolves to [] when `timeoutMs` passes first. */
  dequeueMany(options: DequeueManyOptions): Promise<Completion<K, T>[]> {
    return this.wait(null, options.max, options.timeoutMs, true);
  }

  /** A worker: a loop whose completions count toward `concurrency`. */
  worker(): PortWorker<K, T> {
    return new PortWorker(this);
  }

  /** Each `for await` loop over the port is one worker; closing the port ends the loop. */
  [Symbol.asyncIterator](): AsyncIterator<Completion<K, T>> {
    return this.worker()[Symbol.asyncIterator]();
  }

  /** Wakes every waiting call with `OVL_ERR_PORT_CLOSED` and drops queued entries. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#head = 0;
    for (const waiter of this.#waiters.splice(0)) {
      if (waiter.timer !== undefined) clearTimeout(waiter.timer);
      waiter.reject(new UsageError('OVL_ERR_PORT_CLOSED'));
    }
  }

  /** @internal Queues an I/O completion; the caller runs dispatch() after its batch. */
  enqueue(completion: Completion<K, T>): void {
    if (!this.#closed) this.#queue.push(completion);
  }

  /** @internal Hands queued entries to waiters while the cap allows. */
  dispatch(): void {
    this.dirty = false;
    const waiters = this.#waiters;
    while (this.#queue.length > this.#head && waiters.length > 0) {
      let i = waiters.length - 1;
      if (this.#active >= this.concurrency) {
        // Only calls that name no worker may proceed past the cap.
        while (i >= 0 && (waiters[i] as Waiter).worker !== null) i--;
        if (i < 0) return;
      }
      const waiter = (i === waiters.length - 1 ? waiters.pop() : waiters.splice(i, 1)[0]) as Waiter;
      if (waiter.timer !== undefined) clearTimeout(waiter.timer);
      this.#hand(waiter.worker, waiter.many, waiter.resolve);
    }
  }

  /** @internal The one implementation behind every dequeue form. */
  wait(
    worker: PortWorker<unknown, unknown> | null,
    many: number,
    timeoutMs: number | undefined,
    batch = false,
  ): Promise<never> {
    if (batch) {
      check(
        Number.isInteger(many) && many >= 1,
        'OVL_ERR_INVALID_ARGUMENT',
        `max must be a whole number >= 1, got ${String(many)}`,
      );
    }
    validateTimeout(timeoutMs);
    if (worker?.holding) {
      worker.holding = false;
      this.#active--;
    }
    if (this.#closed) return Promise.reject(new UsageError('OVL_ERR_PORT_CLOSED'));
    // A caller that finds work takes it at once, ahead of parked waiters, as
    // IOCP lets a thread that calls GetQueuedCompletionStatus keep running.
    if (this.size > 0 && (worker === null || this.#active < this.concurrency)) {
      return new Promise((resolve) => this.#hand(worker, many, resolve));
    }
    if (timeoutMs === 0) return Promise.resolve((many === 0 ? null : []) as never);
    return new Promise<never>((resolve, reject) => {
      const waiter: Waiter = { many, worker, resolve, reject, timer: undefined };
      if (timeoutMs !== undefined && timeoutMs !== Number.POSITIVE_INFINITY) {
        waiter.timer = setTimeout(() => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          resolve((many === 0 ? null : []) as never);
        }, timeoutMs);
      }
      this.#waiters.push(waiter);
    });
  }

  #hand(
    worker: PortWorker<unknown, unknown> | null,
    many: number,
    resolve: (value: never) => void,
  ): void {
    if (worker !== null) {
      worker.holding = true;
      this.#active++;
    }
    const queue = this.#queue;
    let value: Completion<K, T> | Completion<K, T>[];
    if (many === 0) {
      value = queue[this.#head++] as Completion<K, T>;
    } else {
      const end = Math.min(queue.length, this.#head + many);
      value = queue.slice(this.#head, end);
      this.#head = end;
    }
    if (this.#head === queue.length) {
      queue.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= queue.length) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
    resolve(value as never);
  }

  /** @internal The worker leaves without dequeuing again (IOCP: the thread blocked elsewhere). */
  releaseWorker(worker: PortWorker<unknown, unknown>): void {
    if (!worker.holding) return;
    worker.holding = false;
    this.#active--;
    this.dispatch();
  }
}

/**
 * One worker loop of a port: the unit `concurrency` counts. A worker holds
 * the completion (or batch) it dequeued until it asks for the next one, or
 * calls `release()` before it waits on something else for a long time.
 */
export class PortWorker<K = unknown, T = unknown> implements AsyncIterable<Completion<K, T>> {
  readonly port: CompletionPort<K, T>;
  /** @internal */
  holding = false;

  constructor(port: CompletionPort<K, T>) {
    this.port = port;
  }

  /** As `port.dequeue()`, counted for this worker. */
  dequeue(options: DequeueOptions = {}): Promise<Completion<K, T> | null> {
    return this.port.wait(this as PortWorker<unknown, unknown>, 0, options.timeoutMs);
  }

  /** As `port.dequeueMany()`, counted for this worker (a batch counts once). */
  dequeueMany(options: DequeueManyOptions): Promise<Completion<K, T>[]> {
    return this.port.wait(
      this as PortWorker<unknown, unknown>,
      options.max,
      options.timeoutMs,
      true,
    );
  }

  /** Gives back this worker's place under the concurrency cap without dequeuing. */
  release(): void {
    this.port.releaseWorker(this as PortWorker<unknown, unknown>);
  }

  [Symbol.asyncIterator](): AsyncIterator<Completion<K, T>> {
    return {
      next: async () => {
        try {
          const value = (await this.dequeue()) as Completion<K, T>;
          return { value, done: false };
        } catch (err) {
          if (err instanceof OverlappedError && err.code === 'OVL_ERR_PORT_CLOSED') {
            return { value: undefined, done: true };
          }
          throw err;
        }
      },
      return: async () => {
        this.release();
        return { value: undefined, done: true };
      },
    };
  }
}
