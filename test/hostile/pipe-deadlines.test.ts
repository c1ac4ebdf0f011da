/**
 * Pipe server deadlines over real Unix sockets, on every engine: a slowloris
 * that sends a frame one byte at a time is cut by the read deadline, a
 * client that connects and says nothing by the idle deadline (each told
 * `OVL_ERR_TIMEOUT` in a control frame, with one info line on the server),
 * a client that sends requests but never reads the replies is reset by the
 * write deadline, and a steady client is never cut.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import type { Engine } from '../../src/engines/contract.js';
import { PipeClient } from '../../src/servers/pipe/pipe-client.js';
import { PipeServer, type PipeServerOptions } from '../../src/servers/pipe/pipe-server.js';
import { closed, delay } from '../support/echo-fixture.js';
import { enginesUnderTest } from '../support/engines.js';
import { capturingLogger } from '../support/log-capture.js';
import { tempPipeDir, unixOnly, within } from '../support/pipe-fixture.js';

async function withServer(
  engine: Engine,
  options: Omit<PipeServerOptions, 'engine' | 'logger'>,
  body: (server: PipeServer, lines: Record<string, unknown>[]) => Promise<void>,
): Promise<void> {
  const tmp = tempPipeDir();
  const { logger, lines } = capturingLogger();
  const server = await PipeServer.start({ engine, name: tmp.path(), logger, ...options });
  try {
    await body(server, lines);
  } finally {
    await server.stop({ deadlineMs: 1000 });
    tmp.remove();
  }
}

/** A raw client that collects everything the server sends. */
function rawClient(path: string): { socket: net.Socket; received: () => Buffer } {
  const socket = net.connect({ path });
  socket.on('error', () => {});
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  return { socket, received: () => Buffer.concat(chunks) };
}

const expiries = (lines: Record<string, unknown>[], reason: string) =>
  lines.filter((l) => l.reason === reason && String(l.msg).startsWith('deadline passed')).length;

describe('pipe server deadlines', { skip: unixOnly }, () => {
  for (const e of enginesUnderTest()) {
    const engine = e.engine as Engine;
    const skip = e.skip ?? false;

    test(`${e.name}: a slowloris (one byte every 150 ms) is cut by --read-timeout`, {
      skip,
    }, async () => {
      await withServer(
        engine,
        { readTimeoutMs: 400, idleTimeoutMs: 5000 },
        async (server, lines) => {
          const { socket, received } = rawClient(server.path);
          const frame = Buffer.concat([Buffer.from([0, 0, 0, 64]), Buffer.alloc(64, 0x61)]);
          let i = 0;
          const t0 = performance.now();
          const drip = setInterval(() => {
            if (socket.writable && i < frame.length) socket.write(frame.subarray(i, ++i));
          }, 150);
          try {
            await closed(socket, 4000);
          } finally {
            clearInterval(drip);
          }
          const took = performance.now() - t0;
          assert.ok(took < 1500, `cut after ${took.toFixed(0)} ms`);
          assert.ok(i < frame.length, 'cut before the frame was whole');
          assert.match(received().toString('latin1'), /OVL_ERR_TIMEOUT read deadline/);
          assert.equal(expiries(lines, 'read'), 1);
          assert.equal(server.instances, 0);
        },
      );
    });

    test(`${e.name}: a client that says nothing is cut by --idle-timeout`, { skip }, async () => {
      await withServer(engine, { idleTimeoutMs: 300 }, async (server, lines) => {
        const { socket, received } = rawClient(server.path);
        const t0 = performance.now();
        await closed(socket, 3000);
        const took = performance.now() - t0;
        assert.ok(took >= 250 && took < 1500, `closed after ${took.toFixed(0)} ms`);
        assert.match(received().toString('latin1'), /OVL_ERR_TIMEOUT idle deadline/);
        assert.equal(expiries(lines, 'idle'), 1);
      });
    });

    test(`${e.name}: a client that never reads its replies is reset by --write-timeout`, {
      skip,
    }, async () => {
      const echo = (request: Buffer) => Buffer.from(request);
      await withServer(engine, { writeTimeoutMs: 300, handler: echo }, async (server, lines) => {
        const { socket } = rawClient(server.path);
        socket.pause();
        const request = Buffer.concat([Buffer.from([0, 1, 0, 0]), Buffer.alloc(65536, 0x62)]);
        const pump = setInterval(() => {
          if (!socket.closed && socket.writableLength < 1024 * 1024) socket.write(request);
        }, 5);
        try {
          await closed(socket, 8000);
        } finally {
          clearInterval(pump);
        }
        assert.equal(expiries(lines, 'write'), 1, JSON.stringify(lines.slice(-3)));
        assert.equal(server.instances, 0);
      });
    });

    test(`${e.name}: a steady client (a request every 100 ms) is not cut by 300 ms deadlines`, {
      skip,
    }, async () => {
      await withServer(
        engine,
        { idleTimeoutMs: 300, readTimeoutMs: 300, writeTimeoutMs: 300 },
        async (server, lines) => {
          const client = await PipeClient.connect(server.path, { engine });
          try {
            for (let i = 0; i < 15; i++) {
              const reply = await within(client.transact(`tick ${i}`), 2000, 'a reply');
              assert.equal(reply.toString(), 'Default answer from server');
              await delay(100);
            }
          } finally {
            client.close();
          }
          assert.equal(lines.filter((l) => String(l.msg).startsWith('deadline passed')).length, 0);
        },
      );
    });
  }
});
