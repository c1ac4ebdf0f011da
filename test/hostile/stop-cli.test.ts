/**
 * `overlapped echo` stopped by a signal, as an operator stops it: streaming
 * clients that stop sending at the SIGTERM get every byte back and a FIN,
 * the process exits 0, and its last line (`stopped`) reports nothing left
 * open, pending or reset. A second signal while a stop waits on a client
 * that never reads exits at once with 143.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import type { EchoModel } from '../../src/servers/echo/echo-models.js';
import { MAIN } from '../support/cli-runner.js';
import { type EchoChild, portOf, watchEchoChild } from '../support/echo-child.js';
import { closed, connectClient, delay, destroyAll } from '../support/echo-fixture.js';
import { enginesUnderTest } from '../support/engines.js';
import { type StreamingClient, stream } from '../support/streaming-client.js';

/** Every model drains (lossless-stop.test.ts); the CLI path is shared, so four of them cover it. */
const CLI_MODELS: EchoModel[] = ['completion-port', 'events', 'routines', 'select'];

function startEcho(engine: string, args: string[]): EchoChild {
  const child = spawn(process.execPath, [MAIN, 'echo', '--port', '0', '--quiet', ...args], {
    env: { ...process.env, OVERLAPPED_ENGINE: engine },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return watchEchoChild(child);
}

for (const e of enginesUnderTest()) {
  describe(`echo stop by signal on ${e.name}`, { skip: e.skip ?? false }, () => {
    for (const model of CLI_MODELS) {
      test(`${model}: SIGTERM drains 10 streaming clients; 'stopped' reports 0 open, 0 pending, 0 reset`, async () => {
        const server = startEcho(e.name, ['--model', model]);
        const clients: StreamingClient[] = [];
        try {
          const port = await portOf(server);
          for (let i = 0; i < 10; i++) clients.push(stream(await connectClient(port), i));
          await delay(300);
          for (const c of clients) c.stopSending();
          const t0 = performance.now();
          server.child.kill('SIGTERM');
          const code = await server.exited;
          const took = performance.now() - t0;
          await Promise.all(clients.map((c) => closed(c.socket, 5000)));
          assert.equal(code, 0);
          const stopped = server.lines.at(-1);
          assert.equal(stopped?.msg, 'stopped');
          assert.deepEqual([stopped?.open, stopped?.pending, stopped?.reset], [0, 0, 0]);
          for (const [i, c] of clients.entries()) {
            assert.equal(c.wrong, null);
            assert.equal(c.error, null, `client ${i}: ${c.error?.message}`);
            assert.ok(c.ended, `client ${i}: no end of stream`);
            assert.equal(
              c.received,
              c.written,
              `client ${i}: ${c.received} of ${c.written} echoed`,
            );
          }
          assert.ok(took < 6000, `the stop took ${took.toFixed(0)} ms`);
        } finally {
          await destroyAll(clients.map((c) => c.socket));
          server.child.kill('SIGKILL');
        }
      });
    }

    test('a client that never reads: the stop ends by the deadline (5 s + 1 s); a second SIGTERM exits 143 at once', async () => {
      for (const second of [false, true]) {
        const server = startEcho(e.name, []);
        const port = await portOf(server);
        const hog = await connectClient(port);
        try {
          hog.pause();
          hog.write(Buffer.alloc(16 * 1024 * 1024, 5));
          await delay(300);
          const t0 = performance.now();
          server.child.kill('SIGTERM');
          if (second) {
            await delay(200);
            server.child.kill('SIGTERM');
          }
          const code = await server.exited;
          const took = performance.now() - t0;
          if (second) {
            assert.equal(code, 143);
            assert.ok(took < 1500, `the second signal took ${took.toFixed(0)} ms to exit`);
          } else {
            assert.equal(code, 0);
            assert.ok(took < 6000, `the stop took ${took.toFixed(0)} ms`);
            const stopped = server.lines.at(-1);
            assert.equal(stopped?.msg, 'stopped');
            assert.equal(stopped?.reset, 1);
          }
        } finally {
          hog.destroy();
          server.child.kill('SIGKILL');
        }
      }
    });
  });
}
