/**
 * Echo deadlines over real sockets, on every engine and every model: a client
 * that never sends is closed by the idle deadline (a FIN, one info line
 * saying why); a client that never reads is reset by the write deadline; a
 * steady talker slower than neither deadline is never cut.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import type { EchoService } from '../../src/servers/echo/echo-base.js';
import {
  ECHO_MODELS,
  type EchoModel,
  startEchoServer,
} from '../../src/servers/echo/echo-models.js';
import {
  closed,
  connectClient,
  delay,
  destroyAll,
  echoRoundTrip,
  waitFor,
} from '../support/echo-fixture.js';
import { enginesUnderTest } from '../support/engines.js';
import { capturingLogger } from '../support/log-capture.js';

const MODELS: readonly EchoModel[] = ECHO_MODELS;

for (const e of enginesUnderTest()) {
  describe(`echo deadlines on ${e.name}`, { skip: e.skip ?? false }, () => {
    for (const model of MODELS) {
      const start = (options: { idleTimeoutMs?: number; writeTimeoutMs?: number }) => {
        const { logger, lines } = capturingLogger();
        return startEchoServer({
          model,
          engine: e.engine as NonNullable<typeof e.engine>,
          host: '127.0.0.1',
          port: 0,
          logger,
          ...options,
        }).then((server) => ({ server, lines }));
      };
      const expiries = (lines: Record<string, unknown>[], reason: string) =>
        lines.filter((l) => l.reason === reason && String(l.msg).startsWith('deadline passed'));

      test(`${model}: a client that never sends is closed by --idle-timeout, with one info line`, async () => {
        const { server, lines } = await start({ idleTimeoutMs: 300 });
        const sockets: Socket[] = [];
        try {
          const silent = await connectClient(server.address.port);
          sockets.push(silent);
          let ended = false;
          silent.on('end', () => {
            ended = true;
          });
          silent.resume();
          const t0 = performance.now();
          await closed(silent, 3000);
          const took = performance.now() - t0;
          assert.ok(took >= 250 && took < 1500, `closed after ${took.toFixed(0)} ms`);
          assert.ok(ended, 'the idle close is a FIN (end of stream), not a reset');
          assert.equal(expiries(lines, 'idle').length, 1, JSON.stringify(lines));
          assert.equal(
            lines.filter((l) => l.msg === 'connection error').length,
            0,
            'the timeout is said once',
          );
          await waitFor(() => server.connections === 0, 'the server let go of the connection');
        } finally {
          await destroyAll(sockets);
          await stop(server);
        }
      });

      test(`${model}: a steady talker (a message every 100 ms) is not cut by a 400 ms idle deadline`, async () => {
        const { server, lines } = await start({ idleTimeoutMs: 400, writeTimeoutMs: 400 });
        const sockets: Socket[] = [];
        try {
          const talker = await connectClient(server.address.port);
          sockets.push(talker);
          for (let i = 0; i < 15; i++) {
            const msg = Buffer.from(`tick ${i}`);
            assert.deepEqual(await echoRoundTrip(talker, msg, 2000), msg);
            await delay(100);
          }
          assert.equal(talker.closed, false);
          assert.equal(expiries(lines, 'idle').length + expiries(lines, 'write').length, 0);
        } finally {
          await destroyAll(sockets);
          await stop(server);
        }
      });

      test(`${model}: a client that keeps sending and never reads is reset by --write-timeout`, async () => {
        const { server, lines } = await start({ writeTimeoutMs: 500 });
        const sockets: Socket[] = [];
        try {
          const hog = await connectClient(server.address.port);
          sockets.push(hog);
          hog.pause();
          // Keep sending (up to 256 MiB) so that both directions' kernel buffers fill and the echo stalls.
          const chunk = Buffer.alloc(1024 * 1024, 1);
          let sent = 0;
          const pump = setInterval(() => {
            if (hog.closed || sent >= 256) clearInterval(pump);
            else if (hog.writableLength < 4 * chunk.length) {
              hog.write(chunk);
              sent++;
            }
          }, 5);
          try {
            await closed(hog, 8000);
          } finally {
            clearInterval(pump);
          }
          assert.equal(expiries(lines, 'write').length, 1, JSON.stringify(lines.slice(-5)));
          await waitFor(() => server.connections === 0, 'the server let go of the connection');
        } finally {
          await destroyAll(sockets);
          await stop(server);
        }
      });
    }
  });
}

async function stop(server: EchoService): Promise<void> {
  await server.stop({ deadlineMs: 1000 });
}
