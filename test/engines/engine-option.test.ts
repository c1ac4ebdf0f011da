/**
 * One way to choose an engine: every entry point of the package takes
 * `engine?: 'node' | 'uring' | Engine`, resolved by src/engines/select.ts;
 * omitted, it is this thread's default engine. Imported from the package
 * entry, as a user does.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CompletionPort,
  chooseEngine,
  connectTcp,
  defaultEngine,
  EchoServer,
  type Engine,
  type EngineOption,
  listenTcp,
  Overlapped,
  PipeClient,
  PipeConnection,
  PipeListener,
  PipeServer,
  resolveEngine,
  startEchoServer,
  TcpListener,
  TcpSocket,
  waitNamedPipe,
} from '../../src/index.js';
import { enginesUnderTest } from '../support/engines.js';
import { tempPipeDir, unixOnly } from '../support/pipe-fixture.js';

/** `engine`, counting the listeners and connections opened through it. */
function counting(engine: Engine): { engine: Engine; opened: () => number } {
  let opened = 0;
  const wrapped = new Proxy(engine, {
    get(target, key) {
      const value = Reflect.get(target, key, target) as unknown;
      if (typeof value !== 'function') return value;
      if (['listenTcp', 'listenPipe', 'connectTcp', 'connectPipe'].includes(String(key))) {
        return (...args: unknown[]) => {
          opened++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
  return { engine: wrapped, opened: () => opened };
}

async function connected(socket: TcpSocket, port: CompletionPort<string>): Promise<void> {
  const c = await port.dequeue({ timeoutMs: 5000 });
  assert.ok(c !== null, 'the connect completed');
  assert.equal(c.error, null);
  socket.close();
}

describe('engine: option', () => {
  test("omitted: this thread's default engine, on every TCP entry point", async () => {
    const listener = await listenTcp({ port: 0 });
    const direct = await TcpListener.listen({ port: 0 });
    const port = new CompletionPort<string>({ concurrency: 1 });
    try {
      assert.equal(listener.engine, defaultEngine().engine);
      assert.equal(direct.engine, defaultEngine().engine);
      const socket = connectTcp({ port: listener.address.port }, new Overlapped());
      port.associate(socket, 'c');
      assert.equal(socket.engine, defaultEngine().engine);
      await connected(socket, port);
    } finally {
      listener.close();
      direct.close();
      port.close();
    }
  });

  test('an unknown name is OVL_ERR_ENGINE_UNAVAILABLE everywhere', async () => {
    const bogus = 'bogus' as unknown as EngineOption;
    const refused = { code: 'OVL_ERR_ENGINE_UNAVAILABLE' };
    await assert.rejects(listenTcp({ port: 0, engine: bogus }), refused);
    assert.throws(() => TcpSocket.connect({ port: 1, engine: bogus }, new Overlapped()), refused);
    await assert.rejects(EchoServer.start({ port: 0, engine: bogus }), refused);
    await assert.rejects(startEchoServer({ port: 0, engine: bogus, model: 'routines' }), refused);
    assert.throws(() => resolveEngine(bogus), refused);
  });

  for (const { name, engine, skip } of enginesUnderTest()) {
    describe(`'${name}'`, { skip }, () => {
      test('by name: TcpListener.listen, listenTcp, TcpSocket.connect, connectTcp', async () => {
        assert.ok(engine !== undefined);
        const byName = name as 'node' | 'uring';
        assert.equal(resolveEngine(byName), chooseEngine(byName).engine);
        const a = await TcpListener.listen({ port: 0, engine: byName });
        const b = await listenTcp({ port: 0, engine: byName });
        const port = new CompletionPort<string>({ concurrency: 1 });
        try {
          assert.equal(a.engine.name, name);
          assert.equal(b.engine.name, name);
          const s1 = TcpSocket.connect({ port: a.address.port, engine: byName }, new Overlapped());
          port.associate(s1, 's1');
          assert.equal(s1.engine.name, name);
          await connected(s1, port);
          const s2 = connectTcp({ port: b.address.port, engine: byName }, new Overlapped());
          port.associate(s2, 's2');
          assert.equal(s2.engine.name, name);
          await connected(s2, port);
        } finally {
          a.close();
          b.close();
          port.close();
        }
      });

      test('as an Engine: EchoServer.start and startEchoServer open their listener on it', async () => {
        assert.ok(engine !== undefined);
        for (const start of [
          (e: Engine) => EchoServer.start({ port: 0, engine: e }),
          (e: Engine) => startEchoServer({ port: 0, engine: e, model: 'events' }),
        ]) {
          const { engine: wrapped, opened } = counting(engine);
          const server = await start(wrapped);
          try {
            assert.equal(opened(), 1, 'the listener was opened through the given engine');
          } finally {
            await server.stop();
          }
        }
        const byName = await startEchoServer({ port: 0, engine: name as 'node' | 'uring' });
        await byName.stop();
      });

      test('pipes: PipeServer.start, PipeListener.listen, PipeConnection.connect, PipeClient.connect, waitNamedPipe', {
        skip: unixOnly,
      }, async () => {
        assert.ok(engine !== undefined);
        const byName = name as 'node' | 'uring';
        const tmp = tempPipeDir();
        const server = await PipeServer.start({ name: tmp.path('server.sock'), engine: byName });
        const listener = await PipeListener.listen({ path: tmp.path('raw.sock'), engine: byName });
        try {
          assert.equal(server.listener.engine.name, name);
          assert.equal(listener.engine.name, name);
          const ov = new Overlapped();
          const conn = PipeConnection.connect({ path: server.path, engine: byName }, ov);
          assert.equal(conn.engine.name, name);
          conn.close();
          const { engine: wrapped, opened } = counting(engine);
          const client = await PipeClient.connect(server.path, { engine: wrapped });
          assert.equal(opened(), 1, 'PipeClient connected through the given engine');
          assert.equal((await client.transact('hi')).toString(), 'Default answer from server');
          client.close();
          assert.equal(await waitNamedPipe(server.path, 1000, { engine: byName }), true);
        } finally {
          listener.close();
          await server.stop();
          tmp.remove();
        }
      });
    });
  }
});
