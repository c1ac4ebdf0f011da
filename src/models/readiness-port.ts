/**
 * Where the readiness models' polls complete: one completion port per
 * thread, drained by one loop that hands each poll's result to whoever
 * posted it (a `select` record, a WSAAsyncSelect/WSAEventSelect selection).
 *
 * `select`, `WSAAsyncSelect` and `WSAEventSelect` are notification models:
 * the kernel (or the engine) says a socket is ready, and the program then
 * makes a non-blocking call. Below them the toolkit has only completions, so
 * each "tell me when it is ready" is a posted `poll`, and its completion is
 * the notification. Sockets in non-blocking mode are associated with this
 * port for life, as a handle has one port.
 */
import { type Completion, CompletionPort } from '../core/completion-port.js';
import { OverlappedError } from '../core/errors.js';
import { Overlapped } from '../core/overlapped.js';
import type { TcpListener } from '../core/tcp-listener.js';
import type { TcpSocket } from '../core/tcp-socket.js';

/** Whoever posted a poll: told its result (the Readiness bits, or the error) once. */
export interface PollOwner {
  onPoll(ready: number, error: Error | null, ov: Overlapped<PollOwner>): void;
}

let port: CompletionPort<null, PollOwner> | null = null;

function readinessPort(): CompletionPort<null, PollOwner> {
  if (port === null) {
    port = new CompletionPort<null, PollOwner>({ concurrency: 1 });
    void pump(port);
  }
  return port;
}

async function pump(p: CompletionPort<null, PollOwner>): Promise<void> {
  for (;;) {
    let batch: Completion<null, PollOwner>[];
    try {
      batch = await p.dequeueMany({ max: 256 });
    } catch (err) {
      if (err instanceof OverlappedError && err.code === 'OVL_ERR_PORT_CLOSED') return;
      throw err;
    }
    for (let i = 0; i < batch.length; i++) {
      const c = batch[i] as Completion<null, PollOwner>;
      const ov = c.overlapped as Overlapped<PollOwner>;
      ov.data.onPoll(c.bytes, c.error, ov);
    }
  }
}

/** Associates a socket or listener with this thread's readiness port (once per handle). */
export function watch(handle: TcpSocket | TcpListener): void {
  if (handle.port === null) readinessPort().associate(handle, null);
}

/** A poll record owned by `owner`, reusable once its completion was handed over. */
export function pollRecord(owner: PollOwner): Overlapped<PollOwner> {
  return new Overlapped<PollOwner>(owner);
}

/** True when a poll ended because its socket was closed or the poll cancelled. */
export function isAborted(error: Error | null): boolean {
  return error instanceof OverlappedError && error.code === 'OVL_ERR_ABORTED';
}
