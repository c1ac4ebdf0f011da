/**
 * OS errors look the same whichever engine produced them: the same `code`
 * and `syscall` for the same situation (DESIGN.md, "Errors").
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CompletionPort } from '../../src/core/completion-port.js';
import { OsError } from '../../src/core/errors.js';
import { Overlapped } from '../../src/core/overlapped.js';
import { TcpListener } from '../../src/core/tcp-listener.js';
import { TcpSocket } from '../../src/core/tcp-socket.js';
import type { Engine, EngineRequest } from '../../src/engines/contract.js';
import { enginesUnderTest, next, openPair } from '../support/engines.js';

interface Seen {
  code: string;
  syscall: string;
  errnoIsNumber: boolean;
}

function shape(err: unknown): Seen {
  assert.ok(err instanceof OsError, `expected an OsError, got ${String(err)}`);
  return { code: err.code, syscall: err.syscall, errnoIsNumber: Number.isInteger(err.errno) };
}

async function connectRefused(engine: Engine): Promise<Seen> {
  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const deadPort = (closed.address() as net.AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const port = new CompletionPort<string, unknown>({ concurrency: 1 });
  try {
    const socket = TcpSocket.connect({ engine, port: deadPort }, new Overlapped());
    port.associate(socket, 'c');
    const c = await next(port);
    socket.close();
    return shape(c.error);
  } finally {
    port.close();
  }
}

async function recvAfterReset(engine: Engine): Promise<Seen> {
  const pair = await openPair(engine);
  try {
    const ov = new Overlapped();
    pair.socket.recv(Buffer.alloc(8), ov);
    pair.peer.resetAndDestroy();
    return shape((await next(pair.port)).error);
  } finally {
    pair.close();
  }
}

async function tcpInUse(engine: Engine): Promise<Seen> {
  const first = await TcpListener.listen({ engine, port: 0 });
  try {
    await TcpListener.listen({ engine, port: first.address.port });
    throw new Error('the second listen succeeded');
  } catch (err) {
    return shape(err);
  } finally {
    first.close();
  }
}

async function pipeInUse(engine: Engine): Promise<Seen> {
  const dir = mkdtempSync(join(tmpdir(), 'overlapped-err-'));
  const path = join(dir, 'busy.sock');
  engine.setSink(() => {});
  const first = await engine.listenPipe({ path, backlog: 4, mode: 0o600 });
  try {
    await engine.listenPipe({ path, backlog: 4, mode: 0o600 });
    throw new Error('the second listen succeeded');
  } catch (err) {
    return shape(err);
  } finally {
    first.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function connectPipeMissing(engine: Engine): Promise<Seen> {
  const dir = mkdtempSync(join(tmpdir(), 'overlapped-err-'));
  try {
    const req: EngineRequest = { bytes: 0, error: null, result: null };
    const done = new Promise<EngineRequest>((resolve) => {
      engine.setSink((batch) => {
        if (batch.includes(req)) resolve(req);
      });
    });
    const stream = engine.connectPipe(req, join(dir, 'nobody.sock'));
    const r = await done;
    stream.close(true);
    return shape(r.error);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const situations = {
  'connect to a closed port (ECONNREFUSED)': connectRefused,
  'recv after the peer reset (ECONNRESET)': recvAfterReset,
  'listen on a TCP port in use (EADDRINUSE)': tcpInUse,
} as const;

const engines = enginesUnderTest();
const runnable = engines.filter((e) => e.engine !== undefined);

describe('OS errors are the same on every engine', {
  skip:
    runnable.length < 2 &&
    `needs two engines here (${engines.map((e) => e.skip ?? e.name).join('; ')})`,
}, () => {
  for (const [situation, run] of Object.entries(situations)) {
    test(situation, async () => {
      const seen: Record<string, Seen> = {};
      for (const { name, engine } of runnable) seen[name] = await run(engine as Engine);
      const [first, ...rest] = Object.entries(seen);
      for (const [name, got] of rest) {
        assert.deepEqual(got, first?.[1], `${name} differs from ${first?.[0]}`);
      }
    });
  }

  // These drive an engine directly (their own sink): each engine is a fresh one.
  for (const [situation, run] of Object.entries({
    'listen on a pipe path in use (EADDRINUSE)': pipeInUse,
    'connect to a pipe path nobody listens on (ENOENT)': connectPipeMissing,
  })) {
    test(situation, async () => {
      const { NodeEngine } = await import('../../src/engines/node/node-engine.js');
      const { UringEngine } = await import('../../src/engines/uring/uring-engine.js');
      const node = await run(new NodeEngine());
      const uring = await run(new UringEngine());
      assert.deepEqual(uring, node);
    });
  }
});

describe('bad hosts are refused before any engine sees them', () => {
  for (const { name, engine, skip } of engines) {
    test(`${name} engine: '' and malformed hosts throw OVL_ERR_INVALID_ARGUMENT, never listen`, {
      skip,
    }, async () => {
      assert.ok(engine !== undefined);
      // node:net took '' as "every interface"; the io_uring engine failed with EINVAL null:port.
      for (const host of ['', ' ', 'a b', '[::1]', 'bad_host..name', 'x'.repeat(300)]) {
        await assert.rejects(
          TcpListener.listen({ engine, host, port: 0 }),
          { code: 'OVL_ERR_INVALID_ARGUMENT', message: /host .* is invalid/ },
          `listen on ${JSON.stringify(host)}`,
        );
        assert.throws(
          () => TcpSocket.connect({ engine, host, port: 1 }, new Overlapped()),
          { code: 'OVL_ERR_INVALID_ARGUMENT' },
          `connect to ${JSON.stringify(host)}`,
        );
      }
      for (const host of ['127.0.0.1', '::1', 'localhost']) {
        const listener = await TcpListener.listen({ engine, host, port: 0 });
        listener.close();
      }
    });
  }
});
