/**
 * One acceptor and N session worker threads (src/threads/) over real
 * sockets: connections land on every thread and echo byte-exact, broadcast
 * and sendTo reach sessions on other threads, stop drains every thread and
 * leaves none running, a thread that throws stops the server cleanly, and
 * the node engine is refused with the reason.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { OverlappedError } from '../../src/core/errors.js';
import { ThreadedSessionServer } from '../../src/threads/threaded-session-server.js';
import { closed, connectClient, destroyAll, waitFor } from '../support/echo-fixture.js';
import { enginesUnderTest, readExactly } from '../support/engines.js';

const HANDLERS = new URL('../support/thread-handlers.js', import.meta.url);

function pattern(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = ((seed * 7919 + i) * 2654435761) >>> 24;
  return b;
}

async function readLine(socket: Socket, timeoutMs = 5000): Promise<string> {
  let line = '';
  for (;;) {
    const b = await readExactly(socket, 1, timeoutMs);
    if (b[0] === 0x0a) return line;
    line += b.toString();
  }
}

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`threaded session server on ${name}`, { skip: skip ?? false }, () => {
    if (engine?.adopt === undefined) {
      it('is refused with the reason: this engine cannot hand sockets to threads', async () => {
        await assert.rejects(
          ThreadedSessionServer.start({ threads: 2, engine: name, handlers: HANDLERS }),
          (err: unknown) =>
            err instanceof OverlappedError &&
            err.code === 'OVL_ERR_NOT_SUPPORTED' &&
            /reusePort needs Node 22\.12/.test(err.message),
        );
      });
      return;
    }

    it('--threads 2: connections land on both threads, echo byte-exact, reach each other, and stop leaves no thread', async () => {
      const server = await ThreadedSessionServer.start({
        threads: 2,
        engine: name,
        handlers: HANDLERS,
      });
      const clients = new Set<Socket>();
      try {
        const port = server.address.port;
        const sockets: Socket[] = [];
        for (let i = 0; i < 8; i++) {
          const s = await connectClient(port);
          clients.add(s);
          sockets.push(s);
        }
        const where: { thread: number; key: number }[] = [];
        for (const s of sockets) {
          s.write('where\n');
          const [, thread, key] = (await readLine(s)).match(/^thread (\d+) key (\d+)$/) ?? [];
          where.push({ thread: Number(thread), key: Number(key) });
        }
        assert.deepEqual(
          [...new Set(where.map((w) => w.thread))].sort(),
          [0, 1],
          `threads: ${JSON.stringify(where)}`,
        );
        assert.deepEqual(server.assigned, [4, 4], 'round robin');

        await Promise.all(
          sockets.map(async (s, i) => {
            const data = pattern(i, 256 * 1024 + i);
            const back = readExactly(s, data.length, 15_000);
            s.write(data);
            assert.ok((await back).equals(data), `client ${i}: byte-exact`);
          }),
        );

        // A session on thread 0 reaches one on thread 1, and everyone else.
        const a = where.findIndex((w) => w.thread === 0);
        const b = where.findIndex((w) => w.thread === 1);
        (sockets[a] as Socket).write(`to ${(where[b] as { key: number }).key} direct\n`);
        assert.equal(await readLine(sockets[b] as Socket), 'direct');
        (sockets[a] as Socket).write('all hello everyone\n');
        for (let i = 0; i < sockets.length; i++) {
          if (i !== a) assert.equal(await readLine(sockets[i] as Socket), 'hello everyone');
        }
        server.broadcast(Buffer.from('from the acceptor\n'));
        for (const s of sockets) assert.equal(await readLine(s), 'from the acceptor');
        server.sendTo((where[a] as { key: number }).key, Buffer.from('just you\n'));
        assert.equal(await readLine(sockets[a] as Socket), 'just you');

        const report = await server.stop({ deadlineMs: 2000 });
        assert.equal(server.stop(), server.stop(), 'idempotent');
        assert.equal(report.drained, 8);
        assert.equal(report.reset, 0);
        assert.deepEqual(
          report.threads.map((t) => t.accepted),
          [4, 4],
        );
        assert.equal(server.running, 0, 'no thread left running');
        for (const s of sockets) {
          s.resume();
          await closed(s);
        }
      } finally {
        await destroyAll(clients);
        await server.stop({ deadlineMs: 0 });
      }
    });

    it('a thread that throws is reported and the server stops cleanly', async () => {
      const errors: Error[] = [];
      const server = await ThreadedSessionServer.start({
        threads: 2,
        engine: name,
        handlers: HANDLERS,
        onError: (err) => errors.push(err),
      });
      const clients = new Set<Socket>();
      try {
        const port = server.address.port;
        const first = await connectClient(port);
        const second = await connectClient(port);
        clients.add(first);
        clients.add(second);
        first.write('where\n');
        assert.match(await readLine(first), /^thread 0 /);
        second.write('where\n');
        assert.match(await readLine(second), /^thread 1 /);
        first.write('crash\n');
        await waitFor(() => errors.length > 0, 'the failure report');
        const err = errors[0] as OverlappedError;
        assert.equal(err.code, 'OVL_ERR_THREAD_FAILED');
        assert.match(err.message, /thread 0 failed \(thread 0 crashed on purpose\)/);
        assert.ok(server.stopping, 'the server stops');
        const report = await server.stop();
        assert.ok(report.threads[0]?.error instanceof Error);
        assert.equal(report.threads[1]?.drained, 1, 'the other thread drained its session');
        assert.equal(server.running, 0);
        // Paused by readExactly: resume so the end of stream (or reset) is seen.
        second.resume();
        first.resume();
        await closed(second);
        await closed(first);
      } finally {
        await destroyAll(clients);
        await server.stop({ deadlineMs: 0 });
      }
    });
  });
}
