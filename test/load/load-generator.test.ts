import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { LoadConnectError, type LoadReport, runLoad } from '../../src/load/load-generator.js';
import { startPlainServer } from '../support/plain-server.js';

const echo = (socket: Socket) => socket.on('data', (data) => socket.write(data));

/** A port that nothing listens on: bound, read, and released. */
async function unusedPort(): Promise<number> {
  const server = await startPlainServer(() => {});
  await server.close();
  return server.port;
}

function assertSaneLatency(report: LoadReport): void {
  const { p50, p90, p99, max } = report.latencyUs;
  for (const v of [p50, p90, p99, max]) assert.ok(Number.isFinite(v) && v >= 0, `latency ${v}`);
  assert.ok(p50 <= p90 && p90 <= p99 && p99 <= max, JSON.stringify(report.latencyUs));
  assert.ok(max > 0);
  assert.ok(max < 5_000_000, `max latency ${max} µs`);
}

describe('runLoad', () => {
  for (const size of [1, 64, 70000]) {
    it(`counts intact echoes of ${size}-byte messages at depths 1 and 8`, async () => {
      const server = await startPlainServer(echo);
      try {
        for (const depth of [1, 8]) {
          const report = await runLoad({
            port: server.port,
            conns: 3,
            size,
            depth,
            durationSec: 0.4,
          });
          assert.equal(report.errors, 0);
          assert.equal(report.mismatches, 0);
          assert.ok(report.messages > 0, `depth ${depth}: no messages`);
          assert.deepEqual(
            [report.host, report.conns, report.size, report.depth],
            ['127.0.0.1', 3, size, depth],
          );
          assert.ok(report.durationSec >= 0.35 && report.durationSec < 1, `${report.durationSec}`);
          assert.ok(Math.abs(report.messagesPerSec - report.messages / report.durationSec) < 1e-6);
          assert.ok(Math.abs(report.mbPerSec - (report.messagesPerSec * size) / 1e6) < 1e-6);
          assert.equal(report.serverCpuUs, undefined);
          assertSaneLatency(report);
        }
      } finally {
        await server.close();
      }
    });
  }

  it('counts a mismatch when the server corrupts one byte of the stream', async () => {
    let corrupted = false;
    const server = await startPlainServer((socket) => {
      let seen = 0;
      socket.on('data', (data) => {
        if (!corrupted && seen + data.length > 1000) {
          corrupted = true;
          const copy = Buffer.from(data);
          const at = Math.max(0, 1000 - seen);
          copy[at] = (copy[at] as number) ^ 0x01;
          socket.write(copy);
        } else {
          socket.write(data);
        }
        seen += data.length;
      });
    });
    try {
      const report = await runLoad({
        port: server.port,
        conns: 2,
        size: 64,
        depth: 4,
        durationSec: 0.5,
      });
      assert.ok(corrupted, 'the server never corrupted anything');
      assert.equal(report.mismatches, 1);
      assert.equal(report.errors, 0);
      assert.ok(report.messages > 0, 'the intact connection still counts');
      // Stream byte 1000 of 64-byte messages: message 16 (from 1), offset 40 (from 0).
      const m = report.firstMismatch;
      assert.ok(m !== undefined, 'the first wrong byte is reported');
      assert.equal(m.message, 16);
      assert.equal(m.offset, 40);
      assert.ok(m.connection === 1 || m.connection === 2, `connection ${m.connection}`);
      assert.equal(m.actual, (m.expected as number) ^ 0x01);
    } finally {
      await server.close();
    }
  });

  it('counts a mismatch when the server echoes more bytes than were sent', async () => {
    const server = await startPlainServer((socket) => {
      socket.on('data', (data) => socket.write(Buffer.concat([data, data])));
    });
    try {
      const report = await runLoad({
        port: server.port,
        conns: 2,
        size: 16,
        depth: 1,
        durationSec: 0.3,
      });
      assert.equal(report.mismatches, 2);
      // The 16 bytes in flight came back right; the 17th was never sent.
      assert.deepEqual(
        { ...report.firstMismatch, connection: 0, actual: 0 },
        { connection: 0, message: 2, offset: 0, actual: 0 },
      );
    } finally {
      await server.close();
    }
  });

  it('counts errors when the server drops connections', async () => {
    const server = await startPlainServer((socket) => {
      socket.once('data', () => socket.destroy());
    });
    try {
      const started = performance.now();
      const report = await runLoad({
        port: server.port,
        conns: 3,
        size: 64,
        depth: 1,
        durationSec: 5,
      });
      assert.equal(report.errors, 3);
      assert.equal(report.mismatches, 0);
      assert.equal(report.messages, 0);
      assert.ok(performance.now() - started < 2000, 'a run with no connection left ends early');
    } finally {
      await server.close();
    }
  });

  it('rejects with ECONNREFUSED and a clear message when nothing listens', async () => {
    const port = await unusedPort();
    await assert.rejects(
      runLoad({ port, conns: 5, size: 64, depth: 1, durationSec: 0.5 }),
      (err: unknown) => {
        assert.ok(err instanceof LoadConnectError);
        assert.equal(err.code, 'ECONNREFUSED');
        assert.match(err.message, new RegExp(`nothing is listening on 127\\.0\\.0\\.1:${port}`));
        return true;
      },
    );
  });

  it('rejects invalid options with a RangeError', async () => {
    await assert.rejects(
      runLoad({ port: 1, conns: 1, size: 0, depth: 1, durationSec: 1 }),
      RangeError,
    );
    await assert.rejects(
      runLoad({ port: 1, conns: 100000, size: 16 * 2 ** 20, depth: 1024, durationSec: 1 }),
      /MiB of message buffers/,
    );
  });

  it('reports the CPU time of serverPid across the measured window', async () => {
    const server = await startPlainServer(echo);
    try {
      const report = await runLoad({
        port: server.port,
        conns: 2,
        size: 64,
        depth: 2,
        durationSec: 0.5,
        warmupSec: 0.2,
        serverPid: process.pid,
      });
      assert.equal(typeof report.serverCpuUs, 'number');
      assert.ok((report.serverCpuUs as number) >= 0);
      assert.equal(typeof report.serverCpuUsPerMessage, 'number');
      assert.ok(report.durationSec >= 0.45 && report.durationSec < 1, `${report.durationSec}`);
    } finally {
      await server.close();
    }
  });

  it("samples serverPid's RSS idle, with every connection accepted, and at the end", async () => {
    const server = await startPlainServer(echo);
    try {
      const report = await runLoad({
        port: server.port,
        conns: 20,
        size: 64,
        depth: 1,
        durationSec: 0.3,
        serverPid: process.pid,
      });
      const rss = report.serverRss;
      assert.ok(rss !== undefined, 'no serverRss in the report');
      for (const bytes of [rss.idleBytes, rss.connectedBytes, rss.endBytes]) {
        assert.ok(typeof bytes === 'number' && bytes > 0 && bytes % 1024 === 0, `${bytes}`);
      }
      // Server and generator share this process, so its fds grow by 2 per connection.
      assert.equal(rss.allAccepted, true);
    } finally {
      await server.close();
    }
  });

  it('reports no serverRss without a serverPid', async () => {
    const server = await startPlainServer(echo);
    try {
      const report = await runLoad({
        port: server.port,
        conns: 1,
        size: 8,
        depth: 1,
        durationSec: 0.1,
      });
      assert.equal(report.serverRss, undefined);
    } finally {
      await server.close();
    }
  });

  it('stops early on abort and still reports', async () => {
    const server = await startPlainServer(echo);
    try {
      const controller = new AbortController();
      const snapshots: number[] = [];
      setTimeout(() => controller.abort(), 1300);
      const report = await runLoad(
        { port: server.port, conns: 2, size: 64, depth: 1, durationSec: 30 },
        { signal: controller.signal, onProgress: (p) => snapshots.push(p.messages) },
      );
      assert.ok(report.durationSec > 1 && report.durationSec < 2, `${report.durationSec}`);
      assert.ok(report.messages > 0);
      assert.equal(report.errors, 0);
      assert.ok(snapshots.length >= 1, 'progress is reported about once a second');
      assert.equal(report.stoppedEarly, true);
      assert.equal(report.stoppedIn, 'measuring');
    } finally {
      await server.close();
    }
  });

  it('stopped during the warm-up: stoppedEarly, nothing measured', async () => {
    const server = await startPlainServer(echo);
    try {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 500);
      const report = await runLoad(
        { port: server.port, conns: 2, size: 64, depth: 1, durationSec: 5, warmupSec: 30 },
        { signal: controller.signal },
      );
      assert.equal(report.stoppedEarly, true);
      assert.equal(report.stoppedIn, 'warmup');
      assert.equal(report.durationSec, 0);
      assert.equal(report.messages, 0, 'warm-up messages are not counted');
      assert.ok(report.bytesReceived > 0, 'the warm-up load ran');
    } finally {
      await server.close();
    }
  });

  it('a server that accepts and never answers: no messages, no bytes, no errors', async () => {
    const server = await startPlainServer(() => {});
    try {
      const report = await runLoad({
        port: server.port,
        conns: 2,
        size: 64,
        depth: 1,
        durationSec: 0.3,
      });
      assert.deepEqual(
        [
          report.messages,
          report.bytesReceived,
          report.errors,
          report.mismatches,
          report.stoppedEarly,
        ],
        [0, 0, 0, 0, false],
      );
    } finally {
      await server.close();
    }
  });
});
