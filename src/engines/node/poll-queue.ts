/**
 * The node engine's pending polls of one handle (a stream or a listener),
 * each with the events it waits for. Node reports no kernel readiness, so
 * the handle derives the bits that hold from its own state and calls
 * {@link PollQueue.wake} whenever that state may have changed (see
 * "Readiness" in ./node-engine.ts).
 */
import { abortedError } from '../../core/errors.js';
import { type EngineRequest, Readiness } from '../contract.js';
import type { Turn } from './turn.js';

/**
 * Polls waiting on one handle, oldest first. Made on a handle's first poll
 * that has to wait: the IOCP models never poll, so their handles hold none.
 */
export class PollQueue {
  readonly #reqs: EngineRequest[] = [];
  readonly #events: number[] = [];

  get empty(): boolean {
    return this.#reqs.length === 0;
  }

  push(req: EngineRequest, events: number): void {
    this.#reqs.push(req);
    this.#events.push(events);
  }

  /** Removes `req`; false if it is not waiting here. */
  remove(req: EngineRequest): boolean {
    const i = this.#reqs.indexOf(req);
    if (i < 0) return false;
    this.#reqs.splice(i, 1);
    this.#events.splice(i, 1);
    return true;
  }

  /**
   * Completes, oldest first, every poll one of whose events holds in
   * `holding` (ERROR counts for every poll), with the bits of its events
   * that hold plus ERROR. The others keep waiting, in order.
   */
  wake(turn: Turn, holding: number): void {
    const reqs = this.#reqs;
    const events = this.#events;
    let kept = 0;
    for (let i = 0; i < reqs.length; i++) {
      const req = reqs[i] as EngineRequest;
      const wanted = events[i] as number;
      const bits = holding & (wanted | Readiness.ERROR);
      if (bits !== 0) {
        req.bytes = bits;
        req.error = null;
        turn.push(req);
      } else {
        reqs[kept] = req;
        events[kept] = wanted;
        kept++;
      }
    }
    reqs.length = kept;
    events.length = kept;
  }

  /** Completes every waiting poll with OVL_ERR_ABORTED; true if there was any. */
  abort(turn: Turn): boolean {
    const reqs = this.#reqs;
    if (reqs.length === 0) return false;
    for (const req of reqs) {
      req.bytes = 0;
      req.error = abortedError();
      turn.push(req);
    }
    reqs.length = 0;
    this.#events.length = 0;
    return true;
  }
}
