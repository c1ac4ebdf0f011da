/**
 * The node engine's every-core server: a cluster of worker processes behind
 * the primary's shared listener. Connections land on both workers and echo
 * byte-exact, broadcast and sendTo cross processes, stop drains every worker
 * and leaves none running, and a worker that throws stops the server.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import type { OverlappedError } from '../../src/core/errors.js';
import { ClusteredSessionServer } from '../../src/threads/clustered-session-server.js';
import { closed, connectClient, destroyAll, waitFor } from '../support/echo-fixture.js';
import { readExactly } from '../support/engines.js';

const HANDLERS = new URL('../support/thread-handlers.js', import.meta.url);

async function readLine(socket: Socket, timeoutMs = 5000): Promise<string> {
  let line = '';
  for (;;) {
    const b = await readExactly(socket, 1, timeoutMs);
    if (b[0] === 0x0a) return line;
    line += b.toString();
  }
}

describe('clustered session server (node engine)', () => {
  it('2 workers: connections land on both, echo byte-exact, reach each other, and stop leaves none', async () => {
    const server = await ClusteredSessionServer.start({ threads: 2, handlers: HANDLERS });
    const clients = new Set<Socket>();
    try {
      const sockets: Socket[] = [];
      const where: { thread: number; key: number }[] = [];
      for (let i = 0; i < 8; i++) {
        const s = await connectClient(server.address.port);
        clients.add(s);
        sockets.push(s);
        s.write('where\n');
        const [, thread, key] = (await readLine(s)).match(/^thread (\d+) key (\d+)$/) ?? [];
        where.push({ thread: Number(thread), key: Number(key) });
      }
      const threads = where.map((w) => w.thread);
      assert.deepEqual([...new Set(threads)].sort(), [0, 1], `workers: ${threads.join(',')}`);
      await Promise.all(
        sockets.map(async (s, i) => {
          const data = Buffer.alloc(200_000 + i, i + 7);
          const back = readExactly(s, data.length, 15_000);
          s.write(data);
          assert.ok((await back).equals(data), `client ${i}`);
        }),
      );
      const a = threads.indexOf(0);
      const b = threads.indexOf(1);
      (sockets[a] as Socket).write(`to ${(where[b] as { key: number }).key} across\n`);
      assert.equal(await readLine(sockets[b] as Socket), 'across');
      (sockets[b] as Socket).write('all to everyone\n');
      for (let i = 0; i < sockets.length; i++) {
        if (i !== b) assert.equal(await readLine(sockets[i] as Socket), 'to everyone');
      }
      server.broadcast(Buffer.from('primary\n'));
      for (const s of sockets) assert.equal(await readLine(s), 'primary');
      const report = await server.stop({ deadlineMs: 2000 });
      assert.equal(report.drained, 8);
      assert.equal(
        report.threads.reduce((n, t) => n + t.accepted, 0),
        8,
      );
      assert.equal(server.running, 0, 'no worker process left');
      for (const s of sockets) {
        s.resume();
        await closed(s);
      }
    } finally {
      await destroyAll(clients);
      await server.stop({ deadlineMs: 0 });
    }
  });

  it('a worker that throws is reported and the server stops cleanly', async () => {
    const errors: Error[] = [];
    const server = await ClusteredSessionServer.start({
      threads: 2,
      handlers: HANDLERS,
      onError: (err) => errors.push(err),
    });
    const clients = new Set<Socket>();
    try {
      const s = await connectClient(server.address.port);
      clients.add(s);
      s.write('crash\n');
      await waitFor(() => errors.length > 0, 'the failure report', 10_000);
      assert.equal((errors[0] as OverlappedError).code, 'OVL_ERR_THREAD_FAILED');
      assert.match((errors[0] as Error).message, /crashed on purpose/);
      await server.stop();
      assert.equal(server.running, 0);
      s.resume();
      await closed(s);
    } finally {
      await destroyAll(clients);
      await server.stop({ deadlineMs: 0 });
    }
  });
});
