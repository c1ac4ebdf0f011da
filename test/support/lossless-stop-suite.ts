/**
 * A graceful stop loses nothing: clients stream 4 KiB messages, stop
 * sending the moment the server is told to stop, and must get every byte
 * they sent echoed, exactly, followed by a clean end of stream (a FIN, no
 * reset); the server's own counters say it echoed everything it read, and
 * nothing was reset. A client that never reads is reset at the deadline, and
 * the stop ends within the deadline plus a second. Every engine; the
 * models a test file names (two files share the models, each within the
 * runner's per-file time limit).
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import type { EchoService } from '../../src/servers/echo/echo-base.js';
import { type EchoModel, startEchoServer } from '../../src/servers/echo/echo-models.js';
import { closed, connectClient, delay, destroyAll } from './echo-fixture.js';
import { enginesUnderTest } from './engines.js';
import { type StreamingClient, stream } from './streaming-client.js';

export function losslessStopSuite(models: readonly EchoModel[]): void {
  for (const e of enginesUnderTest()) {
    describe(`lossless stop on ${e.name}`, { skip: e.skip ?? false }, () => {
      for (const model of models) {
        const start = () =>
          startEchoServer({
            model,
            engine: e.engine as NonNullable<typeof e.engine>,
            host: '127.0.0.1',
            port: 0,
          });

        test(`${model}: an idle client and 20 streaming clients that stop when the server stops get every byte back and a FIN`, async () => {
          const server = await start();
          const clients: StreamingClient[] = [];
          try {
            // One client that says nothing: quiet from the start, it gets a FIN too.
            const idle = stream(await connectClient(server.address.port), 99);
            idle.stopSending();
            clients.push(idle);
            for (let i = 0; i < 20; i++) {
              clients.push(stream(await connectClient(server.address.port), i));
            }
            await delay(300);
            for (const c of clients) c.stopSending();
            const t0 = performance.now();
            // The drain's speed is not under test (a loaded machine is slow): its losslessness is.
            await server.stop({ deadlineMs: 30_000 });
            const took = performance.now() - t0;
            await Promise.all(clients.map((c) => closed(c.socket, 10_000)));
            let written = 0;
            for (const [i, c] of clients.entries()) {
              assert.equal(c.wrong, null);
              assert.equal(c.error, null, `client ${i}: ${c.error?.message}`);
              assert.ok(c.ended, `client ${i} got no end of stream`);
              assert.equal(
                c.received,
                c.written,
                `client ${i}: ${c.received} of ${c.written} bytes echoed`,
              );
              written += c.written;
            }
            assert.ok(written > 0);
            const s = server as EchoService;
            assert.equal(s.bytesReceived, written, 'the server read every byte sent');
            assert.equal(s.bytesEchoed, s.bytesReceived, 'the server echoed every byte it read');
            assert.equal(s.resetAtStop, 0);
            assert.ok(took < 30_000, `the drain took ${took.toFixed(0)} ms`);
          } finally {
            await destroyAll(clients.map((c) => c.socket));
            await server.stop({ deadlineMs: 1000 });
          }
        });

        test(`${model}: a client that never reads is reset at the deadline; the stop ends within deadline + 1 s`, async () => {
          const server = await start();
          const sockets: Socket[] = [];
          try {
            const hog = await connectClient(server.address.port);
            sockets.push(hog);
            hog.pause();
            hog.write(Buffer.alloc(16 * 1024 * 1024, 3));
            await delay(300);
            const t0 = performance.now();
            await server.stop({ deadlineMs: 1000 });
            const took = performance.now() - t0;
            assert.ok(took >= 900 && took < 2000, `the stop took ${took.toFixed(0)} ms`);
            assert.equal(server.resetAtStop, 1);
            assert.equal(server.connections, 0);
          } finally {
            await destroyAll(sockets);
          }
        });
      }
    });
  }
}
