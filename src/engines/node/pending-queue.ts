import type { EngineRequest } from '../contract.js';

/**
 * The FIFO of one stream's pending requests of one kind (recvs with their
 * buffers, sends with their sizes), each with a value.
 *
 * A server keeps one recv or one send pending per connection almost always,
 * so the oldest entry lives in two fields and only further entries go to an
 * array made on first need: per connection that is one small object rather
 * than two arrays, and no array traffic per message.
 */
export class PendingQueue<V> {
  #req: EngineRequest | null = null;
  #value: V | undefined;
  /** Entries after the oldest, as [req, value, req, value, …]. */
  #rest: (EngineRequest | V)[] | null = null;
  #restHead = 0;

  get empty(): boolean {
    return this.#req === null;
  }

  /** The oldest entry's value; only valid when not empty. */
  get headValue(): V {
    return this.#value as V;
  }

  push(req: EngineRequest, value: V): void {
    if (this.#req === null) {
      this.#req = req;
      this.#value = value;
    } else {
      this.#rest ??= [];
      this.#rest.push(req, value);
    }
  }

  /** Removes and returns the oldest request (read `headValue` first if needed). */
  shift(): EngineRequest | null {
    const req = this.#req;
    const rest = this.#rest;
    if (rest === null || this.#restHead === rest.length) {
      this.#req = null;
      this.#value = undefined;
    } else {
      this.#req = rest[this.#restHead] as EngineRequest;
      this.#value = rest[this.#restHead + 1] as V;
      this.#restHead += 2;
      if (this.#restHead === rest.length) {
        rest.length = 0;
        this.#restHead = 0;
      }
    }
    return req;
  }

  includes(req: EngineRequest): boolean {
    return this.#indexOf(req) >= 0;
  }

  /** Removes `req` wherever it stands; false if it is not here. */
  remove(req: EngineRequest): boolean {
    const i = this.#indexOf(req);
    if (i < 0) return false;
    if (i === 0) {
      this.shift();
    } else {
      (this.#rest as (EngineRequest | V)[]).splice(this.#restHead + (i - 1) * 2, 2);
    }
    return true;
  }

  /** Removes every entry, oldest first, into `into` (requests) and `values`. */
  drain(into: EngineRequest[], values?: V[]): void {
    while (this.#req !== null) {
      values?.push(this.#value as V);
      into.push(this.shift() as EngineRequest);
    }
  }

  #indexOf(req: EngineRequest): number {
    if (this.#req === null) return -1;
    if (this.#req === req) return 0;
    const rest = this.#rest;
    if (rest === null) return -1;
    for (let i = this.#restHead; i < rest.length; i += 2) {
      if (rest[i] === req) return 1 + (i - this.#restHead) / 2;
    }
    return -1;
  }
}
