/**
 * The ring: one io_uring instance of this thread, its table of operation ids
 * (each id is an SQE's user_data, mapped to the owner that gets its CQE), and
 * batched delivery of completions to the engine's sink.
 *
 * Contracts:
 * - An id stays taken, and its owner (and so every buffer the owner holds
 *   for the operation) reachable from `#owners`, until the operation's final
 *   CQE (no IORING_CQE_F_MORE) is reaped: the native side holds a strong
 *   reference to `#onRecords`, so nothing the kernel writes into is
 *   collected early, whatever the caller drops.
 * - Completions are handed to the sink in completion order, in one batch per
 *   reap (completions made while a reap is handled ride in its batch), or,
 *   when made outside a reap, in one batch from a microtask: never inside
 *   the call that posted the operation (rule 1).
 * - SQEs prepared outside a reap are submitted once per turn from a
 *   microtask; during a reap the native side submits once, after the call.
 */
import type { CompletionSink, EngineRequest } from '../contract.js';
import { IORING_CQE_F_MORE, RECORD_INTS, RECORDS_AT, RECORDS_PER_CALL } from './constants.js';
import type { Ring, UringAddon } from './native.js';
import { openRing } from './probe.js';

/** Whatever holds operations (a stream, a listener): gets each of its CQEs. */
export interface Owner {
  onCqe(kind: number, id: number, res: number, flags: number): void;
}

/** Holds work to hand the kernel once the JavaScript of this turn is done (see flushSoon). */
export interface Flusher {
  flush(): void;
}

const RESOLVED = Promise.resolve();

/** One io_uring ring with its id table and completion delivery. One per engine (thread). */
export class UringRing {
  readonly addon: UringAddon;
  /** The addon's handle of this ring. */
  readonly handle: Ring;
  readonly #records: Int32Array;
  #sink: CompletionSink | null = null;

  // Operation ids: the CQE's user_data. Slots keep the owner (and so its buffers) alive.
  readonly #owners: (Owner | undefined)[] = [];
  readonly #kinds: number[] = [];
  readonly #freeIds: number[] = [];

  // Completions waiting for delivery, in completion order.
  #pending: EngineRequest[] = [];
  #spare: EngineRequest[] = [];
  #reaping = false;
  #deliveryScheduled = false;
  #flushers: Flusher[] = [];
  /** The other list, swapped in while one is flushed: no array per turn. */
  #flushing: Flusher[] = [];
  #flushScheduled = false;

  /** Opens the ring (the probe); throws with the reason io_uring cannot run here. */
  constructor(addon: UringAddon, entries: number, taskRunMode: number) {
    this.addon = addon;
    const records = new ArrayBuffer((RECORDS_AT + RECORDS_PER_CALL * RECORD_INTS) * 4);
    this.#records = new Int32Array(records);
    this.handle = openRing(addon, records, this.#onRecords, entries, taskRunMode);
  }

  setSink(sink: CompletionSink): void {
    this.#sink = sink;
  }

  /** An id for a new operation of `owner`. */
  id(owner: Owner, kind: number): number {
    const id = this.#freeIds.pop() ?? this.#owners.length;
    this.#owners[id] = owner;
    this.#kinds[id] = kind;
    return id;
  }

  /** Gives back an id whose SQE could not be prepared. */
  dropId(id: number): void {
    this.#owners[id] = undefined;
    this.#freeIds.push(id);
  }

  /** An SQE was prepared: submit it with the others of this turn. */
  submitSoon(): void {
    const ctl = this.#records;
    if (ctl[0] === 0) {
      ctl[0] = 1;
      RESOLVED.then(this.#submit);
    }
  }

  readonly #submit = (): void => {
    this.addon.submit(this.handle);
  };

  /**
   * Calls `flusher.flush()` once this turn's promise jobs have all run: a
   * nextTick queued from a promise job runs only after the microtask queue
   * drains, and a reap's callback (and so this) returns before the native
   * side submits. Work that handlers post in reaction to each other's
   * completions (an echo of several pieces) is then seen whole.
   */
  flushSoon(flusher: Flusher): void {
    this.#flushers.push(flusher);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    const flushers = this.#flushers;
    this.#flushers = this.#flushing;
    for (const flusher of flushers) flusher.flush();
    flushers.length = 0;
    this.#flushing = flushers;
  };

  /** Completes `req` (delivered with this reap's batch, or right after the current call). */
  complete(req: EngineRequest, bytes: number, error: Error | null): void {
    req.bytes = bytes;
    req.error = error;
    this.#pending.push(req);
    if (!this.#reaping && !this.#deliveryScheduled) {
      this.#deliveryScheduled = true;
      RESOLVED.then(this.#deliverSoon);
    }
  }

  readonly #deliverSoon = (): void => {
    this.#deliveryScheduled = false;
    this.#deliver();
  };

  #deliver(): void {
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = this.#spare;
    const sink = this.#sink;
    try {
      if (sink === null) throw new Error('uring engine: completions arrived before setSink()');
      sink(batch);
    } finally {
      batch.length = 0;
      this.#spare = batch;
    }
  }

  /** Called by the native side with `count` records: one batch for the sink. */
  readonly #onRecords = (count: number): void => {
    const records = this.#records;
    const owners = this.#owners;
    this.#reaping = true;
    try {
      for (let i = 0, at = RECORDS_AT; i < count; i++, at += RECORD_INTS) {
        const id = records[at] as number;
        const res = records[at + 1] as number;
        const flags = records[at + 2] as number;
        const owner = owners[id];
        const kind = this.#kinds[id] as number;
        if ((flags & IORING_CQE_F_MORE) === 0) {
          owners[id] = undefined;
          this.#freeIds.push(id);
        }
        owner?.onCqe(kind, id, res, flags);
      }
    } finally {
      this.#reaping = false;
    }
    this.#deliver();
  };
}
