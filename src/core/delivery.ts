import type { Engine, EngineRequest } from '../engines/contract.js';
import { queueCompletionRoutine } from './apc.js';
import { Completion, type CompletionPort } from './completion-port.js';
import { OverlappedError } from './errors.js';
import type { Overlapped } from './overlapped.js';

/**
 * Completion delivery: the sink every engine hands its batches to.
 *
 * For each completed Overlapped (DESIGN.md, "Completion delivery"): mark it
 * finished and let its handle settle its bookkeeping; then its completion
 * routine goes on the APC queue, or else an entry goes on the handle's port;
 * and its event, if any, is set. Ports are dispatched once per batch, so a
 * worker calling `dequeueMany` receives the batch whole.
 */
const touched: CompletionPort<unknown, unknown>[] = [];

function deliver(batch: readonly EngineRequest[]): void {
  for (let i = 0; i < batch.length; i++) {
    const ov = batch[i] as Overlapped<unknown>;
    if (!ov.finish()) {
      // An engine completed something twice or that was never posted: fail loudly.
      const breach = new OverlappedError(
        'OVL_ERR_INTERNAL',
        `an engine completed a ${ov.operation ?? 'never-posted'} operation that was not pending`,
      );
      queueMicrotask(() => {
        throw breach;
      });
      continue;
    }
    const handle = ov.handle;
    if (handle !== null) handle.operationDone(ov);
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
  for (let i = 0; i < touched.length; i++) (touched[i] as CompletionPort).dispatch();
  touched.length = 0;
}

const attached = new WeakSet<Engine>();

/** Makes `engine` deliver into core. Idempotent; called when a handle is opened on it. */
export function attachEngine(engine: Engine): void {
  if (attached.has(engine)) return;
  attached.add(engine);
  engine.setSink(deliver);
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
export function completeLater(ov: Overlapped<unknown>, error: Error): void {
  ov.bytes = 0;
  ov.error = error;
  if (deferred.push(ov) === 1) process.nextTick(flushDeferred);
}
