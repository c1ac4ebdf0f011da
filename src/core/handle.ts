import type { Engine } from '../engines/contract.js';
import type { CompletionRoutine } from './apc.js';
import type { CompletionPort } from './completion-port.js';
import { add, counters, countPosted, engineIndex } from './counters.js';
import { check, OverlappedError } from './errors.js';
import type { Operation, Overlapped } from './overlapped.js';

/**
 * A long-lived I/O object (listener or socket): the thing operations are
 * posted on and that a completion port is associated with.
 *
 * Contract shared by every handle:
 * - `cancel()` / `cancel(ov)` and `close()` complete the affected pending
 *   operations with `OVL_ERR_ABORTED`; each still completes exactly once.
 * - `close()` is idempotent; posting on a closed handle throws
 *   `OVL_ERR_HANDLE_CLOSED`.
 * - A handle is associated with at most one port, for life.
 */
export abstract class Handle {
  /** @internal */
  readonly engine: Engine;
  /** @internal The engine's label index in the counters. */
  readonly engineIndex: number;
  #port: CompletionPort<unknown, unknown> | null = null;
  #key: unknown;
  #closed = false;
  #pending = 0;
  /** Set by {@link Handle.failPendingWith}: what aborted operations complete with instead. */
  #abortError: OverlappedError | null = null;

  protected constructor(engine: Engine) {
    this.engine = engine;
    this.engineIndex = engineIndex(engine);
  }

  /** The port this handle is associated with, or null. */
  get port(): CompletionPort<unknown, unknown> | null {
    return this.#port;
  }

  /** The completion key given to `port.associate()`: the per-handle data. */
  get key(): unknown {
    return this.#key;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Operations posted on this handle whose completions have not been delivered yet. */
  get pendingOperations(): number {
    return this.#pending;
  }

  /**
   * Cancels `ov`, or every pending operation of this handle. Each cancelled
   * operation completes with `OVL_ERR_ABORTED` and the bytes moved so far.
   * Returns false when nothing matched (CancelIoEx's ERROR_NOT_FOUND).
   */
  cancel(ov?: Overlapped<unknown>): boolean {
    if (ov !== undefined && (!ov.pending || ov.handle !== this)) return false;
    return this.cancelPending(ov ?? null);
  }

  /** @internal Asks the engine to cancel `ov` (pending on this handle), or everything. */
  protected abstract cancelPending(ov: Overlapped<unknown> | null): boolean;

  /** Closes the handle; pending operations complete with `OVL_ERR_ABORTED`. Idempotent. */
  abstract close(): void;

  /** @internal Called by CompletionPort.associate. */
  attachPort(port: CompletionPort<unknown, unknown>, key: unknown): void {
    check(this.#port === null, 'OVL_ERR_ALREADY_ASSOCIATED');
    this.#port = port;
    this.#key = key;
  }

  /** @internal Validates and marks a post; subclasses call it before the engine. */
  protected beginOperation<T>(
    ov: Overlapped<T>,
    operation: Operation,
    requested = 0,
    routine: CompletionRoutine<T> | null = null,
  ): void {
    check(!this.#closed, 'OVL_ERR_HANDLE_CLOSED');
    ov.begin(operation, this, requested, routine);
    this.#pending++;
    countPosted(this.engineIndex, operation, requested);
  }

  /**
   * From now on, operations of this handle that would complete with
   * `OVL_ERR_ABORTED` complete with `error` instead: a server closing a
   * connection because a deadline passed calls it first, so that every
   * pending operation says why (`OVL_ERR_TIMEOUT`).
   */
  failPendingWith(error: OverlappedError): void {
    if (error.code === 'OVL_ERR_TIMEOUT' && this.#abortError === null)
      add(counters.deadlineCloses, 0);
    this.#abortError = error;
  }

  /** @internal Called once per delivered completion of this handle. */
  operationDone(ov: Overlapped<unknown>): void {
    this.#pending--;
    const replacement = this.#abortError;
    if (
      replacement !== null &&
      ov.error instanceof OverlappedError &&
      ov.error.code === 'OVL_ERR_ABORTED'
    ) {
      ov.error = replacement;
    }
  }

  /** @internal Marks the handle closed; returns false if it already was. */
  protected markClosed(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    return true;
  }
}
