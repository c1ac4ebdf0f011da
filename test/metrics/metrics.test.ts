/**
 * The metrics endpoint: the scrape is valid Prometheus text (promtool check
 * metrics), the completion counters follow a known load, a real Prometheus
 * scrapes the endpoint and answers a query about it, and `/readyz` turns
 * 503 while the server drains on stop.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MetricsServer } from '../../src/metrics/metrics-server.js';
import type { EchoService } from '../../src/servers/echo/echo-base.js';
import { startEchoServer } from '../../src/servers/echo/echo-models.js';
import { spawnCli } from '../support/cli-runner.js';
import { freePort, missing, startDaemon, tempDir } from '../support/daemon.js';

const promtoolMissing = missing('promtool', '--version', 'apt-get install -y prometheus');
const prometheusMissing = missing('prometheus', '--version', 'apt-get install -y prometheus');

/** The value of the one sample `name{labels…}` in a scrape (labels in any order), summed over the rest. */
function sample(text: string, name: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total += Number(m[3]);
  }
  return total;
}

/** Sends `count` messages one at a time on one connection, waiting for each echo. */
function echoMessages(port: number, count: number, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const message = Buffer.alloc(size, 0x61);
    let sent = 0;
    let pending = 0;
    socket.setNoDelay(true);
    socket.once('error', reject);
    socket.once('connect', () => {
      sent++;
      pending = size;
      socket.write(message);
    });
    socket.on('data', (chunk: Buffer) => {
      pending -= chunk.length;
      if (pending > 0) return;
      if (sent === count) {
        socket.end();
        socket.once('close', () => resolve());
        return;
      }
      sent++;
      pending = size;
      socket.write(message);
    });
  });
}

async function scrape(
  metrics: MetricsServer,
  path = '/metrics',
): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${metrics.address.port}${path}`);
  return { status: res.status, text: await res.text() };
}

describe('metrics of an echo server', () => {
  let metrics: MetricsServer;
  let echo: EchoService;
  before(async () => {
    metrics = await MetricsServer.start({ host: '127.0.0.1', port: 0 });
    echo = await startEchoServer({ port: 0 });
  });
  after(async () => {
    await echo.stop({ deadlineMs: 1000 });
    await metrics.close();
  });

  test('N echoed messages give at least N recv and N send completions, and the bytes', async () => {
    const before = (await scrape(metrics)).text;
    const n = 3000;
    const size = 100;
    await Promise.all([
      echoMessages(echo.address.port, n / 3, size),
      echoMessages(echo.address.port, n / 3, size),
      echoMessages(echo.address.port, n / 3, size),
    ]);
    const after = (await scrape(metrics)).text;
    const delta = (name: string, labels: Record<string, string>) =>
      sample(after, name, labels) - sample(before, name, labels);
    assert.ok(delta('overlapped_completions_total', { operation: 'recv', result: 'ok' }) >= n);
    assert.ok(delta('overlapped_completions_total', { operation: 'send', result: 'ok' }) >= n);
    assert.ok(delta('overlapped_completion_bytes_total', { operation: 'recv' }) >= n * size);
    assert.equal(delta('overlapped_completion_bytes_total', { operation: 'send' }), n * size);
    assert.equal(delta('overlapped_connections_accepted_total', {}), 3);
    assert.ok(delta('overlapped_completion_batch_size_count', {}) >= 1);
    assert.ok(sample(after, 'overlapped_ports', {}) >= 1);
    // Every posted recv of the three closed connections completed: only the listener's accepts wait.
    assert.equal(sample(after, 'overlapped_operations_in_flight', { operation: 'send' }), 0);
    assert.ok(
      sample(after, 'process_cpu_user_seconds_total', {}) > 0,
      "Node's default metrics are there",
    );
  });

  test('refusals are counted by reason: a bad PROXY header, a server at its connection limit', async () => {
    // A buffer per connection (not the default pooled receives), so the recv lends its buffer.
    const guarded = await startEchoServer({
      port: 0,
      proxyProtocol: 'v1',
      maxConnections: 1,
      pooled: false,
    });
    try {
      const before = (await scrape(metrics)).text;
      const port = guarded.address.port;
      const closed = (socket: net.Socket) =>
        new Promise<void>((resolve) => {
          socket.on('error', () => {});
          socket.on('close', () => resolve());
          socket.resume();
        });
      const bare = net.connect({ host: '127.0.0.1', port }, () => bare.write('GET /\r\n'));
      await closed(bare);
      const held = net.connect({ host: '127.0.0.1', port }, () =>
        held.write('PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nx'),
      );
      await new Promise((r) => held.once('data', r));
      // The held connection's recv is posted with its 8 KiB buffer: lent until it completes.
      const during = (await scrape(metrics)).text;
      assert.ok(sample(during, 'overlapped_lent_bytes', {}) >= 8192);
      assert.ok(sample(during, 'overlapped_connections_open', {}) >= 1);
      assert.ok(sample(during, 'overlapped_operations_in_flight', { operation: 'recv' }) >= 1);
      const extra = net.connect({ host: '127.0.0.1', port }, () =>
        extra.write('PROXY TCP4 192.0.2.3 192.0.2.2 1 2\r\n'),
      );
      await closed(extra);
      held.destroy();
      const after = (await scrape(metrics)).text;
      const delta = (name: string, labels: Record<string, string>) =>
        sample(after, name, labels) - sample(before, name, labels);
      assert.equal(delta('overlapped_connections_refused_total', { reason: 'proxy_header' }), 1);
      assert.equal(delta('overlapped_errors_total', { code: 'OVL_ERR_PROXY_HEADER' }), 1);
      assert.equal(delta('overlapped_connections_refused_total', { reason: 'max_connections' }), 1);
      assert.equal(delta('overlapped_limit_closes_total', { limit: 'max_connections' }), 1);
    } finally {
      await guarded.stop({ deadlineMs: 1000 });
    }
  });

  test('the scrape passes promtool check metrics', async (t) => {
    if (promtoolMissing !== undefined) {
      t.skip(promtoolMissing);
      return;
    }
    await echoMessages(echo.address.port, 10, 10);
    const { status, text } = await scrape(metrics);
    assert.equal(status, 200);
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stdin.end(text);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 0, `promtool check metrics failed:\n${out}`);
  });

  test('/healthz is 200; /readyz 200 until draining, then 503; other paths 404', async () => {
    assert.equal((await scrape(metrics, '/healthz')).status, 200);
    assert.equal((await scrape(metrics, '/readyz')).status, 200);
    assert.equal((await scrape(metrics, '/nope')).status, 404);
  });

  test('a real Prometheus scrapes the endpoint and answers a query about it', async (t) => {
    if (prometheusMissing !== undefined) {
      t.skip(prometheusMissing);
      return;
    }
    const dir = tempDir('ovl-prometheus-');
    const webPort = await freePort();
    const config = join(dir.path, 'prometheus.yml');
    writeFileSync(
      config,
      `global:
  scrape_interval: 1s
scrape_configs:
  - job_name: overlapped
    static_configs:
      - targets: ['127.0.0.1:${metrics.address.port}']
`,
    );
    const prometheus = await startDaemon(
      'prometheus',
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir.path, 'data')}`,
        `--web.listen-address=127.0.0.1:${webPort}`,
      ],
      webPort,
      30_000,
    );
    try {
      await echoMessages(echo.address.port, 50, 10);
      const query = encodeURIComponent(
        'sum(overlapped_completions_total{job="overlapped",operation="recv",result="ok"})',
      );
      const deadline = performance.now() + 30_000;
      let value = 0;
      for (;;) {
        const res = await fetch(`http://127.0.0.1:${webPort}/api/v1/query?query=${query}`);
        if (res.status === 503) {
          // Prometheus answers 503 until its storage is open.
          assert.ok(performance.now() < deadline, 'Prometheus never became ready');
          await new Promise((r) => setTimeout(r, 250));
          continue;
        }
        const body = (await res.json()) as {
          status: string;
          data?: { result?: { value: [number, string] }[] };
        };
        assert.equal(body.status, 'success');
        const result = body.data?.result?.[0];
        if (result !== undefined) {
          value = Number(result.value[1]);
          if (value >= 50) break;
        }
        assert.ok(
          performance.now() < deadline,
          `Prometheus had no scrape with the recvs (last: ${value})`,
        );
        await new Promise((r) => setTimeout(r, 250));
      }
      const up = await fetch(
        `http://127.0.0.1:${webPort}/api/v1/query?query=${encodeURIComponent('up{job="overlapped"}')}`,
      );
      const upBody = (await up.json()) as { data: { result: { value: [number, string] }[] } };
      assert.equal(upBody.data.result[0]?.value[1], '1');
    } catch (err) {
      throw new Error(
        `${(err as Error).message}\nprometheus said:\n${prometheus.output().slice(-3000)}`,
      );
    } finally {
      await prometheus.stop();
      dir.remove();
    }
  });
});

/** A CLI child's JSON log lines as they come, its exit, and a wait for a line that matches. */
function watch(child: ReturnType<typeof spawnCli>) {
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  const waiters: {
    match: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  child.stdout.on('data', (chunk: Buffer) => {
    const texts = (partial + chunk.toString()).split('\n');
    partial = texts.pop() ?? '';
    for (const text of texts) {
      if (!text.startsWith('{')) continue;
      const line = JSON.parse(text) as Record<string, unknown>;
      lines.push(line);
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i] as (typeof waiters)[number];
        if (w.match(line)) {
          waiters.splice(i, 1);
          w.resolve(line);
        }
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  return {
    exited,
    line(match: (l: Record<string, unknown>) => boolean, timeoutMs = 10_000) {
      const seen = lines.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no such log line; got: ${JSON.stringify(lines)}`)),
          timeoutMs,
        );
        waiters.push({
          match,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
  };
}

describe('metrics on the command line', () => {
  test('echo --metrics: /readyz is 503 from the start of the stop while a busy client drains', async () => {
    const child = spawnCli(['echo', '--port', '0', '--metrics', '0', '--log-format', 'json']);
    const server = watch(child);
    try {
      const started = await server.line(
        (l) => typeof l.port === 'number' && String(l.msg).includes('listening'),
      );
      const metricsLine = await server.line((l) => typeof l.metrics === 'string');
      const base = String(metricsLine.metrics).replace(/\/metrics$/, '');
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
      // A client that sends 16 MiB and never reads keeps the drain going until the stop deadline.
      const hog = net.connect({ host: '127.0.0.1', port: started.port as number });
      hog.on('error', () => {});
      await new Promise((r) => hog.once('connect', r));
      hog.pause();
      hog.write(Buffer.alloc(16 * 1024 * 1024, 5));
      await new Promise((r) => setTimeout(r, 300));
      child.kill('SIGTERM');
      await server.line((l) => l.msg === 'stopping');
      const ready = await fetch(`${base}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(await ready.text(), 'draining\n');
      assert.equal((await fetch(`${base}/healthz`)).status, 200, 'still live while draining');
      hog.destroy();
      assert.equal(await server.exited, 0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('pipe-server --metrics: a request shows as read and write completions', async () => {
    const name = `ovl-metrics-${process.pid}`;
    const child = spawnCli([
      'pipe-server',
      '--name',
      name,
      '--metrics',
      '0',
      '--log-format',
      'json',
    ]);
    const server = watch(child);
    try {
      const metricsLine = await server.line((l) => typeof l.metrics === 'string');
      const client = spawnCli(['pipe-client', '--name', name, 'hello']);
      const code = await new Promise<number | null>((resolve) => client.once('close', resolve));
      assert.equal(code, 0);
      const text = await (await fetch(String(metricsLine.metrics))).text();
      assert.ok(
        sample(text, 'overlapped_completions_total', { operation: 'read', result: 'ok' }) >= 1,
        text,
      );
      assert.ok(
        sample(text, 'overlapped_completions_total', { operation: 'write', result: 'ok' }) >= 1,
      );
      assert.equal(sample(text, 'overlapped_connections_accepted_total', {}), 1);
    } finally {
      child.kill('SIGTERM');
      await server.exited;
    }
  });
});
