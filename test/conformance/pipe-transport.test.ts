/**
 * The pipe half of the engine contract (listen, accept, connect, send, recv
 * over a Unix domain socket), driven through the engine interface itself:
 * the pipe server of a later layer builds on exactly these operations.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Engine, EngineRequest } from '../../src/engines/contract.js';
import { NodeEngine } from '../../src/engines/node/node-engine.js';
import { UringEngine } from '../../src/engines/uring/uring-engine.js';
import { enginesUnderTest } from '../support/engines.js';

function request(): EngineRequest {
  return { bytes: 0, error: null, result: null };
}

/** A private engine of kind `name` whose sink resolves a promise per request. */
function engineWithSink(name: string) {
  const engine: Engine = name === 'uring' ? new UringEngine() : new NodeEngine();
  const waiting = new Map<EngineRequest, () => void>();
  engine.setSink((batch) => {
    for (const req of batch) waiting.get(req)?.();
  });
  const done = (req: EngineRequest) =>
    new Promise<EngineRequest>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no completion within 5 s')), 5000);
      waiting.set(req, () => {
        clearTimeout(timer);
        waiting.delete(req);
        resolve(req);
      });
    });
  return { engine, done };
}

for (const { name, skip } of enginesUnderTest())
  describe(`engine contract over pipes: ${name}`, {
    skip: skip ?? (process.platform === 'win32' && 'Unix only'),
  }, () => {
    test('a pipe listener is owner-only, accepts, and carries bytes both ways', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'overlapped-pipe-'));
      const path = join(dir, 'test.sock');
      const { engine, done } = engineWithSink(name);
      const listener = await engine.listenPipe({ path, backlog: 16, mode: 0o600 });
      try {
        assert.equal(statSync(path).mode & 0o777, 0o600, 'the socket file is owner-only');
        assert.deepEqual(listener.endpoint, { address: path, port: -1, family: 'pipe' });
        const accept = request();
        listener.accept(accept);
        const connect = request();
        const client = engine.connectPipe(connect, path);
        const [accepted, connected] = await Promise.all([done(accept), done(connect)]);
        assert.equal(connected.error, null);
        assert.equal(connected.result, client);
        const server = accepted.result;
        assert.ok(server !== null);

        const send = request();
        client.send(send, [Buffer.from('request '), Buffer.from('one')], 11);
        assert.equal((await done(send)).bytes, 11);
        const buffer = Buffer.alloc(64);
        const recv = request();
        server.recv(recv, buffer);
        const got = await done(recv);
        assert.equal(buffer.toString('utf8', 0, got.bytes), 'request one');

        const reply = request();
        server.send(reply, Buffer.from('reply'), 5);
        await done(reply);
        const back = request();
        client.recv(back, buffer);
        assert.equal(buffer.toString('utf8', 0, (await done(back)).bytes), 'reply');

        client.close(false);
        const eof = request();
        server.recv(eof, buffer);
        const end = await done(eof);
        assert.equal(end.bytes, 0, 'the server sees end of stream');
        assert.equal(end.error, null);
        server.close(false);
      } finally {
        listener.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test('listening on a path a live listener holds fails with EADDRINUSE', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'overlapped-pipe-'));
      const path = join(dir, 'busy.sock');
      const { engine } = engineWithSink(name);
      const first = await engine.listenPipe({ path, backlog: 4, mode: 0o600 });
      try {
        await assert.rejects(engine.listenPipe({ path, backlog: 4, mode: 0o600 }), {
          code: 'EADDRINUSE',
        });
      } finally {
        first.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
