/**
 * Readiness and non-blocking attempts (src/engines/contract.ts, the section of
 * that name), checked on every engine that runs here, over real sockets,
 * through the public core API: `poll` is a posted operation like any other
 * (it completes once, never inside the posting call, cancel and close abort
 * it), and the try-calls move what can be moved now, keeping rule 7's order.
 * An engine that cannot run here is skipped with its reason.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, test } from 'node:test';
import { type Completion, CompletionPort } from '../../src/core/completion-port.js';
import { OsError, OverlappedError } from '../../src/core/errors.js';
import { Overlapped } from '../../src/core/overlapped.js';
import { TcpListener } from '../../src/core/tcp-listener.js';
import { TcpSocket, WOULD_BLOCK } from '../../src/core/tcp-socket.js';
import { MAX_UNREAD_BYTES, Readiness } from '../../src/engines/contract.js';
import { delay, enginesUnderTest, next, openPair, readExactly } from '../support/engines.js';

const { READABLE, WRITABLE, ERROR, HANGUP } = Readiness;

/** Per test: long enough for a slow shared machine, short enough that a hang fails. */
const TIMEOUT = { timeout: 30_000 };

const hasCode = (code: string) => (err: unknown) =>
  err instanceof OverlappedError && err.code === code;

function aborted(error: Error | null): boolean {
  return error instanceof OverlappedError && error.code === 'OVL_ERR_ABORTED';
}

function bitNames(bits: number): string {
  const names = Object.entries(Readiness)
    .filter(([, bit]) => (bits & bit) !== 0)
    .map(([name]) => name);
  return `${names.join('|') || 'none'} (0x${bits.toString(16)})`;
}

/**
 * Posts a poll and checks rule 1 on the way: the poll is still pending when
 * `poll()` returns and nothing reached the port inside the call.
 */
function postPoll(
  port: CompletionPort<string, unknown>,
  socket: TcpSocket,
  events: number,
): Overlapped {
  const ov = new Overlapped();
  const before = port.size;
  socket.poll(events, ov);
  assert.equal(ov.pending, true, 'a poll is pending when poll() returns, even if ready already');
  assert.equal(port.size, before, 'no completion is delivered inside poll()');
  return ov;
}

/** Waits for `ov`'s completion (the next one on the port) and checks it is a clean poll result. */
async function pollResult(port: CompletionPort<string, unknown>, ov: Overlapped, events: number) {
  const c = await next(port);
  assert.equal(c.overlapped, ov, 'the completion is the poll posted');
  assert.equal(c.error, null, `a poll completes without an error, got ${String(c.error)}`);
  assert.equal(ov.operation, 'poll');
  assert.notEqual(c.bytes, 0, 'a poll completes only when a bit holds');
  assert.equal(
    c.bytes & ~(events | ERROR),
    0,
    `reports only bits asked for, plus ERROR: asked ${bitNames(events)}, got ${bitNames(c.bytes)}`,
  );
  return c.bytes;
}

/** Posts a poll and waits for its result. */
async function poll(port: CompletionPort<string, unknown>, socket: TcpSocket, events: number) {
  return pollResult(port, postPoll(port, socket, events), events);
}

async function nothingFor(port: CompletionPort<string, unknown>, ms: number, what: string) {
  const c = await port.dequeue({ timeoutMs: ms });
  assert.equal(c, null, `${what} (got a completion of ${String(c?.overlapped?.operation)})`);
}

/** Receives through tryRecv, polling READABLE whenever it would block: bytes, or 0 at end of stream. */
async function tryRecvWaiting(
  port: CompletionPort<string, unknown>,
  socket: TcpSocket,
  buffer: Buffer,
): Promise<number> {
  for (let round = 0; round < 1000; round++) {
    const n = socket.tryRecv(buffer);
    if (n !== WOULD_BLOCK) return n;
    const bits = await poll(port, socket, READABLE);
    assert.ok((bits & (READABLE | ERROR)) !== 0);
  }
  throw new Error('tryRecv kept returning WOULD_BLOCK after READABLE polls');
}

/** Collects what a node:net peer receives. */
function collect(peer: net.Socket) {
  const chunks: Buffer[] = [];
  let got = 0;
  let want = Number.POSITIVE_INFINITY;
  let wake: (() => void) | null = null;
  peer.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    got += chunk.length;
    if (got >= want) wake?.();
  });
  peer.resume();
  return {
    get bytes() {
      return got;
    },
    all: () => Buffer.concat(chunks),
    /** Resolves once `n` bytes arrived; fails after `timeoutMs`. */
    async atLeast(n: number, timeoutMs = 10_000) {
      if (got >= n) return;
      want = n;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          wake = resolve;
        }),
        new Promise<void>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`only ${got} of ${n} bytes arrived within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]).finally(() => clearTimeout(timer));
    },
  };
}

/** Fills the connection against a paused peer with posted sends until one stays pending. */
async function fillWithPostedSends(
  pair: { port: CompletionPort<string, unknown>; socket: TcpSocket },
  block: Buffer,
) {
  const ov = new Overlapped();
  let sent = 0;
  for (let i = 0; i < 400; i++) {
    pair.socket.send(block, ov);
    const c = await pair.port.dequeue({ timeoutMs: 150 });
    if (c === null) return { ov, sent };
    assert.equal(c.error, null);
    sent += c.bytes;
  }
  throw new Error(`400 sends of ${block.length} bytes all completed against a paused reader`);
}

function connected(socket: net.Socket): Promise<void> {
  if (socket.readyState === 'open') return Promise.resolve();
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
}

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`readiness and non-blocking attempts: ${name}`, { skip: skip ?? false }, () => {
    if (engine === undefined) return;

    test(
      'poll WRITABLE on a fresh connection completes once, never inside the posting call',
      TIMEOUT,
      async () => {
        const pair = await openPair(engine);
        try {
          const ov = postPoll(pair.port, pair.socket, WRITABLE);
          assert.equal(pair.socket.pendingOperations, 1);
          assert.equal(await pollResult(pair.port, ov, WRITABLE), WRITABLE);
          await nothingFor(pair.port, 50, 'a poll completes exactly once');
          assert.equal(pair.socket.pendingOperations, 0);
        } finally {
          pair.close();
        }
      },
    );

    test(
      'a READABLE poll stays pending until the peer writes, then completes once with READABLE',
      TIMEOUT,
      async () => {
        const pair = await openPair(engine);
        try {
          const readable = postPoll(pair.port, pair.socket, READABLE);
          // Several polls may wait on one socket: a WRITABLE one completes meanwhile.
          const writable = postPoll(pair.port, pair.socket, WRITABLE);
          assert.equal(await pollResult(pair.port, writable, WRITABLE), WRITABLE);
          await nothingFor(pair.port, 150, 'READABLE does not hold before the peer wrote');
          assert.equal(readable.pending, true);
          pair.peer.write('ping');
          assert.equal(await pollResult(pair.port, readable, READABLE), READABLE);
          await nothingFor(pair.port, 50, 'the poll completes exactly once');
          assert.equal(pair.socket.pendingOperations, 0);
          // A poll asking for both reports both, and the bytes are there for tryRecv.
          assert.equal(
            await poll(pair.port, pair.socket, READABLE | WRITABLE),
            READABLE | WRITABLE,
          );
          const buffer = Buffer.alloc(64);
          assert.equal(pair.socket.tryRecv(buffer), 4);
          assert.equal(buffer.toString('latin1', 0, 4), 'ping');
        } finally {
          pair.close();
        }
      },
    );

    test(
      'tryRecv: WOULD_BLOCK when empty, then the exact bytes, then 0 after the peer ends; HANGUP reports the FIN when asked',
      TIMEOUT,
      async () => {
        const pair = await openPair(engine);
        try {
          const buffer = Buffer.alloc(4096);
          assert.equal(pair.socket.tryRecv(buffer), WOULD_BLOCK, 'nothing to receive yet');
          const data = randomBytes(3000);
          pair.peer.write(data);
          const got: Buffer[] = [];
          let total = 0;
          while (total < data.length) {
            const n = await tryRecvWaiting(pair.port, pair.socket, buffer);
            assert.ok(n > 0, `bytes, not ${n}, before the peer ends`);
            got.push(Buffer.from(buffer.subarray(0, n)));
            total += n;
          }
          assert.ok(Buffer.concat(got).equals(data), 'the exact bytes, once, in order');
          assert.equal(pair.socket.tryRecv(buffer), WOULD_BLOCK, 'nothing left');

          const hangup = postPoll(pair.port, pair.socket, READABLE | HANGUP);
          await nothingFor(pair.port, 150, 'neither READABLE nor HANGUP holds before the FIN');
          pair.peer.end();
          assert.equal(await pollResult(pair.port, hangup, READABLE | HANGUP), READABLE | HANGUP);
          assert.equal(
            await poll(pair.port, pair.socket, READABLE),
            READABLE,
            'HANGUP is reported only when asked',
          );
          assert.equal(pair.socket.tryRecv(buffer), 0, 'end of stream');
          assert.equal(pair.socket.tryRecv(buffer), 0, 'end of stream stays end of stream');
        } finally {
          pair.close();
        }
      },
    );

    test(
      'a stream read only with poll and tryRecv gets every byte once, in order, within the unread bound',
      TIMEOUT,
      async () => {
        const pair = await openPair(engine);
        try {
          const data = randomBytes(2 * 1024 * 1024 + 7);
          pair.peer.end(data);
          const received = Buffer.alloc(data.length);
          const buffer = Buffer.alloc(7000);
          let at = 0;
          for (;;) {
            const n = await tryRecvWaiting(pair.port, pair.socket, buffer);
            if (n === 0) break;
            assert.ok(n <= buffer.length && at + n <= data.length, `${n} bytes at ${at}: too many`);
            buffer.copy(received, at, 0, n);
            at += n;
            assert.ok(pair.socket.unreadBytes <= MAX_UNREAD_BYTES + 64 * 1024);
          }
          assert.equal(at, data.length, 'end of stream only after every byte');
          assert.ok(received.equals(data), 'every byte once, in order');
        } finally {
          pair.close();
        }
      },
    );

    test(
      'trySend to a peer that does not read ends in WOULD_BLOCK; WRITABLE holds again once it reads; every byte taken arrives',
      TIMEOUT,
      async () => {
        const pair = await openPair(engine);
        try {
          pair.peer.pause();
          // The stream sent is `source` repeated; an odd length moves the seams around.
          const source = randomBytes(100_003);
          const bound = 64 * 1024 * 1024;
          let taken = 0;
          let wouldBlocks = 0;
          let stuck: Overlapped | null = null;
          while (stuck === null) {
            assert.ok(taken < bound, `trySend took ${taken} bytes from a peer that never reads`);
            const at = taken % source.length;
            const n = pair.socket.trySend(source.subarray(at));
            if (n !== WOULD_BLOCK) {
              assert.ok(n >= 1 && n <= source.length - at, `trySend returned ${n}`);
              taken += n;
              continue;
            }
            wouldBlocks++;
            const ov = postPoll(pair.port, pair.socket, WRITABLE);
            const c = await pair.port.dequeue({ timeoutMs: 500 });
            if (c === null) {
              stuck = ov; // full: no room comes while the peer does not read
            } else {
              assert.equal(c.overlapped, ov);
              assert.equal(c.error, null);
              assert.equal(c.bytes, WRITABLE);
            }
          }
          assert.ok(wouldBlocks > 0 && taken > 0);
          const peer = collect(pair.peer);
          assert.equal(await pollResult(pair.port, stuck, WRITABLE), WRITABLE);
          await peer.atLeast(taken);
          await delay(100);
          assert.equal(peer.bytes, taken, 'the peer got exactly the bytes trySend said it took');
          const got = peer.all();
          for (let at = 0; at < taken; at += source.length) {
            const n = Math.min(source.length, taken - at);
            assert.ok(
              got.subarray(at, at + n).equals(source.subarray(0, n)),
              `bytes at ${at} intact`,
            );
          }
        } finally {
          pair.close();
        }
      },
    );

    test(
      'trySend returns WOULD_BLOCK while a posted send is pending; its bytes follow the posted ones',
      TIMEOUT,
      async () => {
        const pair = await openPair(engine);
        try {
          pair.peer.pause();
          const block = Buffer.alloc(256 * 1024, 0x61);
          const { ov, sent } = await fillWithPostedSends(pair, block);
          assert.equal(ov.pending, true);
          assert.equal(pair.socket.trySend(Buffer.from('tail')), WOULD_BLOCK, 'posted sends first');
          const writable = postPoll(pair.port, pair.socket, WRITABLE);
          await nothingFor(
            pair.port,
            150,
            'WRITABLE does not hold while the send waits on a full buffer',
          );
          const peer = collect(pair.peer);
          let sendDone = false;
          let pollDone = false;
          while (!sendDone || !pollDone) {
            const c = await next(pair.port);
            if (c.overlapped === ov) {
              assert.equal(c.error, null);
              assert.equal(c.bytes, block.length);
              sendDone = true;
            } else {
              assert.equal(c.overlapped, writable);
              assert.equal(c.error, null);
              assert.equal(c.bytes, WRITABLE);
              pollDone = true;
            }
          }
          assert.equal(
            pair.socket.trySend(Buffer.from('tail')),
            4,
            'room again, nothing posted pending',
          );
          const total = sent + block.length + 4;
          await peer.atLeast(total);
          await delay(50);
          const got = peer.all();
          assert.equal(got.length, total);
          assert.ok(got.subarray(0, total - 4).every((b) => b === 0x61));
          assert.equal(got.toString('latin1', total - 4), 'tail');
        } finally {
          pair.close();
        }
      },
    );

    test(
      'tryRecv returns WOULD_BLOCK while a posted recv is pending: the recv gets the bytes',
      TIMEOUT,
      async () => {
        const pair = await openPair(engine);
        try {
          pair.peer.write('hello');
          await delay(100);
          const ov = new Overlapped();
          const buffer = Buffer.alloc(64);
          pair.socket.recv(buffer, ov);
          assert.equal(pair.socket.tryRecv(Buffer.alloc(64)), WOULD_BLOCK, 'the posted recv first');
          const c = await next(pair.port);
          assert.equal(c.overlapped, ov);
          assert.equal(c.bytes, 5);
          assert.equal(buffer.toString('latin1', 0, 5), 'hello');
          await nothingFor(pair.port, 50, 'the recv completes once');
          assert.equal(pair.socket.tryRecv(Buffer.alloc(64)), WOULD_BLOCK, 'nothing left over');
        } finally {
          pair.close();
        }
      },
    );

    test(
      'cancel(ov) aborts a pending poll once; cancel() aborts every poll; the connection goes on',
      TIMEOUT,
      async () => {
        const pair = await openPair(engine);
        try {
          const one = postPoll(pair.port, pair.socket, READABLE);
          assert.equal(pair.socket.cancel(one), true);
          assert.equal(pair.socket.cancel(one), false, 'nothing left to cancel');
          const c = await next(pair.port);
          assert.equal(c.overlapped, one);
          assert.ok(aborted(c.error), `expected OVL_ERR_ABORTED, got ${String(c.error)}`);
          assert.equal(c.bytes, 0);
          await nothingFor(pair.port, 50, 'a cancelled poll completes once');
          assert.equal(pair.socket.pendingOperations, 0);

          const polls = [
            postPoll(pair.port, pair.socket, READABLE),
            postPoll(pair.port, pair.socket, READABLE | HANGUP),
          ];
          assert.equal(pair.socket.cancel(), true);
          const done = new Set<unknown>();
          for (let i = 0; i < polls.length; i++) {
            const a = await next(pair.port);
            assert.ok(polls.includes(a.overlapped as Overlapped));
            assert.ok(aborted(a.error), `expected OVL_ERR_ABORTED, got ${String(a.error)}`);
            assert.equal(done.has(a.overlapped), false, 'no poll completes twice');
            done.add(a.overlapped);
          }
          await nothingFor(pair.port, 50, 'nothing else completes');
          assert.equal(pair.socket.pendingOperations, 0);
          assert.equal(pair.socket.cancel(), false);

          pair.peer.write('after');
          const buffer = Buffer.alloc(16);
          assert.equal(await tryRecvWaiting(pair.port, pair.socket, buffer), 5);
          assert.equal(buffer.toString('latin1', 0, 5), 'after');
          const arriving = readExactly(pair.peer, 2);
          assert.equal(pair.socket.trySend(Buffer.from('ok')), 2);
          assert.equal((await arriving).toString(), 'ok');
        } finally {
          pair.close();
        }
      },
    );

    test(
      'cancel() of polls while try-sent bytes still wait to leave loses none of them',
      TIMEOUT,
      async () => {
        const pair = await openPair(engine);
        try {
          pair.peer.pause();
          const source = randomBytes(64 * 1024);
          let taken = 0;
          // Fill what the socket takes; the last WOULD_BLOCK leaves bytes queued behind a full peer.
          for (let round = 0; round < 10_000; round++) {
            const n = pair.socket.trySend(source);
            if (n !== WOULD_BLOCK) {
              assert.ok(n >= 1 && n <= source.length);
              taken += n;
              continue;
            }
            const ov = postPoll(pair.port, pair.socket, WRITABLE);
            if ((await pair.port.dequeue({ timeoutMs: 300 })) === null) {
              assert.equal(pair.socket.cancel(ov), true);
              assert.ok(aborted((await next(pair.port)).error));
              break;
            }
          }
          assert.ok(taken > 0);
          const polls = [
            postPoll(pair.port, pair.socket, READABLE),
            postPoll(pair.port, pair.socket, WRITABLE),
          ];
          assert.equal(pair.socket.cancel(), true);
          for (let i = 0; i < polls.length; i++) assert.ok(aborted((await next(pair.port)).error));
          assert.equal(pair.socket.pendingOperations, 0);
          const peer = collect(pair.peer);
          await peer.atLeast(taken);
          await delay(50);
          assert.equal(peer.bytes, taken, 'every byte trySend took arrives: cancel reset nothing');
          pair.peer.write('alive');
          const buffer = Buffer.alloc(16);
          assert.equal(await tryRecvWaiting(pair.port, pair.socket, buffer), 5);
        } finally {
          pair.close();
        }
      },
    );

    test('close() aborts every pending poll exactly once', TIMEOUT, async () => {
      const pair = await openPair(engine);
      try {
        const polls = [
          postPoll(pair.port, pair.socket, READABLE),
          postPoll(pair.port, pair.socket, READABLE | HANGUP),
          postPoll(pair.port, pair.socket, HANGUP),
        ];
        assert.equal(pair.socket.pendingOperations, 3);
        pair.socket.close();
        const done = new Set<unknown>();
        for (let i = 0; i < polls.length; i++) {
          const c = await next(pair.port);
          assert.ok(aborted(c.error), `expected OVL_ERR_ABORTED, got ${String(c.error)}`);
          assert.equal(done.has(c.overlapped), false);
          done.add(c.overlapped);
        }
        await nothingFor(pair.port, 50, 'nothing completes twice');
        assert.equal(pair.socket.pendingOperations, 0);
        assert.throws(
          () => pair.socket.poll(READABLE, new Overlapped()),
          hasCode('OVL_ERR_HANDLE_CLOSED'),
        );
        assert.throws(() => pair.socket.tryRecv(Buffer.alloc(8)), hasCode('OVL_ERR_HANDLE_CLOSED'));
      } finally {
        pair.close();
      }
    });

    test(
      'after a peer reset a poll reports ERROR, tryRecv throws ECONNRESET and trySend an OS error',
      TIMEOUT,
      async () => {
        const pair = await openPair(engine);
        try {
          const ov = postPoll(pair.port, pair.socket, READABLE);
          pair.peer.resetAndDestroy();
          const bits = await pollResult(pair.port, ov, READABLE);
          assert.equal(bits & (READABLE | ERROR), READABLE | ERROR, `got ${bitNames(bits)}`);
          // No FIN came before the reset, so the first receive sees the reset on every engine.
          assert.throws(
            () => pair.socket.tryRecv(Buffer.alloc(8)),
            (err: unknown) => err instanceof OsError && err.code === 'ECONNRESET',
          );
          assert.throws(
            () => pair.socket.trySend(Buffer.from('x')),
            (err: unknown) =>
              err instanceof OsError && (err.code === 'ECONNRESET' || err.code === 'EPIPE'),
          );
        } finally {
          pair.close();
        }
      },
    );

    test(
      'a poll posted while connecting completes WRITABLE once the connection is made',
      TIMEOUT,
      async () => {
        const server = net.createServer((s) => s.pipe(s));
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const port = new CompletionPort<string, unknown>({ concurrency: 1 });
        try {
          const connect = new Overlapped();
          const { port: serverPort } = server.address() as net.AddressInfo;
          const socket = TcpSocket.connect({ engine, port: serverPort }, connect);
          port.associate(socket, 'client');
          const writable = postPoll(port, socket, WRITABLE);
          const seen = new Map<unknown, Completion<string, unknown>>();
          for (let i = 0; i < 2; i++) {
            const c = await next(port);
            seen.set(c.overlapped, c);
          }
          assert.equal(seen.get(connect)?.error, null);
          assert.equal(seen.get(writable)?.error, null);
          assert.equal(seen.get(writable)?.bytes, WRITABLE);
          assert.equal(socket.trySend(Buffer.from('echo')), 4);
          const buffer = Buffer.alloc(8);
          assert.equal(await tryRecvWaiting(port, socket, buffer), 4);
          assert.equal(buffer.toString('latin1', 0, 4), 'echo');
          socket.close();
        } finally {
          server.close();
          port.close();
        }
      },
    );

    test(
      'tryAccept: null with no client; a listener poll completes READABLE when one connects; tryAccept then gives a working socket',
      TIMEOUT,
      async () => {
        const port = new CompletionPort<string, unknown>({ concurrency: 1 });
        const listener = await TcpListener.listen({ engine, port: 0 });
        port.associate(listener, 'listener');
        let client: net.Socket | null = null;
        let accepted: TcpSocket | null = null;
        try {
          assert.equal(listener.tryAccept(), null, 'no connection waiting');
          const ov = new Overlapped();
          listener.poll(ov);
          assert.equal(ov.pending, true, 'pending when poll() returns');
          assert.equal(port.size, 0);
          await nothingFor(port, 150, 'READABLE does not hold with no client');
          client = net.connect(listener.address.port, '127.0.0.1');
          client.on('error', () => {});
          const c = await next(port);
          assert.equal(c.overlapped, ov);
          assert.equal(c.error, null);
          assert.equal(c.bytes, READABLE);
          assert.equal(ov.operation, 'poll');
          accepted = listener.tryAccept();
          assert.ok(accepted instanceof TcpSocket, 'the waiting connection');
          assert.equal(accepted.port, null, 'not associated with any port yet');
          assert.equal(listener.tryAccept(), null, 'only one was waiting');
          assert.equal(listener.pendingOperations, 0);
          port.associate(accepted, 'accepted');
          await connected(client);
          assert.equal(accepted.remoteAddress?.port, client.localPort);
          assert.equal(await poll(port, accepted, WRITABLE), WRITABLE);
          const arriving = readExactly(client, 2);
          assert.equal(accepted.trySend(Buffer.from('hi')), 2);
          assert.equal((await arriving).toString(), 'hi');
          client.write('yo');
          const buffer = Buffer.alloc(8);
          assert.equal(await tryRecvWaiting(port, accepted, buffer), 2);
          assert.equal(buffer.toString('latin1', 0, 2), 'yo');
        } finally {
          client?.destroy();
          accepted?.close();
          listener.close();
          port.close();
        }
      },
    );

    test(
      'tryAccept returns null while a posted accept is pending: the accept gets the connection',
      TIMEOUT,
      async () => {
        const port = new CompletionPort<string, unknown>({ concurrency: 1 });
        const listener = await TcpListener.listen({ engine, port: 0 });
        port.associate(listener, 'listener');
        const client = net.connect(listener.address.port, '127.0.0.1');
        client.on('error', () => {});
        try {
          const ready = new Overlapped();
          listener.poll(ready);
          assert.equal((await next(port)).bytes, READABLE, 'a connection is waiting');
          const accept = new Overlapped();
          listener.accept(accept);
          assert.equal(listener.tryAccept(), null, 'posted accepts are served first');
          const c = await next(port);
          assert.equal(c.overlapped, accept);
          assert.equal(c.error, null);
          const socket = accept.socket;
          assert.ok(socket instanceof TcpSocket);
          port.associate(socket, 'accepted');
          await connected(client);
          client.write('mine');
          const buffer = Buffer.alloc(8);
          assert.equal(await tryRecvWaiting(port, socket, buffer), 4);
          assert.equal(buffer.toString('latin1', 0, 4), 'mine');
          assert.equal(listener.tryAccept(), null);
          socket.close();
        } finally {
          client.destroy();
          listener.close();
          port.close();
        }
      },
    );

    test('listener polls: cancel(ov) and close() abort them exactly once', TIMEOUT, async () => {
      const port = new CompletionPort<string, unknown>({ concurrency: 1 });
      const listener = await TcpListener.listen({ engine, port: 0 });
      port.associate(listener, 'listener');
      try {
        const one = new Overlapped();
        listener.poll(one);
        assert.equal(listener.cancel(one), true);
        const c = await next(port);
        assert.equal(c.overlapped, one);
        assert.ok(aborted(c.error), `expected OVL_ERR_ABORTED, got ${String(c.error)}`);
        await nothingFor(port, 50, 'completes once');
        const two = new Overlapped();
        listener.poll(two);
        listener.close();
        const d = await next(port);
        assert.equal(d.overlapped, two);
        assert.ok(aborted(d.error), `expected OVL_ERR_ABORTED, got ${String(d.error)}`);
        await nothingFor(port, 50, 'completes once');
        assert.equal(listener.pendingOperations, 0);
        assert.throws(() => listener.tryAccept(), hasCode('OVL_ERR_HANDLE_CLOSED'));
      } finally {
        listener.close();
        port.close();
      }
    });

    test('detach() is not supported: a node:net socket cannot leave its event loop', {
      ...TIMEOUT,
      skip: name === 'node' ? false : `detach on ${name} is tested in that engine's own suite`,
    }, async () => {
      const pair = await openPair(engine);
      try {
        assert.equal(engine.blocking, undefined, 'no blocking descriptor calls either');
        assert.throws(() => pair.socket.detach(), hasCode('OVL_ERR_NOT_SUPPORTED'));
        assert.equal(pair.socket.closed, false, 'the socket is still open');
        const arriving = readExactly(pair.peer, 5);
        assert.equal(pair.socket.trySend(Buffer.from('still')), 5);
        assert.equal((await arriving).toString(), 'still');
      } finally {
        pair.close();
      }
    });
  });
}
