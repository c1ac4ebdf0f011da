/**
 * The retry schedule of an accept that failed for want of resources
 * (EMFILE, ENFILE, ENOBUFS, …): 50 ms, doubling to 1 s while it keeps
 * failing, back to 50 ms after an accept succeeds. Shared by the uring
 * engine's posted accepts and the readiness models' `accept` calls, so a
 * storm backs off the same way whichever way a server accepts. Clients
 * that arrive meanwhile wait in the listen backlog.
 */
export const ACCEPT_BACKOFF_MIN_MS = 50;
export const ACCEPT_BACKOFF_MAX_MS = 1000;

export class AcceptBackoff {
  #nextMs = ACCEPT_BACKOFF_MIN_MS;

  /** An accept failed: how long to wait before the next try (the one after waits twice as long). */
  failed(): number {
    const delay = this.#nextMs;
    this.#nextMs = Math.min(ACCEPT_BACKOFF_MAX_MS, delay * 2);
    return delay;
  }

  /** An accept succeeded: the next failure waits the minimum again. */
  succeeded(): void {
    this.#nextMs = ACCEPT_BACKOFF_MIN_MS;
  }
}
