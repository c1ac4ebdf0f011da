/**
 * The session framework on every engine, over real loopback sockets with
 * plain node:net clients: hook order and exactly-once close, coalesced
 * sends (counted through the framework's send counter, not timed), a slow
 * reader, each queue policy, stale keys, post/onPost, broadcast to 1,000
 * sessions at one copy, and graceful and abortive stops.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { OverlappedError } from '../../src/core/errors.js';
import { unsentTail } from '../../src/servers/session/session.js';
import { KeyRegistry, SLOT_SPACE } from '../../src/servers/session/session-keys.js';
import {
  type CloseReason,
  type Session,
  type SessionHandlers,
  SessionServer,
  type SessionServerOptions,
} from '../../src/servers/session/session-server.js';
import {
  closed,
  connectClient,
  delay,
  destroyAll,
  lastError,
  waitFor,
} from '../support/echo-fixture.js';
import { enginesUnderTest, readExactly } from '../support/engines.js';

const KiB = 1024;

/** Bytes 0..n-1 of a pattern that shows misordering (each 4-byte word is its offset). */
function pattern(offset: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = ((offset + i) * 2654435761) >>> 24;
  return b;
}

/** Reads from `socket` until it closes; resolves with every byte (errors end it too). */
function readAll(socket: Socket, timeoutMs = 15_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(
      () => reject(new Error(`still open after ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.resume();
  });
}

interface Harness<D> {
  server: SessionServer<D>;
  clients: Set<Socket>;
  connect(): Promise<Socket>;
}

async function withServer<D = unknown>(
  engine: NonNullable<ReturnType<typeof enginesUnderTest>[number]['engine']>,
  options: SessionServerOptions<D>,
  body: (h: Harness<D>) => Promise<void>,
): Promise<void> {
  const server = await SessionServer.start<D>({ engine, ...options });
  const clients = new Set<Socket>();
  try {
    await body({
      server,
      clients,
      async connect() {
        const s = await connectClient(server.address.port);
        clients.add(s);
        return s;
      },
    });
  } finally {
    await destroyAll(clients);
    await server.destroy();
  }
}

describe('KeyRegistry', () => {
  it('a deleted key goes stale for good, even when its slot is reused', () => {
    const keys = new KeyRegistry<string>();
    const a = keys.add('a');
    assert.equal(keys.get(a), 'a');
    assert.ok(keys.delete(a));
    assert.equal(keys.delete(a), false, 'a second delete finds nothing');
    const b = keys.add('b');
    assert.equal(b % SLOT_SPACE, a % SLOT_SPACE, 'the slot is reused');
    assert.notEqual(b, a);
    assert.equal(keys.get(a), undefined);
    assert.equal(keys.get(b), 'b');
    assert.equal(keys.get(-1), undefined);
    assert.equal(keys.get(1.5), undefined);
    assert.deepEqual([...keys], ['b']);
    assert.equal(keys.size, 1);
  });
});

describe('partial sends', () => {
  it('the unsent tail of a gathered send starts at the first unsent byte, in order', () => {
    const parts = [Buffer.from('abc'), Buffer.from('defg'), Buffer.from('h')];
    const tail = (sent: number) => Buffer.concat(unsentTail(parts, sent)).toString();
    assert.equal(tail(0), 'abcdefgh');
    assert.equal(tail(2), 'cdefgh');
    assert.equal(tail(3), 'defgh');
    assert.equal(tail(5), 'fgh');
    assert.equal(tail(7), 'h');
    assert.equal(unsentTail(parts, 8).length, 0);
    assert.equal(unsentTail(parts, 5)[0]?.buffer, parts[1]?.buffer, 'sliced, not copied');
  });
});

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`SessionServer on ${name}`, { skip: skip ?? false }, () => {
    const e = engine as NonNullable<typeof engine>;

    it('hooks run in order: accept, receive, send completed, then close exactly once', async () => {
      const events: string[] = [];
      const reasons: CloseReason[] = [];
      const handlers: SessionHandlers = {
        onAccept: (s) => events.push(`accept ${s.key}`),
        onReceive: (s, bytes) => {
          events.push(`receive ${bytes.toString()}`);
          s.send(Buffer.from(`echo ${bytes.toString()}`));
        },
        onSendCompleted: (_s, n) => events.push(`sent ${n}`),
        onClose: (s, reason) => {
          events.push(`close ${reason.code}`);
          reasons.push(reason);
          // Calls after the end change nothing and fire nothing.
          s.close();
          s.destroy();
          assert.equal(s.send(Buffer.from('late')), false);
        },
      };
      await withServer(e, { handlers }, async ({ server, connect }) => {
        const client = await connect();
        client.write('hi');
        assert.equal((await readExactly(client, 7)).toString(), 'echo hi');
        await waitFor(() => events.includes('sent 7'), 'the send completion');
        client.end();
        await waitFor(() => reasons.length > 0, 'onClose');
        await delay(50);
        const key = Number((events[0] as string).split(' ')[1]);
        assert.deepEqual(events, [`accept ${key}`, 'receive hi', 'sent 7', 'close peer-closed']);
        assert.equal(server.get(key), undefined, 'the key is deleted by onClose');
        assert.equal(server.size, 0);
        await closed(client);
      });
    });

    it('close() flushes queued sends then FIN; destroy() resets; each ends once', async () => {
      const closes: string[] = [];
      const sessions: Session[] = [];
      await withServer(
        e,
        {
          handlers: {
            onAccept: (s) => sessions.push(s),
            onClose: (_s, r) => closes.push(r.code),
          },
        },
        async ({ connect }) => {
          const a = await connect();
          const b = await connect();
          await waitFor(() => sessions.length === 2, 'two sessions');
          const [sa, sb] = sessions as [Session, Session];
          const payload = pattern(0, 256 * KiB);
          const gotA = readAll(a);
          assert.ok(sa.send(payload));
          sa.close();
          sa.close();
          assert.equal(sa.send(Buffer.from('x')), false, 'no sends after close()');
          assert.deepEqual(await gotA, payload, 'graceful close delivers every queued byte');
          sb.destroy();
          sb.destroy();
          sb.close();
          await closed(b);
          await waitFor(() => closes.length === 2, 'both onClose');
          await delay(50);
          assert.deepEqual(closes.sort(), ['closed', 'destroyed']);
        },
      );
    });

    it('sends made while one is in flight leave in at most two gathered socket sends', async () => {
      const parts = 500;
      const size = 1000;
      let session: Session | undefined;
      await withServer(
        e,
        {
          handlers: {
            onAccept: (s) => {
              session = s;
              for (let i = 0; i < parts; i++) s.send(pattern(i * size, size));
            },
          },
        },
        async ({ server, connect }) => {
          const client = await connect();
          const got = await readExactly(client, parts * size);
          assert.deepEqual(got, pattern(0, parts * size), 'byte-exact, in order');
          const s = session as Session;
          await waitFor(() => s.queuedBytes === 0, 'the queue to drain');
          assert.ok(s.sendsPosted <= 2, `${s.sendsPosted} socket sends for ${parts} send() calls`);
          assert.equal(server.stats.sends, s.sendsPosted);
          assert.ok(s.sendsPosted >= 1);
        },
      );
    });

    it('a slow reader gets every byte, in order, and the queue drains to 0', async () => {
      const total = 4 * 1024 * KiB;
      const chunk = 16 * KiB;
      let session: Session | undefined;
      await withServer(
        e,
        {
          maxQueuedBytes: 8 * 1024 * KiB,
          handlers: {
            onAccept: (s) => {
              session = s;
              for (let off = 0; off < total; off += chunk) s.send(pattern(off, chunk));
            },
          },
        },
        async ({ server, connect }) => {
          const client = await connect();
          client.pause();
          await delay(300);
          const s = session as Session;
          assert.ok(s.queuedBytes > 0, 'the reader has not drained anything yet');
          // Read in small steps with pauses: the server's sends stay in flight a long time.
          const chunks: Buffer[] = [];
          let got = 0;
          while (got < total) {
            const piece = await readExactly(client, Math.min(256 * KiB, total - got));
            chunks.push(piece);
            got += piece.length;
            await delay(5);
          }
          assert.deepEqual(Buffer.concat(chunks), pattern(0, total));
          await waitFor(() => s.queuedBytes === 0, 'the queue to drain');
          assert.equal(server.stats.bytesSent, total);
        },
      );
    });

    it("policy 'disconnect': a peer that stops reading is reset at the cap, and onClose says why", async () => {
      const reasons: CloseReason[] = [];
      const results: boolean[] = [];
      await withServer(
        e,
        {
          maxQueuedBytes: 256 * KiB,
          handlers: {
            onAccept: (s) => {
              for (let i = 0; i < 6; i++) results.push(s.send(Buffer.alloc(64 * KiB, i)));
            },
            onClose: (_s, r) => reasons.push(r),
          },
        },
        async ({ server, connect }) => {
          const client = await connect();
          client.pause();
          await waitFor(() => reasons.length === 1, 'onClose');
          assert.deepEqual(results, [true, true, true, true, false, false]);
          assert.equal(reasons[0]?.code, 'send-queue-full');
          assert.equal(server.stats.cutOff, 1);
          client.resume();
          await closed(client);
        },
      );
    });

    it('idleTimeoutMs: a silent peer gets a FIN and onClose idle-timeout; a steady talker is never cut', async () => {
      const reasons = new Map<number, CloseReason>();
      await withServer(
        e,
        {
          idleTimeoutMs: 300,
          handlers: {
            onReceive: (s, bytes) => s.send(bytes),
            onClose: (s, r) => reasons.set(s.key, r),
          },
        },
        async ({ server, connect }) => {
          const silent = await connect();
          const talker = await connect();
          let ended = false;
          silent.on('end', () => {
            ended = true;
          });
          silent.resume();
          for (let i = 0; i < 10; i++) {
            talker.write(`tick ${i}`);
            await readExactly(talker, `tick ${i}`.length);
            await delay(100);
          }
          await closed(silent, 3000);
          assert.ok(ended, 'the idle close is a FIN');
          assert.equal(talker.closed, false, 'the talker is still connected');
          const [reason] = [...reasons.values()];
          assert.equal(reasons.size, 1);
          assert.equal(reason?.code, 'idle-timeout');
          assert.ok(reason?.error instanceof OverlappedError);
          assert.equal((reason?.error as OverlappedError | undefined)?.code, 'OVL_ERR_TIMEOUT');
          assert.equal(server.stats.timedOut, 1);
        },
      );
    });

    it('writeTimeoutMs: a peer that takes no byte of a send is reset with onClose write-timeout', async () => {
      const reasons: CloseReason[] = [];
      await withServer(
        e,
        {
          writeTimeoutMs: 400,
          maxQueuedBytes: 64 * 1024 * KiB,
          highWaterMark: 64 * 1024 * KiB,
          handlers: {
            onAccept: (s) => {
              // More than both kernels' buffers hold: the send stalls once the peer stops reading.
              for (let i = 0; i < 32; i++) s.send(Buffer.alloc(1024 * KiB, i));
            },
            onClose: (_s, r) => reasons.push(r),
          },
        },
        async ({ server, connect }) => {
          const client = await connect();
          client.pause();
          await waitFor(() => reasons.length === 1, 'onClose', 8000);
          assert.equal(reasons[0]?.code, 'write-timeout');
          assert.equal((reasons[0]?.error as OverlappedError | undefined)?.code, 'OVL_ERR_TIMEOUT');
          assert.equal(server.stats.timedOut, 1);
          client.resume();
          await closed(client);
        },
      );
    });

    it("policy 'drop': the send past the cap is refused with OVL_ERR_SESSION_QUEUE_FULL and the session stays", async () => {
      let session: Session | undefined;
      let refused: unknown;
      await withServer(
        e,
        {
          maxQueuedBytes: 256 * KiB,
          queuePolicy: 'drop',
          handlers: {
            onAccept: (s) => {
              session = s;
              for (let i = 0; i < 4; i++) s.send(pattern(i * 64 * KiB, 64 * KiB));
              try {
                s.send(Buffer.alloc(1));
              } catch (err) {
                refused = err;
              }
            },
          },
        },
        async ({ server, connect }) => {
          const client = await connect();
          await waitFor(() => session !== undefined, 'the session');
          assert.ok(
            refused instanceof OverlappedError,
            `expected a refusal, got ${String(refused)}`,
          );
          assert.equal(refused.code, 'OVL_ERR_SESSION_QUEUE_FULL');
          assert.match(refused.message, /maxQueuedBytes 262144/);
          assert.equal(server.stats.dropped, 1);
          const s = session as Session;
          assert.ok(s.open);
          assert.deepEqual(await readExactly(client, 256 * KiB), pattern(0, 256 * KiB));
          await waitFor(() => s.queuedBytes === 0, 'the queue to drain');
          assert.ok(s.send(Buffer.from('tail')));
          assert.equal((await readExactly(client, 4)).toString(), 'tail');
        },
      );
    });

    it("policy 'backpressure': writable turns false above the high-water mark and onWritable fires at the low one", async () => {
      const high = 64 * KiB;
      const low = 16 * KiB;
      const chunk = 8 * KiB;
      const total = 2 * 1024 * KiB;
      let sent = 0;
      let writableEvents = 0;
      let maxQueued = 0;
      const pump = (s: Session) => {
        while (s.writable && sent < total) {
          s.send(pattern(sent, chunk));
          sent += chunk;
          maxQueued = Math.max(maxQueued, s.queuedBytes);
        }
      };
      await withServer(
        e,
        {
          queuePolicy: 'backpressure',
          highWaterMark: high,
          lowWaterMark: low,
          handlers: {
            onAccept: pump,
            onWritable: (s) => {
              writableEvents++;
              assert.ok(s.queuedBytes <= low, `onWritable at ${s.queuedBytes} queued bytes`);
              pump(s);
            },
          },
        },
        async ({ connect }) => {
          const client = await connect();
          const got = await readExactly(client, total, 20_000);
          assert.deepEqual(got, pattern(0, total));
          assert.ok(writableEvents >= 1, 'onWritable fired');
          assert.ok(maxQueued <= high + chunk, `queued up to ${maxQueued}`);
        },
      );
    });

    it("policy 'backpressure': a producer that ignores writable meets the hard cap", async () => {
      const reasons: string[] = [];
      await withServer(
        e,
        {
          queuePolicy: 'backpressure',
          maxQueuedBytes: 128 * KiB,
          handlers: {
            onAccept: (s) => {
              for (let i = 0; i < 4; i++) s.send(Buffer.alloc(48 * KiB));
            },
            onClose: (_s, r) => reasons.push(r.code),
          },
        },
        async ({ connect }) => {
          const client = await connect();
          client.pause();
          await waitFor(() => reasons.length === 1, 'onClose');
          assert.deepEqual(reasons, ['send-queue-full']);
        },
      );
    });

    it('a stale key never reaches the session that reuses its slot', async () => {
      const sessions: Session[] = [];
      let closes = 0;
      await withServer(
        e,
        { handlers: { onAccept: (s) => sessions.push(s), onClose: () => closes++ } },
        async ({ server, connect }) => {
          const a = await connect();
          await waitFor(() => sessions.length === 1, 'session a');
          const keyA = (sessions[0] as Session).key;
          assert.equal(server.get(keyA), sessions[0]);
          a.end();
          await waitFor(() => closes === 1, 'a to end');
          assert.equal(server.get(keyA), undefined);
          await connect();
          await waitFor(() => sessions.length === 2, 'session b');
          const b = sessions[1] as Session;
          assert.equal(b.key % SLOT_SPACE, keyA % SLOT_SPACE, 'b reuses the slot');
          assert.notEqual(b.key, keyA);
          assert.equal(server.get(keyA), undefined, 'the stale key finds nothing');
          assert.equal(server.get(b.key), b);
          assert.deepEqual([...server], [b]);
        },
      );
    });

    it('post() packets reach onPost in order, with the very key and value', async () => {
      const posted: [unknown, unknown][] = [];
      const value = { n: 1 };
      await withServer(
        e,
        { handlers: { onPost: (key, v) => posted.push([key, v]) } },
        async ({ server }) => {
          server.post('first', value);
          server.post(42);
          assert.equal(posted.length, 0, 'never delivered inside post()');
          await waitFor(() => posted.length === 2, 'both packets');
          assert.equal(posted[0]?.[0], 'first');
          assert.equal(posted[0]?.[1], value);
          assert.deepEqual(posted[1], [42, undefined]);
          await server.stop();
          assert.throws(
            () => server.post('late'),
            (err: unknown) => err instanceof OverlappedError && err.code === 'OVL_ERR_PORT_CLOSED',
          );
        },
      );
    });

    it('broadcast reaches 1,000 sessions with one copy of the bytes', async () => {
      const n = 1000;
      // Above the node engine's staging limit (64 KiB): smaller sends it copies into
      // its per-turn stage on purpose, which would hide what the framework copies.
      const size = 96 * KiB;
      await withServer(e, { maxSessions: 2000 }, async ({ server, connect }) => {
        const clients: Socket[] = [];
        for (let i = 0; i < n; i += 100) {
          clients.push(...(await Promise.all(Array.from({ length: 100 }, () => connect()))));
        }
        await waitFor(() => server.size === n, `${n} sessions`, 20_000);
        const payload = pattern(0, size);
        const before = process.memoryUsage().arrayBuffers;
        const taken = server.broadcast(payload);
        const grown = process.memoryUsage().arrayBuffers - before;
        assert.equal(taken, n);
        assert.ok(
          grown < 8 * size,
          `broadcast grew array buffers by ${grown} bytes for ${n} sessions`,
        );
        const got = await Promise.all(clients.map((c) => readExactly(c, size, 30_000)));
        for (const g of got) assert.ok(g.equals(payload));
        const excluded = [...server][0] as Session;
        assert.equal(
          server.broadcast(Buffer.from('!'), (s) => s !== excluded),
          n - 1,
        );
      });
    });

    it('stop drains every session, resets one that never reads at the deadline, and is idempotent', async () => {
      const closes: string[] = [];
      const sessions: Session[] = [];
      await withServer(
        e,
        {
          maxQueuedBytes: 64 * 1024 * KiB,
          handlers: { onAccept: (s) => sessions.push(s), onClose: (_s, r) => closes.push(r.code) },
        },
        async ({ server, connect }) => {
          const readers = [await connect(), await connect()];
          const stuck = await connect();
          stuck.pause();
          await waitFor(() => sessions.length === 3, 'three sessions');
          const got = readers.map((c) => readAll(c));
          for (const s of sessions) s.send(pattern(0, 8 * 1024 * KiB));
          const first = server.stop({ deadlineMs: 1500 });
          assert.equal(server.stop(), first);
          assert.equal(server.close(), first);
          const report = await first;
          for (const g of await Promise.all(got)) assert.deepEqual(g, pattern(0, 8 * 1024 * KiB));
          assert.deepEqual(report, { drained: 2, reset: 1 });
          assert.equal(closes.length, 3);
          assert.equal(server.size, 0);
          stuck.resume();
          await closed(stuck);
          assert.ok(lastError(stuck) === undefined || /ECONNRESET/.test(String(lastError(stuck))));
        },
      );
    });

    it('a hook that throws resets its session and the server carries on', async () => {
      const errors: Error[] = [];
      const reasons: CloseReason[] = [];
      await withServer(
        e,
        {
          onError: (err) => errors.push(err),
          handlers: {
            onReceive: (s, bytes) => {
              if (bytes.toString() === 'boom') throw new Error('handler boom');
              s.send(bytes);
            },
            onClose: (_s, r) => reasons.push(r),
          },
        },
        async ({ connect }) => {
          const bad = await connect();
          bad.write('boom');
          await waitFor(() => reasons.length === 1, 'onClose');
          assert.equal(reasons[0]?.code, 'handler-failed');
          assert.equal(reasons[0]?.error?.message, 'handler boom');
          assert.equal(errors.length, 1);
          await closed(bad);
          const good = await connect();
          good.write('fine');
          assert.equal((await readExactly(good, 4)).toString(), 'fine');
        },
      );
    });
  });
}
