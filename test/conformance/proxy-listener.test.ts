/**
 * A TCP listener with `proxyProtocol`, on every engine that runs here: the
 * header is read before an accept completes, the socket names the header's
 * client, and every byte after the header reaches the application exactly
 * (posted recvs, pooled recvs, tryRecv after poll), however the header and
 * the data are split across segments. Failures close that connection only,
 * with an OVL_ERR_PROXY_* report.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, test } from 'node:test';
import { CompletionPort } from '../../src/core/completion-port.js';
import type { OverlappedError } from '../../src/core/errors.js';
import { Overlapped } from '../../src/core/overlapped.js';
import { type ListenOptions, TcpListener } from '../../src/core/tcp-listener.js';
import type { TcpSocket } from '../../src/core/tcp-socket.js';
import { type Engine, Readiness, WOULD_BLOCK } from '../../src/engines/contract.js';
import { delay, enginesUnderTest, next } from '../support/engines.js';
import { v1Header, v2Header } from '../support/proxy-headers.js';

interface Setup {
  port: CompletionPort<string, unknown>;
  listener: TcpListener;
  errors: { code: string; peer: string }[];
  connect(): Promise<net.Socket>;
  close(): void;
}

async function setup(engine: Engine, options: Partial<ListenOptions> = {}): Promise<Setup> {
  const port = new CompletionPort<string, unknown>({ concurrency: 1 });
  const listener = await TcpListener.listen({
    engine,
    port: 0,
    proxyProtocol: 'any',
    ...options,
  });
  port.associate(listener, 'listener');
  const errors: { code: string; peer: string }[] = [];
  listener.onProxyError = (error: OverlappedError, peer) => errors.push({ code: error.code, peer });
  const peers: net.Socket[] = [];
  return {
    port,
    listener,
    errors,
    connect: () =>
      new Promise((resolve, reject) => {
        const peer = net.connect({ host: '127.0.0.1', port: listener.address.port });
        peers.push(peer);
        peer.once('connect', () => resolve(peer));
        peer.once('error', reject);
      }),
    close() {
      for (const p of peers) p.destroy();
      listener.close();
      port.close();
    },
  };
}

async function accepted(s: Setup): Promise<TcpSocket> {
  const ov = new Overlapped();
  s.listener.accept(ov);
  const c = await next(s.port);
  assert.equal(c.overlapped, ov);
  assert.equal(c.error, null);
  const socket = ov.socket as TcpSocket;
  s.port.associate(socket, 'socket');
  return socket;
}

/** Receives on `socket` until `n` bytes came, through posted recvs of `size` bytes (or pooled). */
async function receive(
  s: Setup,
  socket: TcpSocket,
  n: number,
  size: number | 'pooled',
): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  const ov = new Overlapped();
  while (got < n) {
    const buffer = size === 'pooled' ? null : Buffer.alloc(size);
    if (buffer === null) socket.recvPooled(ov);
    else socket.recv(buffer, ov);
    const c = await next(s.port);
    assert.equal(c.error, null);
    assert.ok(c.bytes > 0, `end of stream after ${got} of ${n} bytes`);
    if (buffer === null) {
      parts.push(Buffer.from(ov.lease?.view ?? Buffer.alloc(0)));
      ov.lease?.release();
    } else parts.push(Buffer.from(buffer.subarray(0, c.bytes)));
    got += c.bytes;
  }
  return Buffer.concat(parts);
}

/** Writes `bytes` in pieces cut at `cuts`, with a pause between, so they arrive as separate segments. */
async function writeCut(peer: net.Socket, bytes: Buffer, cuts: number[]): Promise<void> {
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    peer.write(bytes.subarray(from, cut));
    from = cut;
    await delay(15);
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`PROXY protocol listener: ${name}`, { skip: skip ?? false }, () => {
    if (engine === undefined) return;

    test('a v1 header split over segments, with data in its last one: the accept waits for the header, the recvs get the data exactly', async () => {
      const s = await setup(engine, { proxyProtocol: 'v1' });
      try {
        const peer = await s.connect();
        const ov = new Overlapped();
        s.listener.accept(ov);
        const header = v1Header('TCP4', '127.0.0.7', '127.0.0.1', 40001, 5150);
        const data = Buffer.from('first bytes after the header');
        const all = Buffer.concat([header, data]);
        await writeCut(peer, all, [1, 6, 20, header.length - 1, header.length + 3]);
        const c = await next(s.port);
        assert.equal(c.overlapped, ov);
        const socket = ov.socket as TcpSocket;
        s.port.associate(socket, 'socket');
        assert.deepEqual(socket.remoteAddress, {
          address: '127.0.0.7',
          port: 40001,
          family: 'IPv4',
        });
        assert.equal(socket.proxiedBy?.address, '127.0.0.1');
        assert.equal(socket.proxiedBy?.port, peer.localPort);
        assert.equal(socket.proxyHeader?.version, 1);
        assert.deepEqual(socket.proxyHeader?.destination, {
          address: '127.0.0.1',
          port: 5150,
          family: 'IPv4',
        });
        const got = await receive(s, socket, data.length, 7);
        assert.equal(got.toString(), data.toString());
        assert.deepEqual(s.errors, []);
        socket.close();
      } finally {
        s.close();
      }
    });

    for (const size of [1, 4096, 'pooled'] as const) {
      test(`a v2 header and 256 KiB in one write: every byte after the header, once, in order (recv of ${size})`, async () => {
        const s = await setup(engine, { proxyProtocol: 'v2' });
        try {
          const peer = await s.connect();
          const header = v2Header({
            command: 'proxy',
            source: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
            destination: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            sourcePort: 51000,
            destinationPort: 443,
            tlvs: Buffer.from([0x04, 0x00, 0x03, 1, 2, 3]),
          });
          const data = randomBytes(size === 1 ? 2048 : 256 * 1024);
          peer.write(Buffer.concat([header, data]));
          const socket = await accepted(s);
          assert.deepEqual(socket.remoteAddress, {
            address: '2001:db8::9',
            port: 51000,
            family: 'IPv6',
          });
          const got = await receive(s, socket, data.length, size);
          assert.equal(got.length, data.length);
          assert.equal(sha(got), sha(data));
          socket.close();
        } finally {
          s.close();
        }
      });
    }

    test('readiness: the listener polls readable only once a header is complete; tryAccept, poll and tryRecv see the bytes after it', async () => {
      const s = await setup(engine);
      try {
        const peer = await s.connect();
        const poll = new Overlapped();
        s.listener.poll(poll);
        const header = v1Header('TCP6', '::1', '::1', 1234, 80);
        peer.write(header.subarray(0, 10));
        await delay(50);
        assert.equal(poll.pending, true, 'readable before the header is complete');
        assert.equal(s.listener.tryAccept(), null);
        peer.write(Buffer.concat([header.subarray(10), Buffer.from('tail')]));
        const c = await next(s.port);
        assert.equal(c.overlapped, poll);
        assert.equal(c.bytes & Readiness.READABLE, Readiness.READABLE);
        const socket = s.listener.tryAccept() as TcpSocket;
        assert.notEqual(socket, null);
        assert.equal(socket.remoteAddress?.address, '::1');
        assert.equal(socket.remoteAddress?.port, 1234);
        s.port.associate(socket, 'socket');
        const readable = new Overlapped();
        socket.poll(Readiness.READABLE, readable);
        const r = await next(s.port);
        assert.equal(r.overlapped, readable);
        const buffer = Buffer.alloc(64);
        let got = '';
        for (let i = 0; i < 50 && got.length < 4; i++) {
          const n = socket.tryRecv(buffer);
          if (n === WOULD_BLOCK) await delay(10);
          else got += buffer.toString('latin1', 0, n);
        }
        assert.equal(got, 'tail');
        socket.close();
      } finally {
        s.close();
      }
    });

    test('v2 LOCAL keeps the connection own address; UNKNOWN too', async () => {
      const s = await setup(engine);
      try {
        for (const header of [
          v2Header({
            command: 'local',
            source: null,
            destination: null,
            sourcePort: 0,
            destinationPort: 0,
          }),
          Buffer.from('PROXY UNKNOWN\r\n'),
        ]) {
          const peer = await s.connect();
          peer.write(Buffer.concat([header, Buffer.from('x')]));
          const socket = await accepted(s);
          assert.equal(socket.remoteAddress?.port, peer.localPort);
          assert.deepEqual(socket.proxiedBy, socket.remoteAddress);
          assert.equal((await receive(s, socket, 1, 16)).toString(), 'x');
          socket.close();
        }
      } finally {
        s.close();
      }
    });

    test('no header, a bad one, or one too slow: that connection is reset and reported; a pending accept waits for a good one', async () => {
      const s = await setup(engine, { proxyTimeoutMs: 200 });
      try {
        const ov = new Overlapped();
        s.listener.accept(ov);
        const silent = await s.connect();
        const garbage = await s.connect();
        garbage.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
        const slow = await s.connect();
        slow.write('PROXY TCP4 1.2.3.4');
        const closed = (p: net.Socket) =>
          new Promise<void>((resolve) => {
            p.on('error', () => {});
            p.on('close', () => resolve());
            p.resume();
          });
        await Promise.all([closed(garbage), closed(silent), closed(slow)]);
        assert.equal(ov.pending, true, 'the accept completed for a connection that failed');
        const codes = s.errors.map((e) => e.code).sort();
        assert.deepEqual(codes, [
          'OVL_ERR_PROXY_HEADER',
          'OVL_ERR_PROXY_TIMEOUT',
          'OVL_ERR_PROXY_TIMEOUT',
        ]);
        assert.match(s.errors[0]?.peer ?? '', /^127\.0\.0\.1:\d+$/);
        assert.equal(s.listener.proxyHandshakes, 0);
        const good = await s.connect();
        good.write(v1Header('TCP4', '203.0.113.5', '127.0.0.1', 999, 1));
        const c = await next(s.port);
        assert.equal(c.overlapped, ov);
        assert.equal(ov.socket?.remoteAddress?.address, '203.0.113.5');
        ov.socket?.close();
      } finally {
        s.close();
      }
    });

    test('--proxy-from: a peer outside the networks is reset before its header is read; one inside is served', async () => {
      const outside = await setup(engine, { proxyFrom: ['10.0.0.0/8', 'fd00::/8'] });
      try {
        // Reset at once: the client may see ECONNRESET before its own connect event.
        const peer = net.connect({ host: '127.0.0.1', port: outside.listener.address.port });
        peer.write(v1Header('TCP4', '1.1.1.1', '2.2.2.2', 1, 2));
        await new Promise<void>((resolve) => {
          peer.on('error', () => {});
          peer.on('close', () => resolve());
          peer.resume();
        });
        assert.deepEqual(
          outside.errors.map((e) => e.code),
          ['OVL_ERR_PROXY_SOURCE'],
        );
      } finally {
        outside.close();
      }
      const inside = await setup(engine, { proxyFrom: ['127.0.0.0/8'] });
      try {
        const peer = await inside.connect();
        peer.write(v1Header('TCP4', '1.1.1.1', '2.2.2.2', 1, 2));
        const socket = await accepted(inside);
        assert.equal(socket.remoteAddress?.address, '1.1.1.1');
        socket.close();
      } finally {
        inside.close();
      }
    });

    test('close with handshakes in progress and accepts posted: every accept completes aborted, nothing left pending', async () => {
      const s = await setup(engine);
      const ov = new Overlapped();
      s.listener.accept(ov);
      const peer = await s.connect();
      peer.write('PROX');
      await delay(30);
      assert.equal(s.listener.proxyHandshakes, 1);
      s.listener.close();
      const c = await next(s.port);
      assert.equal(c.overlapped, ov);
      assert.equal((c.error as OverlappedError | null)?.code, 'OVL_ERR_ABORTED');
      assert.equal(s.listener.pendingOperations, 0);
      assert.equal(s.listener.proxyHandshakes, 0);
      await new Promise<void>((resolve) => {
        peer.on('error', () => {});
        peer.on('close', () => resolve());
        peer.resume();
      });
      s.close();
    });
  });
}
