/**
 * The C load generator (bench/peers/load-gen.c) the echo benchmark runs by default:
 * built with cc like the benchmark builds it, run against the toolkit's echo server,
 * against servers that corrupt or cross data, and with bad flags.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { buildCPeer } from '../../bench/c-build.js';
import type { LoadReport } from '../../src/load/load-generator.js';
import { startEcho, unusedPort } from '../support/echo-fixture.js';
import { startPlainServer } from '../support/plain-server.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the generator to completion; the event loop stays free for an in-process server. */
function runLoadGen(binary: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The built binary, or undefined after marking the test skipped with the reason. */
function loadGen(t: { skip(message?: string): void }): string | undefined {
  const built = buildCPeer('load-gen');
  if ('skip' in built) {
    t.skip(`cannot build bench/peers/load-gen.c: ${built.skip}`);
    return undefined;
  }
  return built.binary;
}

const loadArgs = (port: number, extra: string[] = []) => [
  '--port',
  String(port),
  '--conns',
  '20',
  '--size',
  '100',
  '--depth',
  '2',
  '--duration',
  '0.5',
  ...extra,
];

test('C load generator: intact echoes from the toolkit echo server', async (t) => {
  const binary = loadGen(t);
  if (binary === undefined) return;
  const server = await startEcho();
  try {
    const run = await runLoadGen(
      binary,
      loadArgs(server.address.port, ['--warmup', '0.1', '--server-pid', String(process.pid)]),
    );
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as LoadReport;
    assert.deepEqual(
      [report.host, report.port, report.conns, report.size, report.depth],
      ['127.0.0.1', server.address.port, 20, 100, 2],
    );
    assert.ok(report.messages > 0, run.stdout);
    assert.equal(report.errors, 0);
    assert.equal(report.mismatches, 0);
    assert.ok(report.durationSec >= 0.45 && report.durationSec < 1.5, `${report.durationSec}`);
    assert.ok(Math.abs(report.messagesPerSec - report.messages / report.durationSec) < 1e-6);
    assert.ok(Math.abs(report.mbPerSec - (report.messagesPerSec * 100) / 1e6) < 1e-6);
    const { p50, p90, p99, max } = report.latencyUs;
    assert.ok(p50 <= p90 && p90 <= p99 && p99 <= max, JSON.stringify(report.latencyUs));
    assert.ok(max > 0 && max < 5_000_000, `max latency ${max} µs`);
    assert.ok(report.serverCpuUs !== undefined && report.serverCpuUs >= 0, run.stdout);
    assert.ok(report.serverCpuUsPerMessage !== undefined, run.stdout);
    assert.ok(report.generatorCpuUs !== undefined && report.generatorCpuUs > 0, run.stdout);
    const rss = report.serverRss;
    assert.ok(rss !== undefined, run.stdout);
    assert.ok(rss.idleBytes > 0 && rss.connectedBytes > 0 && (rss.endBytes ?? 0) > 0);
    assert.equal(typeof rss.allAccepted, 'boolean');
  } finally {
    await server.stop();
  }
});

test('C load generator: without --server-pid there are no server figures', async (t) => {
  const binary = loadGen(t);
  if (binary === undefined) return;
  const server = await startPlainServer((socket) =>
    socket.on('data', (data) => socket.write(data)),
  );
  try {
    const run = await runLoadGen(binary, [
      ...loadArgs(server.port).slice(0, -2),
      '--duration',
      '0.3',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as LoadReport;
    assert.ok(report.messages > 0);
    assert.equal(report.errors + report.mismatches, 0);
    assert.equal(report.serverCpuUs, undefined);
    assert.equal(report.serverRss, undefined);
  } finally {
    await server.close();
  }
});

test('C load generator: a server that flips a byte is caught as mismatches', async (t) => {
  const binary = loadGen(t);
  if (binary === undefined) return;
  const server = await startPlainServer((socket) =>
    socket.on('data', (data) => {
      data[data.length - 1] = (data[data.length - 1] as number) ^ 0x01;
      socket.write(data);
    }),
  );
  try {
    const run = await runLoadGen(binary, loadArgs(server.port));
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as LoadReport;
    assert.ok(report.mismatches > 0, run.stdout);
    assert.equal(report.messages, 0, run.stdout);
  } finally {
    await server.close();
  }
});

test('C load generator: a server that crosses connections is caught as mismatches', async (t) => {
  const binary = loadGen(t);
  if (binary === undefined) return;
  // Intact bytes, but echoed on the next connection: only per-connection content tells.
  const server = await startPlainServer((socket, all) =>
    socket.on('data', (data) => {
      const next = all[(all.indexOf(socket) + 1) % all.length] ?? socket;
      next.write(data);
    }),
  );
  try {
    const run = await runLoadGen(binary, loadArgs(server.port));
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as LoadReport;
    assert.ok(report.mismatches > 0, run.stdout);
  } finally {
    await server.close();
  }
});

test('C load generator: bad flags exit 2 with one line saying why', async (t) => {
  const binary = loadGen(t);
  if (binary === undefined) return;
  const cases: [string[], RegExp][] = [
    [loadArgs(1).map((a) => (a === '20' ? '0' : a)), /--conns must be a whole number/],
    [[...loadArgs(1), '--duration', '-1'], /--duration must be a positive number/],
    [[...loadArgs(1), '--warmup', 'soon'], /--warmup/],
    [[...loadArgs(1), '--port', '70000'], /--port/],
    [[...loadArgs(1), '--bogus', '1'], /unknown flag '--bogus'/],
    [['--port', '1'], /--conns is required/],
    [[...loadArgs(1), '--conns', '100000', '--size', '100000'], /MiB of message buffers/],
  ];
  for (const [args, message] of cases) {
    const run = await runLoadGen(binary, args);
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.equal(run.stdout, '');
  }
  const help = await runLoadGen(binary, ['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /usage: load-gen/);
});

test('C load generator: a refused connection exits 1 naming ECONNREFUSED', async (t) => {
  const binary = loadGen(t);
  if (binary === undefined) return;
  const run = await runLoadGen(binary, loadArgs(await unusedPort()));
  assert.equal(run.code, 1);
  assert.match(run.stderr, /ECONNREFUSED/);
  assert.equal(run.stdout, '');
});
