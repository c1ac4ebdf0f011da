/**
 * The uring engine's readiness and non-blocking attempts (contract:
 * "Readiness and non-blocking attempts") on real sockets: poll is a
 * POLL_ADD, the try-calls are MSG_DONTWAIT system calls and accept4 on a
 * non-blocking listener, bytes the engine holds are served first, and a
 * detached descriptor does real blocking I/O in a worker_threads worker.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { CompletionPort } from '../../src/core/completion-port.js';
import { OsError, OverlappedError } from '../../src/core/errors.js';
import { Overlapped } from '../../src/core/overlapped.js';
import { TcpListener } from '../../src/core/tcp-listener.js';
import type { TcpSocket } from '../../src/core/tcp-socket.js';
import { type BufferLease, Readiness, WOULD_BLOCK } from '../../src/engines/contract.js';
import {
  delay,
  enginesUnderTest,
  next,
  openPair,
  type Pair,
  readExactly,
} from '../support/engines.js';

const uring = enginesUnderTest().find((e) => e.name === 'uring');
if (uring?.skip !== undefined) console.log(`# skipping uring readiness tests: ${uring.skip}`);

const { READABLE, WRITABLE, HANGUP, ERROR } = Readiness;

const isAborted = (error: Error | null) =>
  error instanceof OverlappedError && error.code === 'OVL_ERR_ABORTED';

/** Nothing completes on `port` within `ms`. */
async function quiet(port: CompletionPort<string, unknown>, ms = 100): Promise<void> {
  const c = await port.dequeue({ timeoutMs: ms });
  assert.equal(c, null, `unexpected completion: ${c?.bytes} ${c?.error?.message}`);
}

/** Retries tryRecv (with pauses) until it moves something. */
async function recvSoon(socket: TcpSocket, buffer: Buffer, timeoutMs = 2000): Promise<number> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const n = socket.tryRecv(buffer);
    if (n !== WOULD_BLOCK) return n;
    if (Date.now() > until) throw new Error(`tryRecv still WOULD_BLOCK after ${timeoutMs} ms`);
    await delay(5);
  }
}

async function withPair(run: (pair: Pair) => Promise<void>): Promise<void> {
  const engine = uring?.engine;
  assert.ok(engine !== undefined);
  const pair = await openPair(engine);
  try {
    await run(pair);
  } finally {
    pair.close();
  }
}

describe('uring readiness: poll', { skip: uring?.skip ?? false }, () => {
  test('READABLE once the peer writes, not before', () =>
    withPair(async ({ port, socket, peer }) => {
      const ov = new Overlapped();
      socket.poll(READABLE, ov);
      await quiet(port);
      peer.write('ping');
      const c = await next(port);
      assert.equal(c.error, null);
      assert.equal(c.overlapped, ov);
      assert.equal(c.bytes, READABLE);
      const buffer = Buffer.alloc(16);
      assert.equal(socket.tryRecv(buffer), 4);
      assert.equal(buffer.subarray(0, 4).toString(), 'ping');
      assert.equal(socket.tryRecv(buffer), WOULD_BLOCK);
    }));

  test('WRITABLE at once on a fresh socket (never synchronously)', () =>
    withPair(async ({ port, socket }) => {
      const ov = new Overlapped();
      socket.poll(WRITABLE | READABLE, ov);
      assert.equal(ov.pending, true, 'not completed inside poll()');
      const c = await next(port);
      assert.equal(c.error, null);
      assert.equal(c.bytes, WRITABLE);
    }));

  test('HANGUP | READABLE after the peer FIN when HANGUP is asked; no HANGUP when not asked', () =>
    withPair(async ({ port, socket, peer }) => {
      const both = new Overlapped();
      socket.poll(READABLE | HANGUP, both);
      await quiet(port, 50);
      peer.end();
      const c = await next(port);
      assert.equal(c.error, null);
      assert.equal(c.bytes, READABLE | HANGUP);
      const plain = new Overlapped();
      socket.poll(READABLE, plain);
      const d = await next(port);
      assert.equal(d.bytes, READABLE, 'HANGUP is reported only when asked for');
      assert.equal(socket.tryRecv(Buffer.alloc(8)), 0, 'end of stream');
      // End of stream is known now: a poll completes from it without the kernel.
      const again = new Overlapped();
      socket.poll(HANGUP, again);
      assert.equal((await next(port)).bytes, HANGUP);
    }));

  test('ERROR (and READABLE when asked) after the peer resets', () =>
    withPair(async ({ port, socket, peer }) => {
      const ov = new Overlapped();
      socket.poll(READABLE, ov);
      peer.resetAndDestroy();
      const c = await next(port);
      assert.equal(c.error, null);
      assert.equal(c.bytes & (READABLE | ERROR), READABLE | ERROR);
      assert.throws(
        () => socket.tryRecv(Buffer.alloc(8)),
        (err: unknown) =>
          err instanceof OsError && err.code === 'ECONNRESET' && err.syscall === 'read',
      );
    }));

  test('several polls pending on one stream complete each on its own condition', () =>
    withPair(async ({ port, socket, peer }) => {
      const readable = new Overlapped();
      const hangup = new Overlapped();
      socket.poll(READABLE, readable);
      socket.poll(HANGUP, hangup);
      await quiet(port, 50);
      peer.write('x');
      const c = await next(port);
      assert.equal(c.overlapped, readable);
      assert.equal(c.bytes, READABLE);
      await quiet(port, 50);
      peer.end();
      const d = await next(port);
      assert.equal(d.overlapped, hangup);
      assert.equal(d.bytes, HANGUP);
    }));

  test('cancel aborts a pending poll exactly once; others stay pending', () =>
    withPair(async ({ port, socket, peer }) => {
      const a = new Overlapped();
      const b = new Overlapped();
      socket.poll(READABLE, a);
      socket.poll(HANGUP, b);
      assert.equal(socket.cancel(a), true);
      assert.equal(socket.cancel(a), false, 'already cancelled');
      const c = await next(port);
      assert.equal(c.overlapped, a);
      assert.ok(isAborted(c.error));
      await quiet(port);
      peer.end();
      const d = await next(port);
      assert.equal(d.overlapped, b);
      assert.equal(d.bytes, HANGUP);
    }));

  test('cancel() and close() abort every pending poll with OVL_ERR_ABORTED, once each', () =>
    withPair(async ({ port, socket }) => {
      const a = new Overlapped();
      socket.poll(READABLE, a);
      await delay(20); // in the kernel now
      assert.equal(socket.cancel(), true);
      const c = await next(port);
      assert.equal(c.overlapped, a);
      assert.ok(isAborted(c.error));
      const b = new Overlapped();
      const h = new Overlapped();
      socket.poll(READABLE, b);
      socket.poll(READABLE | HANGUP, h);
      await delay(20);
      socket.close();
      const seen = [await next(port), await next(port)];
      assert.deepEqual(new Set(seen.map((s) => s.overlapped)), new Set([b, h]));
      for (const s of seen) assert.ok(isAborted(s.error));
      await quiet(port);
    }));

  test('an abortive close aborts a poll in the kernel too', () =>
    withPair(async ({ port, socket }) => {
      const a = new Overlapped();
      socket.poll(READABLE, a);
      await delay(20);
      socket.destroy();
      const c = await next(port);
      assert.ok(isAborted(c.error));
      await quiet(port);
    }));
});

describe('uring readiness: polls while connecting', { skip: uring?.skip ?? false }, () => {
  async function connectAndPoll(host: string, port: number, events: number) {
    const engine = uring?.engine;
    assert.ok(engine !== undefined);
    const { CompletionPort } = await import('../../src/core/completion-port.js');
    const { TcpSocket } = await import('../../src/core/tcp-socket.js');
    const cport = new CompletionPort<string, unknown>({ concurrency: 1 });
    const connect = new Overlapped();
    const socket = TcpSocket.connect({ engine, host, port }, connect);
    cport.associate(socket, 'client');
    const poll = new Overlapped();
    socket.poll(events, poll); // before the host name is resolved: no descriptor yet
    const seen = new Map<unknown, { bytes: number; error: Error | null }>();
    for (let i = 0; i < 2; i++) {
      const c = await next(cport);
      seen.set(c.overlapped, c);
    }
    return { cport, socket, connect: seen.get(connect), poll: seen.get(poll) };
  }

  test('a poll posted while the host name resolves completes WRITABLE with the connection', async () => {
    const server = net.createServer((s) => s.pipe(s));
    await new Promise<void>((resolve) => server.listen(0, 'localhost', resolve));
    const { port } = server.address() as net.AddressInfo;
    const r = await connectAndPoll('localhost', port, WRITABLE);
    try {
      assert.equal(r.connect?.error, null);
      assert.equal(r.poll?.error, null);
      assert.equal(r.poll?.bytes, WRITABLE);
    } finally {
      r.socket.close();
      r.cport.close();
      server.close();
    }
  });

  test('a poll on a refused connect reports ERROR', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, 'localhost', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const r = await connectAndPoll('localhost', port, WRITABLE | READABLE);
    try {
      assert.ok(r.connect?.error instanceof OsError);
      assert.equal(r.poll?.error, null);
      assert.equal((r.poll?.bytes ?? 0) & ERROR, ERROR);
    } finally {
      r.socket.close();
      r.cport.close();
    }
  });
});

describe('uring readiness: tryRecv and trySend', { skip: uring?.skip ?? false }, () => {
  test('tryRecv: WOULD_BLOCK, then the bytes, then 0 at end of stream', () =>
    withPair(async ({ socket, peer }) => {
      const buffer = Buffer.alloc(64);
      assert.equal(socket.tryRecv(buffer), WOULD_BLOCK);
      peer.write('hello');
      const n = await recvSoon(socket, buffer);
      assert.equal(buffer.subarray(0, n).toString(), 'hello');
      assert.equal(socket.tryRecv(buffer), WOULD_BLOCK);
      peer.end();
      assert.equal(await recvSoon(socket, buffer), 0);
      assert.equal(socket.tryRecv(buffer), 0, 'end of stream is remembered');
    }));

  test('tryRecv is WOULD_BLOCK while a recv is posted: the posted recv gets the bytes', () =>
    withPair(async ({ port, socket, peer }) => {
      const target = Buffer.alloc(16);
      const ov = new Overlapped();
      socket.recv(target, ov);
      peer.write('first');
      await delay(30);
      assert.equal(socket.tryRecv(Buffer.alloc(16)), WOULD_BLOCK);
      const c = await next(port);
      assert.equal(target.subarray(0, c.bytes).toString(), 'first');
    }));

  test('tryRecv serves bytes the pooled multishot holds first, in order', () =>
    withPair(async ({ port, socket, peer }) => {
      // One pooled recv arms the stream's multishot recv, which stays armed after it.
      const ov = new Overlapped();
      socket.recvPooled(ov);
      peer.write('a');
      const c = await next(port);
      assert.equal(c.bytes, 1);
      (ov.lease as BufferLease).release();
      // A poll in the kernel: the multishot takes what comes next, and the poll still completes.
      const poll = new Overlapped();
      socket.poll(READABLE, poll);
      peer.write('bcd');
      const p = await next(port);
      assert.equal(p.overlapped, poll);
      assert.equal(p.bytes, READABLE);
      const until = Date.now() + 2000;
      while (socket.unreadBytes < 3 && Date.now() < until) await delay(5);
      assert.equal(socket.unreadBytes, 3, 'held by the multishot recv');
      // A poll with bytes held completes without the kernel.
      const held = new Overlapped();
      socket.poll(READABLE, held);
      assert.equal((await next(port)).bytes, READABLE);
      const buffer = Buffer.alloc(2);
      assert.equal(socket.tryRecv(buffer), 2);
      assert.equal(buffer.toString(), 'bc');
      assert.equal(socket.tryRecv(buffer), 1);
      assert.equal(buffer.subarray(0, 1).toString(), 'd');
      assert.equal(socket.unreadBytes, 0);
      // Later bytes come through the multishot (stopped now) or the kernel: in order either way.
      peer.write('efgh');
      let got = '';
      while (got.length < 4) {
        const n = await recvSoon(socket, buffer);
        got += buffer.subarray(0, n).toString();
      }
      assert.equal(got, 'efgh');
    }));

  test('tryRecv serves what a read-ahead left, before the kernel', () =>
    withPair(async ({ port, socket, peer }) => {
      // A recv that fills its buffer makes the next recv read 64 KiB ahead.
      const big = Buffer.alloc(100_000, 7);
      peer.write(big);
      await delay(50);
      const small = Buffer.alloc(1000);
      const ov = new Overlapped();
      socket.recv(small, ov);
      assert.equal((await next(port)).bytes, 1000);
      socket.recv(small, ov);
      assert.equal((await next(port)).bytes, 1000);
      assert.ok(socket.unreadBytes > 0, 'the read-ahead holds bytes');
      let total = 2000;
      const buffer = Buffer.alloc(8192);
      while (total < big.length) {
        const n = await recvSoon(socket, buffer);
        assert.ok(n > 0);
        assert.ok(buffer.subarray(0, n).every((b) => b === 7));
        total += n;
      }
      assert.equal(total, big.length);
      assert.equal(socket.unreadBytes, 0);
    }));

  test('trySend until WOULD_BLOCK against a peer that does not read; WRITABLE once it drains', () =>
    withPair(async ({ port, socket, peer }) => {
      peer.pause();
      const chunk = Buffer.alloc(64 * 1024, 1);
      let sent = 0;
      let blocked = false;
      // Loopback buffers grow to a few MiB at most; the bound only stops a broken engine.
      while (sent < 256 * 1024 * 1024) {
        const n = socket.trySend(chunk);
        if (n === WOULD_BLOCK) {
          blocked = true;
          break;
        }
        assert.ok(n > 0 && n <= chunk.length);
        sent += n;
        if (sent % (1024 * 1024) < chunk.length) await delay(1); // let the peer's buffers fill
      }
      assert.ok(blocked, `trySend never said WOULD_BLOCK after ${sent} bytes`);
      const ov = new Overlapped();
      socket.poll(WRITABLE, ov);
      await quiet(port, 100);
      const drained = readExactly(peer, sent, 10_000);
      const c = await next(port, 10_000);
      assert.equal(c.error, null);
      assert.equal(c.bytes, WRITABLE);
      assert.equal((await drained).length, sent);
    }));

  test('trySend is WOULD_BLOCK while a posted send is pending (order)', () =>
    withPair(async ({ port, socket, peer }) => {
      peer.pause();
      const ov = new Overlapped();
      socket.send(Buffer.alloc(8 * 1024 * 1024, 2), ov);
      await delay(30);
      assert.equal(socket.trySend(Buffer.from('late')), WOULD_BLOCK);
      const drained = readExactly(peer, 8 * 1024 * 1024, 10_000);
      const c = await next(port, 10_000);
      assert.equal(c.error, null);
      assert.equal((await drained).length, 8 * 1024 * 1024);
      assert.equal(socket.trySend(Buffer.from('now')), 3);
    }));

  test('trySend after the peer reset throws an OsError with syscall write', () =>
    withPair(async ({ socket, peer }) => {
      peer.resetAndDestroy();
      await delay(50);
      assert.throws(
        () => {
          for (let i = 0; i < 10; i++) socket.trySend(Buffer.from('x'));
        },
        (err: unknown) =>
          err instanceof OsError &&
          (err.code === 'ECONNRESET' || err.code === 'EPIPE') &&
          err.syscall === 'write',
      );
    }));

  test('trySend after a posted shutdown is EPIPE (no byte after the FIN)', () =>
    withPair(async ({ port, socket }) => {
      socket.shutdown(new Overlapped());
      assert.throws(
        () => socket.trySend(Buffer.from('x')),
        (err: unknown) => err instanceof OsError && err.code === 'EPIPE' && err.syscall === 'write',
      );
      assert.equal((await next(port)).error, null);
      assert.throws(
        () => socket.trySend(Buffer.from('x')),
        (err: unknown) => err instanceof OsError && err.code === 'EPIPE',
      );
    }));
});

describe('uring readiness: listeners', { skip: uring?.skip ?? false }, () => {
  async function openListener() {
    const engine = uring?.engine;
    assert.ok(engine !== undefined);
    const { CompletionPort } = await import('../../src/core/completion-port.js');
    const port = new CompletionPort<string, unknown>({ concurrency: 1 });
    const listener = await TcpListener.listen({ engine, host: '127.0.0.1', port: 0 });
    port.associate(listener, 'listener');
    const clients: net.Socket[] = [];
    const connect = async () => {
      const client = net.connect(listener.address.port, '127.0.0.1');
      client.on('error', () => {});
      clients.push(client);
      await new Promise((resolve) => client.once('connect', resolve));
      return client;
    };
    const close = () => {
      for (const c of clients) c.destroy();
      listener.close();
      port.close();
    };
    return { port, listener, connect, close };
  }

  test('tryAccept: null, then the waiting connection, a normal stream', async () => {
    const { port, listener, connect, close } = await openListener();
    try {
      assert.equal(listener.tryAccept(), null);
      const client = await connect();
      let socket: TcpSocket | null = null;
      const until = Date.now() + 2000;
      while (socket === null && Date.now() < until) {
        socket = listener.tryAccept();
        if (socket === null) await delay(5);
      }
      assert.ok(socket !== null);
      port.associate(socket, 'socket');
      assert.equal(socket.remoteAddress?.port, client.localPort);
      // recv, send and poll all work on it.
      const buffer = Buffer.alloc(8);
      const ov = new Overlapped();
      socket.recv(buffer, ov);
      client.write('hi');
      assert.equal((await next(port)).bytes, 2);
      const back = readExactly(client, 3);
      socket.send(Buffer.from('yo!'), ov);
      assert.equal((await next(port)).bytes, 3);
      assert.equal((await back).toString(), 'yo!');
      socket.poll(WRITABLE, ov);
      assert.equal((await next(port)).bytes, WRITABLE);
      socket.close();
    } finally {
      close();
    }
  });

  test('poll completes READABLE when a client connects, then tryAccept takes it', async () => {
    const { port, listener, connect, close } = await openListener();
    try {
      const ov = new Overlapped();
      listener.poll(ov);
      await quiet(port);
      await connect();
      const c = await next(port);
      assert.equal(c.error, null);
      assert.equal(c.bytes, READABLE);
      const socket = listener.tryAccept();
      assert.ok(socket !== null);
      socket.close();
      assert.equal(listener.tryAccept(), null);
    } finally {
      close();
    }
  });

  test('with the multishot accept armed: a poll in the kernel sees the connection it took, tryAccept takes it, posted accepts come first', async () => {
    const { port, listener, connect, close } = await openListener();
    try {
      const accept = new Overlapped();
      listener.accept(accept); // arms the multishot accept
      await connect();
      const a = await next(port);
      assert.equal(a.error, null);
      accept.socket?.close();
      // Armed still: the next connection goes to the engine's ready queue, not the kernel's.
      const ov = new Overlapped();
      listener.poll(ov);
      await quiet(port, 50);
      await connect();
      const c = await next(port);
      assert.equal(c.overlapped, ov);
      assert.equal(c.bytes, READABLE);
      // Ready now: a poll completes without the kernel.
      listener.poll(ov);
      assert.equal((await next(port)).bytes, READABLE);
      const ready = listener.tryAccept();
      assert.ok(ready !== null, 'taken from the ready queue');
      ready.close();
      // A posted accept is served before tryAccept.
      const posted = new Overlapped();
      listener.accept(posted);
      await connect();
      assert.equal(listener.tryAccept(), null, 'the posted accept gets it');
      const p = await next(port);
      assert.equal(p.overlapped, posted);
      assert.equal(p.error, null);
      posted.socket?.close();
      await connect();
      let socket: TcpSocket | null = null;
      const until = Date.now() + 2000;
      while (socket === null && Date.now() < until) {
        socket = listener.tryAccept();
        if (socket === null) await delay(5);
      }
      assert.ok(socket !== null);
      socket.close();
    } finally {
      close();
    }
  });

  test('cancel and close abort a listener poll exactly once', async () => {
    const { port, listener, close } = await openListener();
    try {
      const a = new Overlapped();
      listener.poll(a);
      await delay(20);
      assert.equal(listener.cancel(a), true);
      const c = await next(port);
      assert.ok(isAborted(c.error));
      const b = new Overlapped();
      listener.poll(b);
      await delay(20);
      listener.close();
      const d = await next(port);
      assert.equal(d.overlapped, b);
      assert.ok(isAborted(d.error));
      await quiet(port);
    } finally {
      close();
    }
  });
});

/** A worker that does blocking I/O on a descriptor: echoes until end of stream, then closes it. */
const BLOCKING_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module).then(({ uringBlockingIo }) => {
  const io = uringBlockingIo();
  const fd = workerData.fd;
  if (io.setBlocking(fd, true) !== 0) throw new Error('setBlocking failed');
  const buffer = Buffer.alloc(4096);
  parentPort.postMessage({ event: 'ready' });
  for (;;) {
    parentPort.postMessage({ event: 'recv' });
    const n = io.recv(fd, buffer);
    if (n <= 0) {
      parentPort.postMessage({ event: 'end', n });
      break;
    }
    const sent = io.send(fd, buffer.subarray(0, n));
    parentPort.postMessage({ event: 'echoed', n, sent });
  }
  parentPort.postMessage({ event: 'closed', rc: io.close(fd, false) });
});
`;

describe('uring readiness: detach and blocking calls', { skip: uring?.skip ?? false }, () => {
  test('detach needs nothing pending; a pooled recv leaves a multishot to stop first', () =>
    withPair(async ({ port, socket, peer }) => {
      const ov = new Overlapped();
      socket.recv(Buffer.alloc(8), ov);
      assert.throws(() => socket.detach(), { code: 'OVL_ERR_INVALID_ARGUMENT' });
      socket.cancel(ov);
      await next(port);
      socket.recvPooled(ov);
      peer.write('z');
      await next(port);
      (ov.lease as BufferLease).release();
      assert.throws(() => socket.detach(), { code: 'OVL_ERR_INVALID_ARGUMENT' });
      await delay(30); // the multishot's last CQE
      const fd = socket.detach();
      assert.ok(fd >= 0);
      assert.equal(socket.closed, true);
      assert.throws(() => socket.tryRecv(Buffer.alloc(1)), { code: 'OVL_ERR_HANDLE_CLOSED' });
      // The descriptor is the caller's now: still open, still connected.
      const engine = uring?.engine;
      assert.ok(engine?.blocking !== undefined);
      const back = readExactly(peer, 2);
      assert.equal(engine.blocking.send(fd, Buffer.from('ok')), 2);
      assert.equal((await back).toString(), 'ok');
      assert.equal(engine.blocking.close(fd, false), 0);
    }));

  test('a detached descriptor does blocking recv/send in a worker while the main loop runs; shutdown unblocks it', () =>
    withPair(async ({ socket, peer }) => {
      const engine = uring?.engine;
      assert.ok(engine?.blocking !== undefined);
      const blocking = engine.blocking;
      const fd = socket.detach();
      const worker = new Worker(BLOCKING_WORKER, {
        eval: true,
        workerData: {
          fd,
          module: new URL('../../src/engines/uring/blocking-io.js', import.meta.url).href,
        },
      });
      const events: { event: string; n?: number; sent?: number; rc?: number }[] = [];
      let wake: (() => void) | null = null;
      worker.on('message', (m) => {
        events.push(m);
        wake?.();
      });
      const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
      const errored = new Promise<never>((_, reject) => worker.once('error', reject));
      const waitFor = async (name: string, count = 1) => {
        const until = Date.now() + 5000;
        while (events.filter((e) => e.event === name).length < count) {
          if (Date.now() > until)
            throw new Error(`worker never said ${name}: ${JSON.stringify(events)}`);
          await Promise.race([new Promise<void>((r) => (wake = r)), delay(50), errored]);
        }
      };
      try {
        await waitFor('recv');
        // The worker is blocked in recv(2); this thread's timers keep firing.
        let ticks = 0;
        const timer = setInterval(() => ticks++, 10);
        await delay(200);
        clearInterval(timer);
        assert.ok(ticks >= 10, `only ${ticks} timer ticks while the worker was blocked`);
        assert.equal(events.filter((e) => e.event === 'echoed').length, 0);
        const back = readExactly(peer, 5);
        peer.write('hello');
        assert.equal((await back).toString(), 'hello');
        await waitFor('echoed');
        assert.deepEqual(
          events.find((e) => e.event === 'echoed'),
          { event: 'echoed', n: 5, sent: 5 },
        );
        await waitFor('recv', 2);
        await delay(50); // blocked in recv again
        // From this thread: shutdown wakes the recv blocked in the worker with end of stream.
        assert.equal(blocking.shutdown(fd, 2), 0);
        await waitFor('closed');
        assert.deepEqual(
          events.find((e) => e.event === 'end'),
          { event: 'end', n: 0 },
        );
        assert.deepEqual(
          events.find((e) => e.event === 'closed'),
          { event: 'closed', rc: 0 },
        );
        assert.equal(await exited, 0);
      } finally {
        await worker.terminate();
      }
    }));

  test('blocking calls return -errno, never throw', () => {
    const engine = uring?.engine;
    assert.ok(engine?.blocking !== undefined);
    const blocking = engine.blocking;
    const EBADF = -9;
    assert.equal(blocking.recv(1_000_000, Buffer.alloc(1)), EBADF);
    assert.equal(blocking.send(1_000_000, Buffer.alloc(1)), EBADF);
    assert.equal(blocking.setBlocking(1_000_000, true), EBADF);
    assert.equal(blocking.shutdown(1_000_000, 2), EBADF);
    assert.equal(blocking.close(1_000_000, true), EBADF);
  });
});
