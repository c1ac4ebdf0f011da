import type { Engine, EngineRequest, EngineStream } from '../engines/contract.js';
import { queueCompletionRoutine } from './apc.js';
import { Completion, type CompletionPort } from './completion-port.js';
import { countBatch, countCompleted, engineIndex } from './counters.js';
import { OverlappedError } from './errors.js';
import type { Overlapped } from './overlapped.js';

/**
 * Completion delivery: the sink every engine hands its batches to.
 *
 * For each completed Overlapped (docs/models.md has the user's view): mark it
 * finished and let its handle settle its bookkeeping; then its completion
 * routine goes on the APC queue, or else an entry goes on the handle's port;
 * and its event, if any, is set. Ports are dispatched once per batch, so a
 * worker calling `dequeueMany` receives the batch whole.
 *
 * A batch may also hold {@link InternalRequest}s: engine operations a core
 * handle posted for itself (a pipe connection's reads of raw frames). They
 * are no one's Overlapped; each goes back to its owner, in batch order, and
 * the owner may complete user Overlappeds from there with
 * {@link deliverInBatch}, so they join the same batch in order.
 */
const touched: CompletionPort<unknown, unknown>[] = [];

/**
 * An engine request core posts on its own behalf. The engine fills in
 * `bytes`, `error` and `result` as for any request; delivery then calls
 * `done()` instead of delivering it to anyone.
 */
export abstract class InternalRequest implements EngineRequest {
  bytes = 0;
  error: Error | null = null;
  result: EngineStream | null = null;
  /** Called once per completion, inside the delivery of its batch. */
  abstract done(): void;
}

function deliverOne(ov: Overlapped<unknown>): void {
  if (!ov.finish()) {
    // An engine completed something twice or that was never posted: fail loudly.
    const breach = new OverlappedError(
      'OVL_ERR_INTERNAL',
      `an engine completed a ${ov.operation ?? 'never-posted'} operation that was not pending`,
    );
    queueMicrotask(() => {
      throw breach;
    });
    return;
  }
  const handle = ov.handle;
  if (handle !== null) {
    handle.operationDone(ov);
    // After operationDone: an abort a deadline caused counts as its OVL_ERR_TIMEOUT.
    countCompleted(handle.engineIndex, ov);
  }
  const routine = ov.routine;
  if (routine !== null) {
    ov.routine = null;
    queueCompletionRoutine(routine, ov);
  } else if (handle !== null) {
    const port = handle.port;
    if (port !== null) {
      port.enqueue(new Completion(handle.key, ov.bytes, ov, ov.error));
      if (!port.dirty) {
        port.dirty = true;
        touched.push(port);
      }
    }
  }
  if (ov.event !== null) ov.event.set();
  ov.settle();
}

let delivering = false;

function deliver(batch: readonly EngineRequest[]): void {
  const outer = delivering;
  delivering = true;
  try {
    for (let i = 0; i < batch.length; i++) {
      const req = batch[i] as EngineRequest;
      if (req instanceof InternalRequest) req.done();
      else deliverOne(req as Overlapped<unknown>);
    }
  } finally {
    delivering = outer;
  }
  for (let i = 0; i < touched.length; i++) (touched[i] as CompletionPort).dispatch();
  touched.length = 0;
}

/**
 * @internal Delivers `ov` (its `bytes` and `error` already set) as part of
 * the batch being delivered now. Only an {@link InternalRequest}'s `done()`
 * may call it: that is what keeps it off the posting call's stack (rule 1).
 */
export function deliverInBatch(ov: Overlapped<unknown>): void {
  if (!delivering) throw new OverlappedError('OVL_ERR_INTERNAL', 'deliverInBatch outside a batch');
  deliverOne(ov);
}

const attached = new WeakSet<Engine>();

/** Makes `engine` deliver into core. Idempotent; called when a handle is opened on it. */
export function attachEngine(engine: Engine): void {
  if (attached.has(engine)) return;
  attached.add(engine);
  const e = engineIndex(engine);
  engine.setSink((batch) => {
    countBatch(e, batch.length);
    deliver(batch);
  });
}

const deferred: Overlapped<unknown>[] = [];

function flushDeferred(): void {
  const batch = deferred.splice(0);
  deliver(batch);
}

/**
 * Completes `ov` with `error` from core itself (a post core refuses on its
 * own, such as a full send queue), after the current call returns: the same
 * path and the same never-synchronous rule as engine completions.
 */
export function completeLater(ov: Overlapped<unknown>, error: Error | null, bytes = 0): void {
  ov.bytes = bytes;
  ov.error = error;
  if (deferred.push(ov) === 1) process.nextTick(flushDeferred);
}
