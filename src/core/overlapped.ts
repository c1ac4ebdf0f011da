import type { BufferLease, EngineRequest, EngineStream } from '../engines/contract.js';
import type { CompletionRoutine, StoredRoutine } from './apc.js';
import { check } from './errors.js';
import type { WaitableEvent } from './events.js';
import type { Handle } from './handle.js';
import type { PipeConnection } from './pipe-connection.js';
import type { TcpSocket } from './tcp-socket.js';

/**
 * The kind of operation an {@link Overlapped} was last posted for; `read` and
 * `write` are ReadFile/WriteFile on a pipe connection.
 */
export type Operation =
  | 'accept'
  | 'connect'
  | 'recv'
  | 'send'
  | 'shutdown'
  | 'read'
  | 'write'
  | 'poll';

/**
 * One posted operation's record: the `OVERLAPPED` structure plus the
 * per-I/O data that Win32 code appends to it (`CONTAINING_RECORD`).
 *
 * Lifecycle: post it with an operation (`socket.recv(buf, ov)`, …); it is
 * `pending` until its completion is delivered, and then holds the result
 * (`bytes`, `error`, and `socket` for accept). It can then be posted again.
 * Posting it while pending throws `OVL_ERR_OVERLAPPED_IN_USE`.
 *
 * The Overlapped, not the completion port, is what ties a completion back to
 * your state: keep whatever the next step needs in `data`.
 *
 * How you learn of the completion (docs/models.md, in the package): a
 * completion routine passed with the operation runs at the posting thread's
 * next alertable wait; otherwise the handle's completion port gets the entry;
 * and in both cases {@link Overlapped.event}, if set, is signalled.
 */
export class Overlapped<T = undefined> implements EngineRequest {
  /** Per-I/O data: yours to keep buffers, counters and state in. */
  data: T;
  /** The operation this record was last posted for, or null if never posted. */
  operation: Operation | null = null;
  /** The handle the operation was posted on. */
  handle: Handle | null = null;
  /** Bytes transferred by the last completed operation. */
  bytes = 0;
  /**
   * Bytes the last posted operation asked to move (the recv buffer's length, the
   * send's total). A send that completes with `bytes < requested` was partial.
   */
  requested = 0;
  /** The last completed operation's error, or null. */
  error: Error | null = null;
  /**
   * Pooled recv (`socket.recvPooled(ov)`): the pool buffer holding the bytes,
   * or null (0 bytes, an error, or another operation). Call `lease.release()`
   * once done with `lease.view`.
   */
  lease: BufferLease | null = null;
  /** What most records never use (see {@link OverlappedExtra}); made on first need. */
  #extra: OverlappedExtra | null = null;
  /** @internal Set while an operation is in flight. */
  #pending = false;

  /** accept: the accepted socket, not yet associated with any port; connect: the connected socket. */
  get socket(): TcpSocket | null {
    return this.#extra === null ? null : this.#extra.socket;
  }
  set socket(value: TcpSocket | null) {
    if (this.#extra !== null || value !== null) this.#more().socket = value;
  }

  /** Pipe accept (ConnectNamedPipe) and pipe connect: the connected pipe instance. */
  get pipe(): PipeConnection | null {
    return this.#extra === null ? null : this.#extra.pipe;
  }
  set pipe(value: PipeConnection | null) {
    if (this.#extra !== null || value !== null) this.#more().pipe = value;
  }

  /**
   * Signalled when the operation completes (`OVERLAPPED.hEvent`). Set it
   * before posting; wait on it with `waitForSingleObject`/`waitForMultipleEvents`
   * and read the result with `getOverlappedResult`. Resetting it is yours to do.
   */
  get event(): WaitableEvent | null {
    return this.#extra === null ? null : this.#extra.event;
  }
  set event(value: WaitableEvent | null) {
    if (this.#extra !== null || value !== null) this.#more().event = value;
  }

  /**
   * Engine output for accept/connect (see EngineRequest, which Overlapped
   * implements, so it stays in the published types); core turns it into
   * `socket` or `pipe` and clears it before delivery.
   */
  get result(): EngineStream | null {
    return this.#extra === null ? null : this.#extra.result;
  }
  set result(value: EngineStream | null) {
    if (this.#extra !== null || value !== null) this.#more().result = value;
  }

  /** @internal The completion routine of the operation in flight, if any. */
  get routine(): StoredRoutine | null {
    return this.#extra === null ? null : this.#extra.routine;
  }
  /** @internal */
  set routine(value: StoredRoutine | null) {
    if (this.#extra !== null || value !== null) this.#more().routine = value;
  }

  #more(): OverlappedExtra {
    this.#extra ??= new OverlappedExtra();
    return this.#extra;
  }

  constructor(...args: undefined extends T ? [data?: T] : [data: T]) {
    this.data = args[0] as T;
  }

  /** True from the post until the completion has been delivered. */
  get pending(): boolean {
    return this.#pending;
  }

  /** @internal Marks the record as posted; throws if it is still pending. */
  begin(
    operation: Operation,
    handle: Handle,
    requested: number,
    routine: CompletionRoutine<T> | null,
  ): void {
    check(!this.#pending, 'OVL_ERR_OVERLAPPED_IN_USE');
    check(
      routine === null || typeof routine === 'function',
      'OVL_ERR_INVALID_ARGUMENT',
      'a completion routine must be a function (error, bytesTransferred, ov) => void',
    );
    this.routine = routine as StoredRoutine | null;
    this.#pending = true;
    this.operation = operation;
    this.handle = handle;
    this.requested = requested;
    this.bytes = 0;
    this.error = null;
    this.socket = null;
    this.pipe = null;
    this.result = null;
    this.lease = null;
  }

  /** @internal Marks the record as finished; false if it was not pending (a contract breach). */
  finish(): boolean {
    if (!this.#pending) return false;
    this.#pending = false;
    return true;
  }

  /** @internal Runs `callback` once the operation in flight has been delivered. */
  whenDone(callback: () => void): void {
    const extra = this.#more();
    extra.whenDone ??= [];
    extra.whenDone.push(callback);
  }

  /** @internal Called by delivery after everything else: wakes `whenDone` callbacks. */
  settle(): void {
    const callbacks = this.#extra === null ? null : this.#extra.whenDone;
    if (callbacks === null) return;
    (this.#extra as OverlappedExtra).whenDone = null;
    for (const callback of callbacks) callback();
  }
}

/**
 * The fields of an Overlapped that a record posting recvs and sends on a
 * completion port never sets: results of accept and connect, the event, the
 * completion routine and waiters. Kept apart so that the record every
 * connection holds stays small (thousands of idle connections hold one each).
 */
class OverlappedExtra {
  socket: TcpSocket | null = null;
  pipe: PipeConnection | null = null;
  event: WaitableEvent | null = null;
  result: EngineStream | null = null;
  routine: StoredRoutine | null = null;
  /** Callbacks of `getOverlappedResult(ov, { wait: true })` calls, run once it is done. */
  whenDone: (() => void)[] | null = null;
}
