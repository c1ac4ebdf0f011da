/**
 * Readiness on io_uring (select, WSAAsyncSelect, WSAEventSelect): each poll
 * is a single-shot IORING_OP_POLL_ADD for POLLIN/POLLOUT (and POLLRDHUP when
 * HANGUP is asked), whose CQE's revents map to Readiness bits. A stream or a
 * listener keeps its pending polls in one PollList, made on first use.
 */
import { abortedError, osErrorFromErrno } from '../../core/errors.js';
import { type EngineRequest, Readiness } from '../contract.js';
import { ECANCELED, KIND_POLL, POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP } from './constants.js';
import type { Owner, UringRing } from './ring.js';

/** The poll(2) events of a POLL_ADD asking for `events` (Readiness bits). */
function pollEvents(events: number): number {
  let mask = 0;
  if ((events & Readiness.READABLE) !== 0) mask |= POLLIN;
  if ((events & Readiness.WRITABLE) !== 0) mask |= POLLOUT;
  if ((events & Readiness.HANGUP) !== 0) mask |= POLLRDHUP;
  return mask;
}

/**
 * The Readiness bits a POLL_ADD's revents report for a poll that asked for
 * `events`: POLLERR or POLLHUP is ERROR, and READABLE too when asked (a recv
 * then returns at once, with the error or end of stream).
 */
function readinessOf(revents: number, events: number): number {
  let bits = 0;
  if ((revents & POLLIN) !== 0) bits |= Readiness.READABLE;
  if ((revents & POLLOUT) !== 0) bits |= Readiness.WRITABLE;
  if ((revents & POLLRDHUP) !== 0) bits |= Readiness.HANGUP;
  if ((revents & (POLLERR | POLLHUP)) !== 0) bits |= Readiness.ERROR | Readiness.READABLE;
  return bits & (events | Readiness.ERROR);
}

/** A poll posted and not completed. */
interface PollWaiting {
  req: EngineRequest;
  events: number;
  /** Its POLL_ADD's id, or -1 while it waits for a descriptor (a connect resolving its host). */
  id: number;
  /** Cancelled (cancel, close): completes aborted, whatever the kernel answers. */
  aborted: boolean;
  /**
   * Bits found to hold without the kernel (bytes the engine took in for no
   * recv): its POLL_ADD is being cancelled, and it completes with these.
   */
  found: number;
}

/**
 * The polls pending on one stream or listener, each a single-shot
 * IORING_OP_POLL_ADD (several may be pending at once). Made on first use.
 */
export class PollList {
  readonly #ring: UringRing;
  readonly entries: PollWaiting[] = [];

  constructor(ring: UringRing) {
    this.#ring = ring;
  }

  /** Posts a poll on `fd` (or, with fd -1, keeps it until {@link armWaiting}). */
  add(owner: Owner, req: EngineRequest, events: number, fd: number): void {
    const entry: PollWaiting = { req, events, id: -1, aborted: false, found: 0 };
    this.entries.push(entry);
    if (fd >= 0) this.#arm(owner, entry, fd);
  }

  #arm(owner: Owner, entry: PollWaiting, fd: number): void {
    const ring = this.#ring;
    const id = ring.id(owner, KIND_POLL);
    const rc = ring.addon.poll(ring.handle, id, fd, pollEvents(entry.events));
    if (rc < 0) {
      ring.dropId(id);
      this.#remove(entry);
      ring.complete(entry.req, 0, osErrorFromErrno(rc, 'poll'));
      return;
    }
    entry.id = id;
    ring.submitSoon();
  }

  /** The descriptor exists now (the connect's socket): polls that waited for it go to the kernel. */
  armWaiting(owner: Owner, fd: number): void {
    for (const entry of this.entries.slice()) if (entry.id === -1) this.#arm(owner, entry, fd);
  }

  /** Completes the polls that wait for a descriptor (there will be none) with `bitsFor` their events. */
  completeWaiting(bitsFor: (events: number) => number): void {
    for (const entry of this.entries.slice()) {
      if (entry.id !== -1) continue;
      this.#remove(entry);
      this.#ring.complete(entry.req, bitsFor(entry.events), null);
    }
  }

  /** Some readiness now holds that the kernel may not see (bytes taken in for no recv). */
  resolve(bitsFor: (events: number) => number): void {
    const ring = this.#ring;
    for (const entry of this.entries.slice()) {
      if (entry.aborted || entry.found !== 0) continue;
      const bits = bitsFor(entry.events);
      if (bits === 0) continue;
      if (entry.id === -1) {
        this.#remove(entry);
        ring.complete(entry.req, bits, null);
      } else {
        entry.found = bits;
        ring.addon.cancel(ring.handle, entry.id);
        ring.submitSoon();
      }
    }
  }

  /** The CQE of poll `id`. */
  onCqe(id: number, res: number): void {
    const entry = this.entries.find((e) => e.id === id);
    if (entry === undefined) return;
    this.#remove(entry);
    const ring = this.#ring;
    if (entry.aborted) {
      ring.complete(entry.req, 0, abortedError());
    } else if (entry.found !== 0) {
      ring.complete(entry.req, entry.found | (res > 0 ? readinessOf(res, entry.events) : 0), null);
    } else if (res === ECANCELED) {
      ring.complete(entry.req, 0, abortedError());
    } else if (res < 0) {
      ring.complete(entry.req, 0, osErrorFromErrno(res, 'poll'));
    } else {
      ring.complete(entry.req, readinessOf(res, entry.events), null);
    }
  }

  /** Cancels the poll of `req`; false when it is not pending here or already cancelled. */
  cancel(req: EngineRequest): boolean {
    const entry = this.entries.find((e) => e.req === req);
    if (entry === undefined || entry.aborted) return false;
    this.#abort(entry, true);
    return true;
  }

  /**
   * Cancels every poll; `byId` false when the caller cancels everything of
   * the descriptor itself (IORING_ASYNC_CANCEL_FD).
   */
  cancelAll(byId: boolean): void {
    for (const entry of this.entries.slice()) if (!entry.aborted) this.#abort(entry, byId);
  }

  #abort(entry: PollWaiting, byId: boolean): void {
    const ring = this.#ring;
    if (entry.id === -1) {
      this.#remove(entry);
      ring.complete(entry.req, 0, abortedError());
      return;
    }
    entry.aborted = true;
    if (byId && entry.found === 0) {
      ring.addon.cancel(ring.handle, entry.id);
      ring.submitSoon();
    }
  }

  /** A poll is in the kernel: the descriptor must not be closed yet. */
  get inKernel(): boolean {
    return this.entries.some((e) => e.id !== -1);
  }

  #remove(entry: PollWaiting): void {
    const i = this.entries.indexOf(entry);
    if (i >= 0) this.entries.splice(i, 1);
  }
}
