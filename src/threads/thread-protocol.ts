/**
 * What the acceptor thread and the session worker threads say to each
 * other, and how a session is named across threads.
 *
 * A session lives on one worker thread, under its local key (the
 * registry's, src/servers/session/session-keys.ts). Across threads it is
 * named by its global key, `localKey * MAX_THREADS + thread`: a number, so
 * it crosses `postMessage` and stays stale once the session ended (the
 * local key's generation does that).
 *
 * Bytes sent to sessions of other threads travel in a SharedArrayBuffer
 * made once by the sender: every thread queues views of that one copy, so a
 * broadcast costs one copy of the bytes whatever the thread count.
 */
import type { SessionHandlers, SessionServer } from '../servers/session/session-server.js';

/** Most worker threads a server runs: the factor of a global key. */
export const MAX_THREADS = 64;

export function globalKey(localKey: number, thread: number): number {
  return localKey * MAX_THREADS + thread;
}

export function threadOf(key: number): number {
  return key % MAX_THREADS;
}

export function localKeyOf(key: number): number {
  return Math.floor(key / MAX_THREADS);
}

/** One copy of `bytes` that every thread can read. */
export function shareBytes(bytes: Uint8Array): Uint8Array {
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
  shared.set(bytes);
  return shared;
}

/** Acceptor → worker. */
export type ToWorker =
  | { kind: 'adopt'; fd: number }
  | { kind: 'broadcast'; bytes: Uint8Array; except: number }
  | { kind: 'send'; key: number; bytes: Uint8Array }
  | { kind: 'post'; key: unknown; value: unknown }
  | { kind: 'stop'; deadlineMs: number };

/** Worker → acceptor. */
export type FromWorker =
  | { kind: 'broadcast'; bytes: Uint8Array; except: number }
  | { kind: 'send'; key: number; bytes: Uint8Array }
  | { kind: 'stopped'; drained: number; reset: number; accepted: number; cpuMicros: number }
  /** An uncaught exception in the thread: it resets its sessions, then reports `stopped`. */
  | { kind: 'failed'; message: string; stack: string };

/** What a worker's handler module gets: its thread, and the way to reach sessions on the others. */
export interface ThreadContext<D = unknown> {
  /** This worker's index, 0 to threads - 1. */
  readonly thread: number;
  readonly threads: number;
  /** This thread's server: `get`, iteration and `broadcast` cover this thread's sessions. */
  readonly server: SessionServer<D>;
  /** `handlerOptions` as given to the threaded server (structured-cloned). */
  readonly options: unknown;
  /** The session's key across threads. */
  globalKey(session: { key: number }): number;
  /** Sends `bytes` to every open session on every thread, but the one under `exceptGlobalKey`. */
  broadcast(bytes: Uint8Array, exceptGlobalKey?: number): void;
  /** Sends `bytes` to the session under `key`, on whichever thread; nothing when the key is stale. */
  sendTo(key: number, bytes: Uint8Array): void;
}

/**
 * A handler module's default export: called once per worker thread, in
 * that thread, to make the hooks of its sessions.
 */
export type ThreadHandlersFactory<D = unknown> = (context: ThreadContext<D>) => SessionHandlers<D>;

/**
 * The hooks a worker (thread or cluster process) gives its server: the
 * application's own, bound to their object (a handler object may be a class
 * instance, hooks on its prototype), with packets posted under `fromHost`
 * (the acceptor's or the primary's messages, re-posted on this thread's
 * port so they run in order with the completions) going to `onHostMessage`
 * instead of the application's `onPost`.
 */
export function workerHandlers<D>(
  handlers: SessionHandlers<D>,
  fromHost: symbol,
  onHostMessage: (message: unknown) => void,
): SessionHandlers<D> {
  return {
    onAccept: handlers.onAccept?.bind(handlers),
    onReceive: handlers.onReceive?.bind(handlers),
    onSendCompleted: handlers.onSendCompleted?.bind(handlers),
    onWritable: handlers.onWritable?.bind(handlers),
    onClose: handlers.onClose?.bind(handlers),
    onPost(key, value) {
      if (key === fromHost) onHostMessage(value);
      else handlers.onPost?.call(handlers, key, value);
    },
  };
}
