/**
 * A listening socket of the io_uring engine: one multishot accept, armed
 * while accepts are posted and paused when `backlog` accepted connections
 * wait for one (see the notes of uring-engine.ts), with back-off after
 * EMFILE and friends, readiness, and tryAccept.
 */

import { unlinkSync } from 'node:fs';
import { AcceptBackoff } from '../../core/accept-backoff.js';
import { abortedError, osErrorFromErrno } from '../../core/errors.js';
import {
  type Endpoint,
  type EngineListener,
  type EngineRequest,
  type EngineStream,
  Readiness,
} from '../contract.js';
import type { BufferPool } from './buffer-pool.js';
import { EAGAIN, ECANCELED, IORING_CQE_F_MORE, KIND_ACCEPT, KIND_POLL } from './constants.js';
import { PollList } from './poll-list.js';
import type { Owner, UringRing } from './ring.js';
import { pipeEndpoint, UringStream } from './stream.js';

/** A listening socket with a multishot accept. */
export class UringListener implements EngineListener, Owner {
  readonly #ring: UringRing;
  readonly #pool: BufferPool;
  readonly #fd: number;
  readonly #backlog: number;
  readonly #pipePath: string | null;
  readonly #accepts: EngineRequest[] = [];
  readonly #ready: UringStream[] = [];
  #acceptId = -1;
  /** The multishot accept is being cancelled because `#ready` is full. */
  #pausing = false;
  #closed = false;
  #fdClosed = false;
  #retry: NodeJS.Timeout | null = null;
  /** Delay before the next retry after a failed accept (EMFILE, …). */
  readonly #backoff = new AcceptBackoff();
  onAcceptError: ((error: Error, retryMs: number) => void) | null = null;
  #polls: PollList | null = null;
  /**
   * The listening socket was made blocking: this kernel's io_uring accept
   * fails at once on an O_NONBLOCK listener (-EAGAIN) instead of waiting.
   */
  #blockingFd = false;
  readonly endpoint: Endpoint;

  constructor(
    ring: UringRing,
    pool: BufferPool,
    fd: number,
    backlog: number,
    pipePath: string | null,
  ) {
    this.#ring = ring;
    this.#pool = pool;
    this.#fd = fd;
    this.#backlog = backlog;
    this.#pipePath = pipePath;
    const name = pipePath === null ? ring.addon.sockName(fd, false) : null;
    this.endpoint =
      name === null
        ? pipeEndpoint(pipePath ?? '')
        : { address: name[0], port: name[1], family: name[2] };
  }

  accept(req: EngineRequest): void {
    const ring = this.#ring;
    const ready = this.#ready.shift();
    if (ready !== undefined) {
      req.result = ready;
      ring.complete(req, 0, null);
    } else if (this.#closed) {
      ring.complete(req, 0, abortedError());
    } else {
      this.#accepts.push(req);
      this.#arm();
    }
  }

  poll(req: EngineRequest, events: number): void {
    const ring = this.#ring;
    if (this.#closed) {
      ring.complete(req, 0, abortedError());
    } else if ((events & Readiness.READABLE) !== 0 && this.#readyForTry()) {
      ring.complete(req, Readiness.READABLE, null);
    } else {
      this.#polls ??= new PollList(ring);
      this.#polls.add(this, req, events, this.#fd);
    }
  }

  /** Connections the multishot accept took are waiting, and no posted accept wants them. */
  #readyForTry(): boolean {
    return this.#ready.length > 0 && this.#accepts.length === 0;
  }

  tryAccept(): EngineStream | null {
    if (this.#closed) return null;
    if (this.#accepts.length > 0) return null; // posted accepts are served first
    const ready = this.#ready.shift();
    if (ready !== undefined) return ready;
    const ring = this.#ring;
    // A blocking listener: accept4 only when poll(2) says one waits, and not while the
    // multishot accept is armed (it would take a connection between the two calls).
    if (this.#blockingFd && this.#acceptId !== -1) return null;
    const fd = ring.addon.tryAccept(ring.handle, this.#fd, this.#blockingFd);
    if (fd >= 0) return new UringStream(ring, this.#pool, fd, null, this.#pipePath);
    if (fd === EAGAIN) return null;
    throw osErrorFromErrno(fd, 'accept');
  }

  /** Posts the multishot accept unless it is armed already. */
  #arm(): void {
    if (this.#acceptId !== -1 || this.#closed || this.#retry !== null) return;
    const ring = this.#ring;
    const id = ring.id(this, KIND_ACCEPT);
    const rc = ring.addon.accept(ring.handle, id, this.#fd);
    if (rc < 0) {
      ring.dropId(id);
      const error = osErrorFromErrno(rc, 'accept');
      for (const req of this.#accepts.splice(0)) ring.complete(req, 0, error);
      return;
    }
    this.#acceptId = id;
    ring.submitSoon();
  }

  onCqe(kind: number, id: number, res: number, flags: number): void {
    if (kind === KIND_POLL) {
      this.#polls?.onCqe(id, res);
      if (this.#closed) this.#maybeCloseFd();
      return;
    }
    const ring = this.#ring;
    const more = (flags & IORING_CQE_F_MORE) !== 0;
    if (!more) this.#acceptId = -1;
    // Kernels before "io_uring: allow async accept on O_NONBLOCK sockets" (5.18; 5.19+ is
    // required, but distributions backport selectively) fail the accept instead of waiting:
    // the listening socket becomes blocking, and tryAccept polls before accept4.
    const unblocked = res === EAGAIN && !this.#blockingFd;
    if (unblocked) {
      this.#blockingFd = true;
      ring.addon.fdSetBlocking(this.#fd, true);
    }
    if (res >= 0) {
      this.#backoff.succeeded();
      const stream = new UringStream(ring, this.#pool, res, null, this.#pipePath);
      const req = this.#accepts.shift();
      if (req !== undefined) {
        req.result = stream;
        ring.complete(req, 0, null);
      } else if (this.#closed) {
        stream.close(true);
      } else {
        this.#ready.push(stream);
        // A poll in the kernel might not see it: the connection left the listen queue.
        this.#polls?.resolve((events) => events & Readiness.READABLE);
        // Enough connections wait for an accept: stop taking more from the kernel (the
        // multishot accept is cancelled; a CQE or two may still land), so that further
        // clients wait in the kernel's listen backlog, as with a plain listening socket,
        // instead of being accepted and reset.
        if (this.#ready.length >= this.#backlog && more && !this.#pausing) {
          this.#pausing = true;
          ring.addon.cancel(ring.handle, this.#acceptId);
          ring.submitSoon();
        }
      }
    }
    if (!more) this.#pausing = false;
    if (this.#closed) {
      this.#maybeCloseFd();
    } else if (!more) {
      if (res < 0 && res !== ECANCELED && !unblocked) {
        // EMFILE and friends: back off (50 ms, doubling to 1 s) rather than spin; the
        // connections wait in the kernel's backlog meanwhile, and posted accepts stay pending.
        const delay = this.#backoff.failed();
        this.#retry = setTimeout(() => {
          this.#retry = null;
          if (this.#accepts.length > 0) this.#arm();
        }, delay);
        this.onAcceptError?.(osErrorFromErrno(res, 'accept'), delay);
      } else if (this.#accepts.length > 0) {
        this.#arm();
      }
    }
  }

  cancel(req: EngineRequest | null): boolean {
    const ring = this.#ring;
    if (req === null) {
      const any = this.#accepts.length > 0 || (this.#polls?.entries.length ?? 0) > 0;
      for (const r of this.#accepts.splice(0)) ring.complete(r, 0, abortedError());
      this.#polls?.cancelAll(true);
      return any;
    }
    const i = this.#accepts.indexOf(req);
    if (i < 0) return this.#polls?.cancel(req) ?? false;
    this.#accepts.splice(i, 1);
    ring.complete(req, 0, abortedError());
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.cancel(null);
    for (const stream of this.#ready.splice(0)) stream.close(true);
    if (this.#retry !== null) {
      clearTimeout(this.#retry);
      this.#retry = null;
    }
    if (this.#acceptId !== -1) {
      this.#ring.addon.cancel(this.#ring.handle, this.#acceptId);
      this.#ring.submitSoon();
    }
    this.#maybeCloseFd();
  }

  #maybeCloseFd(): void {
    if (this.#fdClosed || this.#acceptId !== -1 || this.#polls?.inKernel) return;
    this.#fdClosed = true;
    // As libuv does: unlink the socket file before closing, so a new listener's file is never removed.
    if (this.#pipePath !== null) {
      try {
        unlinkSync(this.#pipePath);
      } catch {
        // already gone
      }
    }
    this.#ring.addon.close(this.#ring.handle, this.#fd, false);
  }
}
