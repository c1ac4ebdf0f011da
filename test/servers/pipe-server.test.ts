/**
 * The pipe server end to end, with PipeClient and raw node:net clients:
 * request/reply pairing under load, the instance limit and waitNamedPipe,
 * over-size requests, clients that vanish, handlers, and graceful stop.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { describe, test } from 'node:test';
import { OverlappedError } from '../../src/core/errors.js';
import { PipeClient, waitNamedPipe } from '../../src/servers/pipe/pipe-client.js';
import { PipeServer, type PipeServerOptions } from '../../src/servers/pipe/pipe-server.js';
import { delay, runSeed, SeededRandom, waitFor } from '../support/echo-fixture.js';
import { engine, frame, tempPipeDir, unixOnly, within } from '../support/pipe-fixture.js';

async function withServer(
  options: Omit<PipeServerOptions, 'engine'>,
  body: (server: PipeServer) => Promise<void>,
): Promise<void> {
  const tmp = tempPipeDir();
  const server = await PipeServer.start({ engine: engine(), name: tmp.path(), ...options });
  try {
    await body(server);
  } finally {
    await server.stop({ deadlineMs: 1000 });
    tmp.remove();
  }
}

const echoHandler = (request: Buffer) => Buffer.from(request);

describe('pipe server', { skip: unixOnly }, () => {
  test("answers 'Default answer from server' by default, as the seeds do", async () => {
    await withServer({}, async (server) => {
      const client = await PipeClient.connect(server.path);
      assert.equal((await client.transact('hello')).toString(), 'Default answer from server');
      client.close();
    });
  });

  test('100 concurrent clients x 1000 request/replies, each paired with its own reply', async () => {
    await withServer({ handler: echoHandler }, async (server) => {
      const clients = 100;
      const rounds = 1000;
      const started = performance.now();
      await within(
        Promise.all(
          Array.from({ length: clients }, async (_, c) => {
            const client = await PipeClient.connect(server.path);
            try {
              for (let i = 0; i < rounds; i++) {
                const request = `client ${c} request ${i}`;
                const reply = await client.transact(request);
                if (reply.toString() !== request) {
                  assert.fail(`client ${c} got '${reply.toString()}' for '${request}'`);
                }
              }
            } finally {
              client.close();
            }
          }),
        ),
        30_000,
        '100 x 1000 transactions',
      );
      const seconds = (performance.now() - started) / 1000;
      assert.equal(server.transactions, clients * rounds);
      // Not a benchmark; a guard against a per-transaction stall (a timer, a lost wake-up).
      assert.ok(seconds < 20, `took ${seconds.toFixed(1)} s`);
    });
  });

  test('pipelined transacts on one client and async handlers keep request/reply order', async () => {
    const rng = new SeededRandom(runSeed());
    await withServer(
      {
        handler: async (request) => {
          await delay(rng.int(0, 2));
          return Buffer.concat([Buffer.from('re:'), request]);
        },
      },
      async (server) => {
        const client = await PipeClient.connect(server.path);
        const replies = await Promise.all(
          Array.from({ length: 50 }, (_, i) => client.transact(`m${i}`)),
        );
        assert.deepEqual(
          replies.map(String),
          Array.from({ length: 50 }, (_, i) => `re:m${i}`),
        );
        client.close();
      },
    );
  });

  test('messages from 0 B to the limit round-trip whole, larger than the read buffers', async () => {
    const rng = new SeededRandom(runSeed());
    const maxMessage = 200 * 1024;
    await withServer({ handler: echoHandler, maxMessage, bufferSize: 4096 }, async (server) => {
      const client = await PipeClient.connect(server.path, { maxMessage });
      for (const size of [0, 1, 4095, 4096, 4097, 65_536, 100_000, maxMessage]) {
        const request = rng.bytes(size);
        const reply = await client.transact(request);
        assert.ok(reply.equals(request), `${size} B, seed ${rng.seed}`);
      }
      client.close();
    });
  });

  test('instance limit: a client past it is refused with OVL_ERR_PIPE_BUSY; waitNamedPipe times out, then succeeds', async () => {
    await withServer({ instances: 2 }, async (server) => {
      const a = await PipeClient.connect(server.path);
      const b = await PipeClient.connect(server.path);
      const t0 = performance.now();
      await assert.rejects(PipeClient.connect(server.path), { code: 'OVL_ERR_PIPE_BUSY' });
      assert.ok(performance.now() - t0 < 1000, 'refused at once, not left in the backlog');
      const t1 = performance.now();
      assert.equal(await waitNamedPipe(server.path, 200), false);
      const waited = performance.now() - t1;
      assert.ok(waited >= 190 && waited < 2000, `waitNamedPipe waited ${waited.toFixed(0)} ms`);
      await assert.rejects(PipeClient.connect(server.path, { timeoutMs: 100 }), {
        code: 'OVL_ERR_PIPE_BUSY',
        message: /stayed busy for 100 ms/,
      });
      setTimeout(() => a.close(), 150);
      assert.equal(await waitNamedPipe(server.path, 5000), true);
      const c = await PipeClient.connect(server.path, { timeoutMs: 5000 });
      assert.equal((await c.transact('x')).toString(), 'Default answer from server');
      assert.equal((await b.transact('y')).toString(), 'Default answer from server');
      assert.ok(server.refused >= 3);
      b.close();
      c.close();
    });
  });

  test('an over-size request gets OVL_ERR_MESSAGE_TOO_LARGE and a close; other clients carry on', async () => {
    await withServer({ handler: echoHandler, maxMessage: 1024 }, async (server) => {
      const bystander = await PipeClient.connect(server.path);
      const big = await PipeClient.connect(server.path);
      const pending = bystander.transact('before');
      await assert.rejects(big.transact(Buffer.alloc(100_000)), (err: unknown) => {
        assert.ok(err instanceof OverlappedError);
        assert.equal(err.code, 'OVL_ERR_MESSAGE_TOO_LARGE');
        assert.match(err.message, /at most 1024 bytes/);
        return true;
      });
      await assert.rejects(big.read(), { code: 'OVL_ERR_BROKEN_PIPE' });
      assert.equal((await pending).toString(), 'before');
      assert.equal((await bystander.transact('after')).toString(), 'after');
      assert.equal((await bystander.transact(Buffer.alloc(1024, 1))).length, 1024);
      big.close();
      bystander.close();
      await waitFor(() => server.instances === 0, 'instances freed');
    });
  });

  test('a client that vanishes mid-message frees its instance and disturbs no one', async () => {
    await withServer({ handler: echoHandler }, async (server) => {
      const steady = await PipeClient.connect(server.path);
      const raw = net.connect(server.path);
      raw.on('error', () => {});
      await new Promise((resolve) => raw.once('data', resolve)); // READY
      raw.write(frame(Buffer.alloc(5000)).subarray(0, 2000));
      await waitFor(() => server.instances === 2, 'two instances');
      raw.destroy();
      await waitFor(() => server.instances === 1, 'the vanished client freed');
      assert.equal((await steady.transact('still here')).toString(), 'still here');
      steady.close();
    });
  });

  test('a handler that throws: the client gets OVL_ERR_HANDLER_FAILED and the connection stays', async () => {
    await withServer(
      {
        handler: (request) => {
          if (request.toString() === 'boom') throw new Error('kaboom');
          return request;
        },
      },
      async (server) => {
        const client = await PipeClient.connect(server.path);
        await assert.rejects(client.transact('boom'), {
          code: 'OVL_ERR_HANDLER_FAILED',
          message: /kaboom/,
        });
        assert.equal((await client.transact('fine')).toString(), 'fine');
        client.close();
      },
    );
  });

  test('byte mode: raw bytes both ways, no frames', async () => {
    await withServer({ mode: 'byte', handler: (r) => r.toString().toUpperCase() }, async (s) => {
      const raw = net.connect(s.path);
      const reply = await new Promise<string>((resolve, reject) => {
        raw.once('data', (d) => resolve(d.toString()));
        raw.once('error', reject);
        raw.write('shout');
      });
      assert.equal(reply, 'SHOUT');
      raw.destroy();
      const client = await PipeClient.connect(s.path, { mode: 'byte' });
      assert.equal((await client.transact('abc')).toString(), 'ABC');
      client.close();
    });
  });

  test('graceful stop: in-flight transactions finish, idle clients are closed, no socket file is left', async () => {
    const tmp = tempPipeDir();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered = false;
    const server = await PipeServer.start({
      engine: engine(),
      name: tmp.path(),
      handler: async (r) => {
        entered = true;
        if (r.toString() === 'slow') await gate;
        return r;
      },
    });
    try {
      const idle = await PipeClient.connect(server.path);
      const busy = await PipeClient.connect(server.path);
      const inFlight = busy.transact('slow');
      await waitFor(() => server.instances === 2 && entered, 'the slow request in the handler');
      const stopped = server.stop({ deadlineMs: 5000 });
      assert.equal(existsSync(server.path), false, 'the socket file goes at once');
      await assert.rejects(idle.read(), { code: 'OVL_ERR_BROKEN_PIPE' });
      release();
      assert.equal((await inFlight).toString(), 'slow', 'the transaction in flight finished');
      await within(stopped, 5000, 'stop');
      assert.equal(server.instances, 0);
      await assert.rejects(PipeClient.connect(server.path), { code: 'OVL_ERR_PIPE_NOT_FOUND' });
      idle.close();
      busy.close();
    } finally {
      await server.stop();
      tmp.remove();
    }
  });

  test('a second server on a live name fails with OVL_ERR_PIPE_NAME_IN_USE', async () => {
    await withServer({}, async (server) => {
      await assert.rejects(PipeServer.start({ engine: engine(), name: server.path }), {
        code: 'OVL_ERR_PIPE_NAME_IN_USE',
      });
      const client = await PipeClient.connect(server.path);
      assert.equal((await client.transact('x')).toString(), 'Default answer from server');
      client.close();
    });
  });
});

describe('pipe client against the wrong mode', { skip: unixOnly }, () => {
  test('a message-mode client of a byte-mode server fails after readyTimeoutMs, not hangs', async () => {
    await withServer({ mode: 'byte' }, async (server) => {
      const t0 = performance.now();
      await assert.rejects(PipeClient.connect(server.path, { readyTimeoutMs: 200 }), {
        code: 'OVL_ERR_PIPE_PROTOCOL',
        message: /no READY within 200 ms/,
      });
      assert.ok(performance.now() - t0 < 2000);
    });
  });
});
