/**
 * The echo server, in each of its three models (completion port, event
 * objects, completion routines), over real loopback sockets, driven by plain
 * `node:net` clients: byte-exact echoes, many clients at once, flow control
 * under a slow reader, half-close, resets, the connection cap and graceful stop.
 *
 * Random payloads come from one seeded PRNG per test; the seed is in every
 * assertion message (replay with OVERLAPPED_TEST_SEED=<seed>).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { pendingApcs } from '../../src/core/apc.js';
import type { EchoService } from '../../src/servers/echo/echo-base.js';
import { ECHO_MODELS, type EchoModel } from '../../src/servers/echo/echo-models.js';
import { EventsEchoServer } from '../../src/servers/echo/events-echo-server.js';
import {
  assertSameBytes,
  closeClient,
  closed,
  connectClient,
  delay,
  destroyAll,
  echoRoundTrip,
  lastError,
  runSeed,
  SeededRandom,
  startEcho,
  waitFor,
  waitForConnections,
} from '../support/echo-fixture.js';

/** The models that receive into buffers of their own per connection, or pooled ones. */
const OVERLAPPED_MODELS: readonly EchoModel[] = ['completion-port', 'events', 'routines'];

const KiB = 1024;
const MiB = 1024 * KiB;

/** tcp_wmem's maximum: how much one kernel send buffer may grow to (Linux); else 4 MiB. */
function kernelSendBufferMax(): number {
  try {
    const max = Number(readFileSync('/proc/sys/net/ipv4/tcp_wmem', 'utf8').trim().split(/\s+/)[2]);
    if (Number.isSafeInteger(max) && max > 0) return Math.min(max, 28 * MiB);
  } catch {
    // Not Linux: assume Linux's default.
  }
  return 4 * MiB;
}

/** Runs `body` with a fresh server and the clients it registers; cleans both up whatever happens. */
async function withServerOf(
  model: EchoModel,
  body: (server: EchoService, clients: Set<Socket>) => Promise<void>,
  options: Parameters<typeof startEcho>[0] = {},
): Promise<void> {
  const server = await startEcho({ model, ...options });
  const clients = new Set<Socket>();
  try {
    await body(server, clients);
  } finally {
    await destroyAll(clients);
    await server.stop({ deadlineMs: 1000 });
  }
}

/** Connects a client and registers it for cleanup. */
async function client(server: EchoService, clients: Set<Socket>): Promise<Socket> {
  const socket = await connectClient(server.address.port);
  clients.add(socket);
  return socket;
}

/** Collects everything `socket` receives until it closes; records how it ended. */
function collectUntilClose(socket: Socket): {
  chunks: Buffer[];
  ended: () => boolean;
  done: Promise<Buffer>;
} {
  const chunks: Buffer[] = [];
  let sawEnd = false;
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.once('end', () => {
    sawEnd = true;
  });
  return {
    chunks,
    ended: () => sawEnd,
    done: closed(socket, 15_000).then(() => Buffer.concat(chunks)),
  };
}

for (const model of ECHO_MODELS) {
  const withServer = (
    body: (server: EchoService, clients: Set<Socket>) => Promise<void>,
    options: Parameters<typeof startEcho>[0] = {},
  ) => withServerOf(model, body, options);

  describe(`echo server, ${model} model, this thread's engine, over loopback`, () => {
    it('listens on 127.0.0.1 at the port the OS picked', async () => {
      await withServer(async (server) => {
        assert.equal(server.address.address, '127.0.0.1');
        assert.ok(server.address.port > 0, `port ${server.address.port}`);
        assert.equal(server.connections, 0);
        assert.equal(server.refused, 0);
      });
    });

    it('echoes payloads byte-exact around the 8 KiB buffer and 64 KiB boundaries, up to 1 MiB', async () => {
      const rng = new SeededRandom(runSeed());
      await withServer(async (server, clients) => {
        for (const size of [1, 2, 8191, 8192, 8193, 65535, 65536, MiB]) {
          const socket = await client(server, clients);
          const data = rng.bytes(size);
          const echoed = await echoRoundTrip(socket, data);
          assertSameBytes(echoed, data, `size ${size}, seed ${rng.seed}`);
          await closeClient(socket);
          clients.delete(socket);
        }
        await waitForConnections(server, 0);
      });
    });

    it('a receive buffer per connection (pooled: false; pooled receives are the default): 20 clients echo byte-exact', async () => {
      const rng = new SeededRandom(runSeed());
      await withServer(
        async (server, clients) => {
          const sockets = await Promise.all(
            Array.from({ length: 20 }, () => client(server, clients)),
          );
          await Promise.all(
            sockets.map(async (socket, i) => {
              for (const size of [1, 8192, 8193, 100_000]) {
                const data = rng.bytes(size);
                assertSameBytes(
                  await echoRoundTrip(socket, data),
                  data,
                  `client ${i}, size ${size}, seed ${rng.seed}`,
                );
              }
            }),
          );
          assert.equal(server.connections, 20);
        },
        { pooled: false },
      );
    });

    if (OVERLAPPED_MODELS.includes(model)) {
      it('receives into pool buffers by default, into a buffer per connection with a bufferSize', async () => {
        await withServer(async (server) => assert.equal(server.pooled, true));
        await withServer(async (server) => assert.equal(server.pooled, false), {
          bufferSize: 4096,
        });
        await withServer(async (server) => assert.equal(server.pooled, false), { pooled: false });
      });

      it('pooled receives with a bufferSize are refused: they say two different things', async () => {
        await assert.rejects(startEcho({ model, pooled: true, bufferSize: 4096 }), {
          code: 'OVL_ERR_INVALID_ARGUMENT',
          message: /give one or the other/,
        });
      });
    } else {
      it('keeps no receive buffer per connection, and says nothing of pooled receives', async () => {
        await withServer(async (server) => assert.equal(server.pooled, undefined));
      });
    }

    it('echoes any payload of 1..200000 bytes byte-exact (property, fresh connection each)', async () => {
      await withServer(async (server, clients) => {
        await fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 1, max: 200_000 }),
            fc.integer({ min: 0, max: 0xffff_ffff }),
            async (size, seed) => {
              const socket = await client(server, clients);
              try {
                const data = new SeededRandom(seed).bytes(size);
                const echoed = await echoRoundTrip(socket, data);
                assertSameBytes(echoed, data, `size ${size}, payload seed ${seed}`);
              } finally {
                await closeClient(socket);
                clients.delete(socket);
              }
            },
          ),
          { numRuns: 25 },
        );
        await waitForConnections(server, 0);
      });
    });

    // A thread per client: the blocking model serves 100 at once, with its thread cap raised to that.
    const concurrent = model === 'blocking' ? 100 : 200;
    it(`serves ${concurrent} concurrent clients, each byte-exact, and frees them all`, async () => {
      const rng = new SeededRandom(runSeed());
      await withServer(
        async (server, clients) => {
          const sockets = await Promise.all(
            Array.from({ length: concurrent }, () => client(server, clients)),
          );
          const payloads = sockets.map(() => rng.bytes(rng.int(1, 64 * KiB)));
          const echoes = await Promise.all(
            sockets.map((s, i) => echoRoundTrip(s, payloads[i] as Buffer)),
          );
          echoes.forEach((echoed, i) => {
            assertSameBytes(echoed, payloads[i] as Buffer, `client ${i}, seed ${rng.seed}`);
          });
          // Every client has had its echo, so every one of them was accepted and is still open.
          assert.equal(server.connections, concurrent);
          if (server instanceof EventsEchoServer) {
            assert.equal(server.waitLoops, 4, 'one wait loop per 63 clients: 200 need 4');
          }
          await Promise.all(sockets.map((s) => closeClient(s)));
          await waitForConnections(server, 0);
        },
        model === 'blocking' ? { maxThreads: concurrent } : {},
      );
    });

    it('holds back a client that does not read (flow control), then echoes it all byte-exact', async () => {
      const rng = new SeededRandom(runSeed());
      // The two kernels' send buffers alone can hold 2 x tcp_wmem max (8 MiB with Linux
      // defaults) whatever the server does, so the client sends 8 MiB beyond that.
      const total = 8 * MiB + 2 * kernelSendBufferMax();
      await withServer(async (server, clients) => {
        const socket = await client(server, clients);
        socket.pause();
        const data = rng.bytes(total);
        // One 64 KiB write at a time, each after the last one's callback: `accepted`
        // counts exactly the bytes the client's kernel has taken.
        let accepted = 0;
        let writeError: Error | undefined;
        const writer = (async () => {
          for (let offset = 0; offset < data.length; offset += 64 * KiB) {
            const chunk = data.subarray(offset, offset + 64 * KiB);
            await new Promise<void>((resolve, reject) =>
              socket.write(chunk, (err) => (err ? reject(err) : resolve())),
            );
            accepted += chunk.length;
          }
        })().catch((err: Error) => {
          writeError = err;
        });
        // The server echoes only as fast as its sends complete, and they cannot while the
        // client does not read: it must stop receiving, so the client's writes back up.
        // Wait (up to 5 s) for a stall before sampling: a loaded machine, or a model that
        // starts a thread per client, takes a while to fill every buffer, and may pause for
        // a scheduling slice on the way, so a stall is 300 ms without progress, not 100.
        for (let last = -1, still = 0, waited = 0; still < 3 && waited < 5000; waited += 100) {
          await delay(100);
          const now = data.length - accepted;
          still = now === last ? still + 1 : 0;
          last = now;
        }
        const samples: string[] = [];
        const unsent: number[] = [];
        for (let i = 0; i < 6; i++) {
          await delay(100);
          unsent.push(data.length - accepted);
          samples.push(`${data.length - accepted}/${socket.writableLength}`);
        }
        const report = `unsent/writableLength every 100 ms: ${samples.join(', ')}`;
        assert.equal(writeError, undefined, `the client's write failed: ${String(writeError)}`);
        assert.ok(
          Math.min(...unsent) >= 4 * MiB,
          `the server went on reading although its echo could not be sent (${report})`,
        );
        const drift = (unsent[1] as number) - (unsent[unsent.length - 1] as number);
        assert.ok(drift <= 512 * KiB, `the client kept sending while it read nothing (${report})`);
        assert.ok(socket.writableLength > 0, `nothing waits in the client's writes (${report})`);
        assert.equal(server.connections, 1);

        // Read slowly: ~256 KiB at a time, pausing a few ms between steps.
        const chunks: Buffer[] = [];
        let got = 0;
        let sinceStep = 0;
        let steps = 0;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const done = new Promise<void>((resolve, reject) => {
          socket.on('data', (chunk: Buffer) => {
            chunks.push(chunk);
            got += chunk.length;
            sinceStep += chunk.length;
            if (got >= data.length) resolve();
            else if (sinceStep >= 256 * KiB) {
              sinceStep = 0;
              steps++;
              socket.pause();
              setTimeout(() => socket.resume(), 3);
            }
          });
          socket.once('close', () => reject(new Error(`closed after ${got} bytes`)));
          timer = setTimeout(
            () => reject(new Error(`only ${got} of ${data.length} bytes in 15 s`)),
            15_000,
          );
        });
        socket.resume();
        try {
          await done;
        } finally {
          clearTimeout(timer);
        }
        await writer;
        assert.equal(writeError, undefined, `the client's write failed: ${String(writeError)}`);
        assert.equal(accepted, data.length);
        assert.ok(steps >= 16, `the reader paused only ${steps} times`);
        assertSameBytes(Buffer.concat(chunks), data, `${total}-byte slow read, seed ${rng.seed}`);
        await closeClient(socket);
        await waitForConnections(server, 0);
      });
    });

    it('after a client half-closes, echoes everything it sent, then ends the stream and frees it', async () => {
      const rng = new SeededRandom(runSeed());
      await withServer(async (server, clients) => {
        const socket = await client(server, clients);
        const received = collectUntilClose(socket);
        const data = rng.bytes(300 * KiB);
        socket.end(data);
        const echoed = await received.done;
        assertSameBytes(echoed, data, `half-close echo, seed ${rng.seed}`);
        assert.ok(received.ended(), 'the client saw no end of stream (FIN) from the server');
        assert.equal(lastError(socket), undefined, `client error: ${lastError(socket)?.message}`);
        await waitForConnections(server, 0);
      });
    });

    it('keeps serving other clients when one resets mid-transfer, and frees the reset one', async () => {
      const rng = new SeededRandom(runSeed());
      await withServer(async (server, clients) => {
        const other = await client(server, clients);
        const first = rng.bytes(64 * KiB);
        assertSameBytes(await echoRoundTrip(other, first), first, `before reset, seed ${rng.seed}`);

        const resetter = await client(server, clients);
        await waitForConnections(server, 2);
        resetter.write(rng.bytes(MiB));
        resetter.resetAndDestroy();

        const during = rng.bytes(512 * KiB);
        assertSameBytes(
          await echoRoundTrip(other, during),
          during,
          `during reset, seed ${rng.seed}`,
        );
        await waitForConnections(server, 1);
        const after = rng.bytes(100 * KiB);
        assertSameBytes(await echoRoundTrip(other, after), after, `after reset, seed ${rng.seed}`);

        const late = await client(server, clients);
        const lateData = rng.bytes(10 * KiB);
        assertSameBytes(
          await echoRoundTrip(late, lateData),
          lateData,
          `new client, seed ${rng.seed}`,
        );
        await Promise.all([closeClient(other), closeClient(late)]);
        await waitForConnections(server, 0);
      });
    });

    it('refuses clients past maxConnections with a reset and keeps serving the others', async () => {
      const rng = new SeededRandom(runSeed());
      await withServer(
        async (server, clients) => {
          const a = await client(server, clients);
          const b = await client(server, clients);
          for (const [name, socket] of [
            ['a', a],
            ['b', b],
          ] as const) {
            const data = rng.bytes(20 * KiB);
            assertSameBytes(await echoRoundTrip(socket, data), data, `${name}, seed ${rng.seed}`);
          }
          assert.equal(server.connections, 2);

          // The refusal can reach the client before its own connect callback has run (the
          // uring engine resets within microseconds): a connect failing with ECONNRESET is a refusal too.
          const third = connect(server.address.port, '127.0.0.1');
          third.on('error', () => {});
          clients.add(third);
          const thirdGot = collectUntilClose(third);
          third.write('are you there?');
          const thirdEcho = await thirdGot.done;
          assert.equal(
            thirdEcho.length,
            0,
            `the refused client received ${thirdEcho.length} bytes`,
          );
          assert.equal(server.refused, 1);
          assert.equal(server.connections, 2);

          for (const [name, socket] of [
            ['a', a],
            ['b', b],
          ] as const) {
            const data = rng.bytes(100 * KiB);
            assertSameBytes(
              await echoRoundTrip(socket, data),
              data,
              `${name} after refusal, seed ${rng.seed}`,
            );
          }

          // A freed place is served again.
          await closeClient(a);
          await waitForConnections(server, 1);
          const d = await client(server, clients);
          const data = rng.bytes(5 * KiB);
          assertSameBytes(await echoRoundTrip(d, data), data, `after a left, seed ${rng.seed}`);
          assert.equal(server.refused, 1);
          await Promise.all([closeClient(b), closeClient(d)]);
          await waitForConnections(server, 0);
        },
        { maxConnections: 2 },
      );
    });

    it('stops gracefully: idle client closed, in-flight echo ends on a byte-exact prefix, stop() idempotent', async () => {
      const rng = new SeededRandom(runSeed());
      const server = await startEcho({ model });
      const clients = new Set<Socket>();
      try {
        const idle = await client(server, clients);
        const ping = rng.bytes(100);
        assertSameBytes(await echoRoundTrip(idle, ping), ping, `idle ping, seed ${rng.seed}`);
        const idleGot = collectUntilClose(idle);

        const busy = await client(server, clients);
        const busyGot = collectUntilClose(busy);
        const data = rng.bytes(4 * MiB);
        for (let offset = 0; offset < data.length; offset += 64 * KiB) {
          busy.write(data.subarray(offset, offset + 64 * KiB));
        }
        const bytes = () => busyGot.chunks.reduce((n, c) => n + c.length, 0);
        await waitFor(() => bytes() >= 128 * KiB, 'the first 128 KiB of the echo');

        const started = Date.now();
        const stopping = server.stop();
        assert.equal(server.stop(), stopping, 'a second stop() returns the same promise');
        await stopping;
        const tookMs = Date.now() - started;
        assert.ok(tookMs < 4000, `stop() took ${tookMs} ms with an echo in flight`);
        assert.equal(server.connections, 0);
        assert.equal(pendingApcs(), 0, 'no completion routine left queued');

        const [idleEcho, busyEcho] = await Promise.all([idleGot.done, busyGot.done]);
        assert.equal(idleEcho.length, 0, 'the idle client received bytes during stop');
        assert.ok(
          idleGot.ended(),
          'the idle client saw no end of stream: it should be closed, not reset',
        );
        assert.ok(busyEcho.length >= 128 * KiB && busyEcho.length <= data.length);
        assertSameBytes(
          busyEcho,
          data.subarray(0, busyEcho.length),
          `the in-flight client's echo (a prefix of what it sent), seed ${rng.seed}`,
        );

        await server.stop();
        // Nothing listens any more.
        const refused = await new Promise<string>((resolve) => {
          const probe = connect({ host: '127.0.0.1', port: server.address.port });
          probe.once('connect', () => {
            probe.destroy();
            resolve('connected');
          });
          probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        });
        assert.equal(refused, 'ECONNREFUSED');
      } finally {
        await destroyAll(clients);
        await server.stop();
      }
    });

    it('stops at once when no client is connected', async () => {
      const server = await startEcho({ model });
      const started = Date.now();
      await server.stop();
      const tookMs = Date.now() - started;
      assert.ok(tookMs < 500, `stop() of an idle server took ${tookMs} ms`);
      assert.equal(server.connections, 0);
      await server.stop();
    });

    it('frees the records of 50 short-lived clients (polite, reset, and silent ones)', async () => {
      const rng = new SeededRandom(runSeed());
      await withServer(async (server, clients) => {
        for (let round = 0; round < 5; round++) {
          const batch = await Promise.all(
            Array.from({ length: 10 }, () => client(server, clients)),
          );
          await Promise.all(
            batch.map(async (socket, i) => {
              if (i % 3 === 0) {
                const data = rng.bytes(rng.int(1, 16 * KiB));
                assertSameBytes(await echoRoundTrip(socket, data), data, `seed ${rng.seed}`);
                await closeClient(socket);
              } else if (i % 3 === 1) {
                socket.write(rng.bytes(rng.int(1, 4 * KiB)));
                socket.resetAndDestroy();
                await closed(socket);
              } else {
                await closeClient(socket);
              }
              clients.delete(socket);
            }),
          );
        }
        await waitForConnections(server, 0);
        assert.equal(server.refused, 0);
      });
    });
  });
}

describe('echo servers of every model side by side on one thread', () => {
  it('each echoes its own clients, and each stops while the others keep serving', async () => {
    // Two routines servers share this thread's APC queue: each must still see its own stop.
    const models = [...ECHO_MODELS, 'routines' as const];
    const servers = await Promise.all(models.map((model) => startEcho({ model })));
    const rng = new SeededRandom(runSeed());
    const clients = new Set<Socket>();
    try {
      for (let i = 0; i < servers.length; i++) {
        for (const server of servers.slice(i)) {
          const socket = await connectClient(server.address.port);
          clients.add(socket);
          const data = rng.bytes(rng.int(1, 20 * KiB));
          assertSameBytes(await echoRoundTrip(socket, data), data, `seed ${rng.seed}`);
          await closeClient(socket);
          clients.delete(socket);
        }
        await (servers[i] as EchoService).stop({ deadlineMs: 1000 });
      }
    } finally {
      await destroyAll(clients);
      await Promise.all(servers.map((s) => s.stop({ deadlineMs: 1000 })));
    }
  });
});
