/**
 * Helpers for tests that drive the echo server over real sockets.
 *
 * Every server listens on 127.0.0.1 port 0 and runs quiet (no logger); every
 * client is a plain `node:net` socket, so what the tests check is what any
 * TCP peer would see.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { chooseEngine } from '../../src/engines/select.js';
import type { EchoService } from '../../src/servers/echo/echo-base.js';
import { type EchoModelOptions, startEchoServer } from '../../src/servers/echo/echo-models.js';

export type EchoFixtureOptions = Omit<EchoModelOptions, 'engine' | 'host' | 'port' | 'logger'>;

/** An echo server (completion-port model unless told) on this thread's engine (OVERLAPPED_ENGINE, else the default) at 127.0.0.1, on a port the OS picks. */
export function startEcho(options: EchoFixtureOptions = {}): Promise<EchoService> {
  return startEchoServer({
    ...options,
    engine: chooseEngine().engine,
    host: '127.0.0.1',
    port: 0,
  });
}

const lastErrors = new WeakMap<Socket, Error>();

/** The last error a socket from {@link connectClient} emitted, if any. */
export function lastError(socket: Socket): Error | undefined {
  return lastErrors.get(socket);
}

/**
 * A plain `node:net` client connected to 127.0.0.1:`port`. Errors after the
 * connection is made are recorded (see {@link lastError}) rather than thrown,
 * so a reset from the server cannot crash the test process; the helpers below
 * report them.
 */
export function connectClient(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const onError = (err: Error) => reject(err);
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      socket.on('error', (err) => lastErrors.set(socket, err));
      resolve(socket);
    });
  });
}

/**
 * Writes `data` and collects exactly `data.length` bytes back. Rejects if the
 * stream ends, fails or the timeout passes first (saying how many bytes had
 * arrived), or if more bytes than were sent come back.
 */
export function echoRoundTrip(socket: Socket, data: Buffer, timeoutMs = 15_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onClose);
      socket.off('error', onError);
    };
    const fail = (why: string) => {
      cleanup();
      reject(new Error(`echo of ${data.length} bytes: ${why}; ${got} bytes had arrived`));
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got < data.length) return;
      cleanup();
      if (got > data.length) {
        reject(new Error(`echo of ${data.length} bytes: ${got} bytes came back, more than sent`));
      } else {
        resolve(Buffer.concat(chunks, got));
      }
    };
    const onEnd = () => fail('the server ended the stream');
    const onClose = () => fail('the connection closed');
    const onError = (err: Error) => fail(`socket error ${err.message}`);
    const timer = setTimeout(() => fail(`no full echo within ${timeoutMs} ms`), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onClose);
    socket.once('error', onError);
    if (socket.isPaused()) socket.resume();
    socket.write(data);
  });
}

/** Resolves once `socket` has emitted 'close' (at once if it already has). */
export function closed(socket: Socket, timeoutMs = 10_000): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`socket did not close within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Closes a client the polite way (FIN) and waits for the server to close its
 * side; falls back to a reset if that takes longer than `timeoutMs`.
 */
export async function closeClient(socket: Socket, timeoutMs = 5_000): Promise<void> {
  if (socket.closed) return;
  socket.resume();
  socket.end();
  try {
    await closed(socket, timeoutMs);
  } catch {
    socket.destroy();
    await closed(socket);
  }
}

/** Destroys every socket still open (for `finally` blocks) and waits until each has closed. */
export async function destroyAll(sockets: Iterable<Socket>): Promise<void> {
  const all = [...sockets];
  for (const socket of all) socket.destroy();
  await Promise.all(all.map((s) => closed(s)));
}

/** Polls `condition` every 10 ms until it holds; throws naming `what` on timeout. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until the server counts `expected` open connections. */
export function waitForConnections(
  server: EchoService,
  expected: number,
  timeoutMs = 5_000,
): Promise<void> {
  return waitFor(
    () => server.connections === expected,
    `server.connections === ${expected} (it is ${server.connections})`,
    timeoutMs,
  );
}

/** A port nothing listens on: bound on 127.0.0.1, read, and released. */
export async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

/**
 * The seed of this test run: `OVERLAPPED_TEST_SEED` when set (to replay a
 * failure), else a fresh one. Assertion messages print it.
 */
export function runSeed(): number {
  const fromEnv = process.env.OVERLAPPED_TEST_SEED;
  if (fromEnv !== undefined && fromEnv !== '') {
    const seed = Number(fromEnv);
    assert.ok(Number.isInteger(seed), `OVERLAPPED_TEST_SEED must be an integer, got ${fromEnv}`);
    return seed >>> 0;
  }
  return (Math.random() * 0x1_0000_0000) >>> 0;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same payloads. */
export class SeededRandom {
  readonly seed: number;
  #state: number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.#state = this.seed;
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor((this.next() / 0x1_0000_0000) * (max - min + 1));
  }

  /** `size` random bytes. */
  bytes(size: number): Buffer {
    const out = Buffer.allocUnsafe(size);
    let i = 0;
    for (; i + 4 <= size; i += 4) out.writeUInt32LE(this.next(), i);
    if (i < size) {
      const last = this.next();
      for (let k = 0; i < size; i++, k++) out[i] = (last >>> (8 * k)) & 0xff;
    }
    return out;
  }
}

/**
 * Asserts `actual` equals `expected` byte for byte; on failure says where they
 * first differ, with `context` (which should name the seed).
 */
export function assertSameBytes(actual: Buffer, expected: Buffer, context: string): void {
  if (actual.equals(expected)) return;
  let at = 0;
  const n = Math.min(actual.length, expected.length);
  while (at < n && actual[at] === expected[at]) at++;
  assert.fail(
    `${context}: got ${actual.length} bytes, expected ${expected.length}; ` +
      (at < n ? `first difference at offset ${at}` : `one is a prefix of the other`),
  );
}
