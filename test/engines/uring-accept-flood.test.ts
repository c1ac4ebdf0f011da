/**
 * A flood of connections on the uring engine: its multishot accept takes
 * connections from the kernel before anyone posts an accept, but once
 * `backlog` of them wait it stops, so the rest wait in the kernel's listen
 * backlog instead of being accepted and reset. Every client is served in the
 * end, none is refused.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { CompletionPort } from '../../src/core/completion-port.js';
import { Overlapped } from '../../src/core/overlapped.js';
import { TcpListener } from '../../src/core/tcp-listener.js';
import { delay, enginesUnderTest, next, readExactly } from '../support/engines.js';

const uring = enginesUnderTest().find((e) => e.name === 'uring');

describe('uring engine under a flood of connections', { skip: uring?.skip ?? false }, () => {
  test('clients past the ready queue wait in the kernel backlog and are all accepted later', async () => {
    const engine = uring?.engine;
    assert.ok(engine !== undefined);
    const port = new CompletionPort<string, unknown>({ concurrency: 1 });
    // The kernel's own backlog (at least 128 here) holds what the engine's queue of 8 does not.
    const listener = await TcpListener.listen({ engine, host: '127.0.0.1', port: 0, backlog: 8 });
    port.associate(listener, 'listener');
    const clients: net.Socket[] = [];
    const resets: Error[] = [];
    try {
      listener.accept(new Overlapped()); // arms the multishot accept
      for (let i = 0; i < 64; i++) {
        const client = net.connect(listener.address.port, '127.0.0.1');
        client.on('error', (err) => resets.push(err));
        clients.push(client);
      }
      await Promise.all(clients.map((c) => new Promise((r) => c.once('connect', r))));
      await delay(200); // the engine sees them all, with one accept posted
      let accepted = 0;
      for (let i = 0; i < clients.length; i++) {
        const c = await next(port);
        const ov = c.overlapped as Overlapped;
        assert.equal(c.error, null);
        const socket = ov.socket;
        assert.ok(socket !== null);
        accepted++;
        // Each accepted connection works: its client hears from it.
        const hello = Buffer.from(`hello ${i}`);
        port.associate(socket, `socket ${i}`);
        socket.send(hello, new Overlapped());
        await next(port);
        socket.close();
        if (i + 1 < clients.length) listener.accept(ov);
      }
      assert.equal(accepted, clients.length);
      await Promise.all(clients.map((c) => readExactly(c, 'hello '.length + 1)));
      assert.deepEqual(resets, [], 'no client was reset');
    } finally {
      for (const c of clients) c.destroy();
      listener.close();
      await delay(20);
      port.close();
    }
  });
});
