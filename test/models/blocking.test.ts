/**
 * The blocking model, a thread per connection (src/models/blocking.ts,
 * blocking-socket.ts, blocking-worker.ts), on every engine that runs here,
 * over real loopback sockets with plain node:net clients and a handler
 * module written for the test (./fixtures/blocking-handler.ts): echoes, the
 * mode per engine, a blocking recv that blocks only its own thread, the
 * --max-threads cap (clients wait, are not reset; the warning once), stop()
 * with threads blocked, and a handler that throws. An engine that cannot run
 * here is skipped with its reason.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { TcpListener } from '../../src/core/tcp-listener.js';
import type { Engine } from '../../src/engines/contract.js';
import { ThreadPerConnectionServer } from '../../src/models/blocking.js';
import { enginesUnderTest } from '../support/engines.js';
import {
  delay,
  hasCode,
  type ModelScope,
  type Peer,
  TEST_TIMEOUT,
  waitUntil,
  within,
  withScope,
} from '../support/model-fixture.js';

const HANDLER = new URL('./fixtures/blocking-handler.js', import.meta.url);

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A pino logger whose JSON lines are parsed into `lines`. */
function capturedLogger() {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) },
  );
  return { logger, lines };
}

/** Starts a server on `engine` with the test handler; stopped when the scope closes. */
async function startServer(
  scope: ModelScope,
  engine: Engine,
  options: Partial<Parameters<typeof ThreadPerConnectionServer.start>[0]> = {},
) {
  const listener = await TcpListener.listen({ engine, host: '127.0.0.1', port: 0 });
  let server: ThreadPerConnectionServer;
  try {
    server = ThreadPerConnectionServer.start({ listener, handler: HANDLER, ...options });
  } catch (err) {
    listener.close();
    throw err;
  }
  scope.defer(() => server.stop({ deadlineMs: 500 }));
  return server;
}

/** Writes `data` and waits for as many bytes back (what arrived after `from`). */
async function roundTrip(peer: Peer, data: Buffer, ms = 10_000): Promise<Buffer> {
  const from = peer.record.bytes;
  peer.socket.write(data);
  await peer.atLeast(from + data.length, ms);
  return peer.all().subarray(from, from + data.length);
}

/** Waits for the next newline-ended reply after byte `from`. */
async function line(peer: Peer, from: number, ms = 10_000): Promise<string> {
  await waitUntil(() => peer.all().indexOf(0x0a, from) >= 0, ms, 'a reply line');
  const all = peer.all();
  return all.toString('latin1', from, all.indexOf(0x0a, from));
}

/** Sends a command and returns its reply line. */
async function ask(peer: Peer, command: string): Promise<string> {
  const from = peer.record.bytes;
  peer.socket.write(command);
  return line(peer, from);
}

const capWarnings = (lines: LogLine[]) =>
  lines.filter((l) => l.level === 40 && /max-threads/.test(l.msg));

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`blocking, thread per connection: ${name}`, { skip: skip ?? false }, () => {
    if (engine === undefined) return;
    const expectedMode = name === 'uring' ? 'descriptor' : 'proxied';

    test('the test handler module is compiled beside this file', () => {
      assert.ok(existsSync(fileURLToPath(HANDLER)), `${fileURLToPath(HANDLER)} exists`);
    });

    test(
      `echoes through the handler module; mode is '${expectedMode}' here`,
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const server = await startServer(scope, engine);
          assert.equal(server.mode, expectedMode);
          const peer = await scope.connect(server);
          assert.equal((await roundTrip(peer, Buffer.from('hello'))).toString(), 'hello');
          assert.equal(await ask(peer, 'mode?'), expectedMode, 'the socket the handler got');
          // More than one proxied call moves (64 KiB), more than one kernel buffer.
          const big = randomBytes(300_001);
          assert.ok((await roundTrip(peer, big)).equals(big), 'byte-exact echo of 300 KB');
          assert.equal(server.connections, 1);
          peer.socket.end();
          await waitUntil(() => server.connections === 0, 5000, 'the connection ends');
          await waitUntil(() => peer.record.ended, 5000, 'the client sees the close');
          const again = await scope.connect(server);
          assert.equal((await roundTrip(again, Buffer.from('again'))).toString(), 'again');
          assert.equal(server.threadsStarted, 1, 'the idle thread served the next client');
          assert.equal(server.threads, 1);
        }),
    );

    test(
      'a blocking recv blocks only its own thread: timers run on time and another client is served meanwhile',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const server = await startServer(scope, engine, { handlerOptions: { greet: true } });
          const quiet = await scope.connect(server);
          assert.equal(await line(quiet, 0), 'ready', 'the handler is about to recv');

          // The main thread's timers while the quiet client's thread sits in recv.
          let maxLag = 0;
          let last = performance.now();
          const ticker = setInterval(() => {
            const now = performance.now();
            maxLag = Math.max(maxLag, now - last - 10);
            last = now;
          }, 10);
          const idleStarted = performance.now();
          try {
            // Served while the quiet client's thread is blocked (it has sent nothing).
            const busy = await scope.connect(server);
            assert.equal(await line(busy, 0), 'ready');
            for (let i = 0; i < 5; i++) {
              const msg = Buffer.from(`msg ${i}`);
              assert.equal((await roundTrip(busy, msg)).toString(), `msg ${i}`);
            }
            await delay(300 - (performance.now() - idleStarted));
          } finally {
            clearInterval(ticker);
          }
          assert.ok(maxLag < 150, `timers ran with small lag (max ${maxLag.toFixed(0)} ms)`);
          assert.equal(quiet.record.bytes, 'ready\n'.length, 'the quiet client got nothing else');
          const reply = await ask(quiet, 'time?');
          const waited = Number(/^waited=(\d+)$/.exec(reply)?.[1]);
          assert.ok(waited >= 250, `the recv blocked until the bytes came (${reply})`);
          assert.equal(server.connections, 2);
        }),
    );

    test(
      'maxThreads 2: a third client is not reset, waits, and is served once one of the first two leaves; the cap is logged once',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { logger, lines } = capturedLogger();
          const server = await startServer(scope, engine, { maxThreads: 2, logger });
          const a = await scope.connect(server);
          const b = await scope.connect(server);
          assert.equal((await roundTrip(a, Buffer.from('a'))).toString(), 'a');
          assert.equal((await roundTrip(b, Buffer.from('b'))).toString(), 'b');
          assert.equal(server.connections, 2);

          const c = await scope.connect(server);
          c.socket.write('c waits');
          await delay(400);
          assert.equal(c.record.bytes, 0, 'the third client is not served while two are');
          assert.equal(c.record.closed, false, 'nor reset or closed');
          assert.equal(c.record.error, null, `no error: ${String(c.record.error)}`);
          assert.equal(server.connections, 2);
          assert.equal(capWarnings(lines).length, 1, 'the cap is logged');

          a.socket.end();
          await c.atLeast('c waits'.length);
          assert.equal(c.all().toString(), 'c waits', 'served once a thread is free');
          assert.equal((await roundTrip(c, Buffer.from('more'))).toString(), 'more');

          // At the cap again: a fourth client waits for b to leave; no second warning.
          const d = await scope.connect(server);
          d.socket.write('d');
          await delay(200);
          assert.equal(d.record.bytes, 0);
          b.socket.end();
          await d.atLeast(1);
          assert.equal(d.all().toString(), 'd');
          assert.equal(capWarnings(lines).length, 1, 'the cap warning is logged once');
          assert.equal(server.threadsStarted, 2, 'two threads, reused');
          assert.ok(server.threads <= 2);
        }),
    );

    test(
      'stop() with a thread blocked in recv ends promptly and leaves no thread running',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const server = await startServer(scope, engine, { handlerOptions: { greet: true } });
          const blocked = await scope.connect(server);
          const other = await scope.connect(server);
          assert.equal(await line(blocked, 0), 'ready');
          assert.equal(await line(other, 0), 'ready');
          assert.equal((await roundTrip(other, Buffer.from('x'))).toString(), 'x');
          await delay(50);
          assert.equal(server.threads, 2);
          const started = performance.now();
          await within(server.stop({ deadlineMs: 5000 }), 4000, 'stop() resolves');
          const took = performance.now() - started;
          assert.ok(took < 2000, `a graceful stop ends blocked recvs (took ${took.toFixed(0)} ms)`);
          assert.equal(server.threads, 0, 'every thread has exited');
          assert.equal(server.connections, 0);
          await waitUntil(() => blocked.record.ended || blocked.record.closed, 5000, 'closed');
          assert.equal(server.listener.closed, true, 'the listener is closed');
          await within(server.stop(), 1000, 'stop() again');
        }),
    );

    test(
      'stop() with a handler stuck outside any socket call cuts it at the deadline; no thread is left',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { logger, lines } = capturedLogger();
          const server = await startServer(scope, engine, { logger });
          const stuck = await scope.connect(server);
          assert.equal((await roundTrip(stuck, Buffer.from('hi'))).toString(), 'hi');
          stuck.socket.write('hang');
          await delay(100);
          const started = performance.now();
          await within(server.stop({ deadlineMs: 300 }), 5000, 'stop() resolves');
          const took = performance.now() - started;
          assert.ok(took >= 250, `waited for the deadline (${took.toFixed(0)} ms)`);
          assert.equal(server.threads, 0, 'the stuck thread was terminated');
          assert.ok(
            lines.some((l) => l.level === 40 && /deadline/.test(l.msg)),
            'the cut is logged',
          );
        }),
    );

    test(
      'a handler that throws is logged and its connection closed; the server keeps serving',
      TEST_TIMEOUT,
      async () =>
        withScope(engine, async (scope) => {
          const { logger, lines } = capturedLogger();
          const server = await startServer(scope, engine, { logger });
          const failing = await scope.connect(server);
          assert.equal((await roundTrip(failing, Buffer.from('ok'))).toString(), 'ok');
          failing.socket.write('boom');
          await waitUntil(
            () => failing.record.ended || failing.record.closed,
            5000,
            'the connection is closed',
          );
          await waitUntil(() => server.connections === 0, 5000, 'the server lets it go');
          const logged = lines.find((l) => /boom from the test handler/.test(String(l.err)));
          assert.ok(logged, `the error is logged: ${JSON.stringify(lines)}`);

          const next = await scope.connect(server);
          assert.equal((await roundTrip(next, Buffer.from('still here'))).toString(), 'still here');
          assert.equal(server.threadsStarted, 1, 'the same thread serves the next client');
        }),
    );

    test('maxThreads outside 1..10000 is refused', TEST_TIMEOUT, async () =>
      withScope(engine, async (scope) => {
        const listener = await TcpListener.listen({ engine, host: '127.0.0.1', port: 0 });
        scope.defer(() => listener.close());
        for (const maxThreads of [0, 10_001, 1.5]) {
          assert.throws(
            () => ThreadPerConnectionServer.start({ listener, handler: HANDLER, maxThreads }),
            hasCode('OVL_ERR_INVALID_ARGUMENT'),
          );
        }
      }),
    );
  });
}
