/**
 * Helpers for the per-model semantics tests (test/models/*.test.ts): a
 * non-blocking listener on 127.0.0.1 port 0 through the models' API, plain
 * `node:net` peers, accepted non-blocking sockets, and bounded waits that
 * fail with a message instead of hanging.
 *
 * Everything opened through a {@link ModelScope} is closed by its `close()`,
 * which each test calls in `finally`, so a failing test still lets the
 * process exit.
 */
import net from 'node:net';
import { OverlappedError } from '../../src/core/errors.js';
import { TcpListener } from '../../src/core/tcp-listener.js';
import type { Engine } from '../../src/engines/contract.js';
import {
  type NonBlockingListener,
  type NonBlockingSocket,
  setNonBlocking,
  WOULD_BLOCK,
} from '../../src/models/nonblocking.js';

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Per test: long enough for a slow shared machine, short enough that a hang fails. */
export const TEST_TIMEOUT = { timeout: 30_000 };

/** Matches an OverlappedError (UsageError, …) with `code`, for assert.throws/rejects. */
export const hasCode = (code: string, message?: RegExp) => (err: unknown) =>
  err instanceof OverlappedError &&
  err.code === code &&
  (message === undefined || message.test(err.message));

/** Matches an error whose `code` is `code` (OsError: ECONNRESET, …). */
export const hasOsCode = (code: string) => (err: unknown) =>
  err instanceof Error && (err as { code?: unknown }).code === code;

/** Resolves `promise`, or fails with `what` once `ms` pass. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `condition` every few ms until it holds; fails with `what` after `ms`. */
export async function waitUntil(condition: () => boolean, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await delay(5);
  }
}

/** What a node:net peer received, and how its connection ended. */
export interface PeerRecord {
  readonly chunks: Buffer[];
  bytes: number;
  ended: boolean;
  closed: boolean;
  error: Error | null;
}

/** A plain node:net peer with what it receives recorded (reading starts paused when asked). */
export interface Peer {
  readonly socket: net.Socket;
  readonly record: PeerRecord;
  all(): Buffer;
  /** Resolves once `n` bytes arrived in all; fails after `ms`. */
  atLeast(n: number, ms?: number): Promise<void>;
}

export interface PeerOptions {
  /** Start with reading paused (TCP flow control then fills the connection). */
  paused?: boolean;
  /** Keep the peer's sending side open after the server's FIN. */
  allowHalfOpen?: boolean;
}

/** Opens the sockets of one test and closes them all at the end. */
export class ModelScope {
  readonly engine: Engine;
  readonly #listeners: NonBlockingListener[] = [];
  readonly #sockets: NonBlockingSocket[] = [];
  readonly #peers: net.Socket[] = [];
  readonly #cleanups: (() => void | Promise<void>)[] = [];

  constructor(engine: Engine) {
    this.engine = engine;
  }

  /** `TcpListener.listen` on 127.0.0.1 port 0, then `setNonBlocking`. */
  async listen(): Promise<NonBlockingListener> {
    const listener = setNonBlocking(
      await TcpListener.listen({ engine: this.engine, host: '127.0.0.1', port: 0 }),
    );
    this.#listeners.push(listener);
    return listener;
  }

  /**
   * A node:net peer connected to `listener` (records what it receives;
   * paused, or half-open: not ending its side when the server's FIN comes, when told).
   */
  async connect(listener: { readonly address: { port: number } }, options: PeerOptions = {}) {
    const socket = net.connect({
      host: '127.0.0.1',
      port: listener.address.port,
      allowHalfOpen: options.allowHalfOpen ?? false,
    });
    this.#peers.push(socket);
    const record: PeerRecord = { chunks: [], bytes: 0, ended: false, closed: false, error: null };
    let wake: (() => void) | null = null;
    socket.on('data', (chunk: Buffer) => {
      record.chunks.push(chunk);
      record.bytes += chunk.length;
      wake?.();
    });
    socket.on('end', () => {
      record.ended = true;
    });
    socket.on('close', () => {
      record.closed = true;
      wake?.();
    });
    socket.on('error', (err) => {
      record.error = err;
    });
    if (options.paused) socket.pause();
    await within(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('error', reject);
      }),
      5000,
      'the peer connects',
    );
    const peer: Peer = {
      socket,
      record,
      all: () => Buffer.concat(record.chunks),
      async atLeast(n: number, ms = 10_000) {
        const deadline = Date.now() + ms;
        while (record.bytes < n) {
          const left = deadline - Date.now();
          if (left <= 0 || record.closed) {
            throw new Error(
              `the peer got only ${record.bytes} of ${n} bytes ${record.closed ? 'before its connection closed' : `within ${ms} ms`}`,
            );
          }
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Math.min(left, 100));
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = null;
        }
      },
    };
    return peer;
  }

  /** `accept` on a non-blocking listener, retried every few ms until a socket comes (bounded). */
  async accept(listener: NonBlockingListener, ms = 5000): Promise<NonBlockingSocket> {
    const deadline = Date.now() + ms;
    for (;;) {
      const socket = listener.accept();
      if (socket !== null) return this.adopt(socket);
      if (Date.now() > deadline) throw new Error(`no connection to accept within ${ms} ms`);
      await delay(5);
    }
  }

  /** Registers a socket accepted elsewhere (a window procedure) for cleanup. */
  adopt(socket: NonBlockingSocket): NonBlockingSocket {
    this.#sockets.push(socket);
    return socket;
  }

  /** A listener, a peer connected to it, and the accepted non-blocking socket. */
  async pair(options: PeerOptions = {}) {
    const listener = await this.listen();
    const peer = await this.connect(listener, options);
    const socket = await this.accept(listener);
    return { listener, peer, socket };
  }

  /** Runs `cleanup` at close (windows, servers); a promise it returns is awaited (bounded). */
  defer(cleanup: () => void | Promise<void>): void {
    this.#cleanups.push(cleanup);
  }

  async close(): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const cleanup of this.#cleanups.splice(0)) {
      const result = cleanup();
      if (result !== undefined) pending.push(result);
    }
    for (const peer of this.#peers.splice(0)) peer.destroy();
    for (const socket of this.#sockets.splice(0)) socket.close();
    for (const listener of this.#listeners.splice(0)) listener.close();
    if (pending.length > 0) await within(Promise.all(pending), 10_000, 'the test cleans up');
  }
}

/** Runs `body` with a fresh scope, closing everything it opened whatever happens. */
export async function withScope(
  engine: Engine,
  body: (scope: ModelScope) => Promise<void>,
): Promise<void> {
  const scope = new ModelScope(engine);
  try {
    await body(scope);
  } finally {
    await scope.close();
  }
}

/**
 * `recv` on a non-blocking socket, retried every few ms while it returns
 * WOULD_BLOCK (the polling model): the count, or 0 at end of stream.
 */
export async function recvPolling(
  socket: NonBlockingSocket,
  buffer: Uint8Array,
  ms = 5000,
): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const n = socket.recv(buffer);
    if (n !== WOULD_BLOCK) return n;
    if (Date.now() > deadline) throw new Error(`recv kept returning WOULD_BLOCK for ${ms} ms`);
    await delay(2);
  }
}

/** Receives exactly `n` bytes by polling recv (fails at end of stream or after `ms`). */
export async function recvExactly(socket: NonBlockingSocket, n: number, ms = 10_000) {
  const out = Buffer.alloc(n);
  const buffer = Buffer.alloc(64 * 1024);
  let at = 0;
  const deadline = Date.now() + ms;
  while (at < n) {
    const got = await recvPolling(socket, buffer.subarray(0, Math.min(buffer.length, n - at)), ms);
    if (got === 0) throw new Error(`end of stream after ${at} of ${n} bytes`);
    buffer.copy(out, at, 0, got);
    at += got;
    if (Date.now() > deadline) throw new Error(`only ${at} of ${n} bytes within ${ms} ms`);
  }
  return out;
}

/**
 * Sends `source` repeated into a socket whose peer does not read, until it is
 * full: `send` returned WOULD_BLOCK and `waitForRoom(k)` (k: WOULD_BLOCKs in a
 * row so far) said room will not come back. By default a full socket is one
 * whose sends return WOULD_BLOCK four times in a row, 100 ms apart. Returns
 * the bytes `send` said it took and how its calls ended. Bounded: a
 * connection that takes more than `boundBytes` fails the test.
 */
export async function fillUntilFull(
  socket: NonBlockingSocket,
  source: Buffer,
  waitForRoom: (inARow: number) => Promise<boolean> = async (inARow) => {
    await delay(100);
    return inARow < 3;
  },
  boundBytes = 64 * 1024 * 1024,
) {
  let taken = 0;
  let partial = 0;
  let wouldBlocks = 0;
  let inARow = 0;
  for (;;) {
    if (taken > boundBytes) {
      throw new Error(`send took ${taken} bytes from a peer that never reads`);
    }
    const at = taken % source.length;
    const n = socket.send(source.subarray(at));
    if (n !== WOULD_BLOCK) {
      if (n < 1 || n > source.length - at) throw new Error(`send returned ${n}`);
      if (n < source.length - at) partial++;
      taken += n;
      inARow = 0;
      continue;
    }
    wouldBlocks++;
    if (!(await waitForRoom(inARow++))) return { taken, partial, wouldBlocks };
  }
}

/** Checks that `got` is `source` repeated for `length` bytes. */
export function isRepeated(got: Buffer, source: Buffer, length: number): string | null {
  if (got.length !== length) return `${got.length} bytes, expected ${length}`;
  for (let at = 0; at < length; at += source.length) {
    const n = Math.min(source.length, length - at);
    if (!got.subarray(at, at + n).equals(source.subarray(0, n))) return `bytes at ${at} differ`;
  }
  return null;
}
