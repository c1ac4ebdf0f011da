/**
 * `overlapped report` end to end on a tiny grid (two models, the node engine, one
 * peer, 0.3 s windows): it writes a results.json that reads back and covers every
 * planned cell, and an index.html with every chart; and bad names on its command
 * line are one-line usage errors that list the valid ones.
 */
import assert from 'node:assert/strict';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildCPeer } from '../../bench/c-build.js';
import { CHARTS } from '../../src/report/charts.js';
import { readResults } from '../../src/report/results.js';
import { runCli } from '../support/cli-runner.js';
import { spawnSync } from 'node:child_process';

const built = buildCPeer('load-gen');
const hasLoadGen = 'binary' in built;
const hasBench = existsSync(fileURLToPath(new URL('../../bench/echo-run.js', import.meta.url)));

test('a tiny grid writes results.json and index.html', {
  timeout: 120_000,
  skip:
    !hasLoadGen &&
    `the C load generator cannot be built here: ${'skip' in built ? built.skip : ''}`,
}, async (t) => {
  assert.ok(hasBench, 'dist/bench is built');
  const out = mkdtempSync(join(tmpdir(), 'ovl-report-cli-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const args = [
    'report',
    '--quick',
    '--models',
    'completion-port,select',
    '--engines',
    'node',
    '--peers',
    'node-net',
    '--duration',
    '0.3',
    '--warmup',
    '0.1',
    '--out',
    out,
  ];
  const result = await runCli(args, '', 110_000, { OVERLAPPED_ENGINE: undefined });
  assert.equal(result.code, 0, result.stderr);
  // The expected length is stated before any cell runs; one line per cell off a TTY.
  assert.match(
    result.stderr,
    /report: 10 cells to run \(0 cannot run here\), about \d+:\d\d \(m:ss\)/,
  );
  assert.equal(result.stderr.match(/^ {2}\[\d+\/10\] /gm)?.length, 10, result.stderr);
  assert.match(result.stdout, /wrote .*results\.json\nwrote .*index\.html\n/);

  const doc = readResults(join(out, 'results.json'));
  assert.equal(doc.machine.node, process.version);
  assert.ok(doc.machine.kernel.length > 0 && doc.date.length > 0);
  assert.deepEqual(doc.options.models, ['completion-port', 'select']);
  assert.deepEqual(
    doc.servers.map((s) => s.id),
    ['ovl-node', 'ovl-node-select', 'node-net'],
  );
  // 3 servers × 3 loaded scenarios (10 and 1,000 connections at 64 B, 10 at 64 KiB), 1 idle cell.
  const cells = doc.runs.map((r) => `${r.server} ${r.scenario} ${r.status}`).sort();
  assert.deepEqual(cells, [
    'node-net c10-s64 ok',
    'node-net c10-s65536 ok',
    'node-net c1000-s64 ok',
    'ovl-node c10-s64 ok',
    'ovl-node c10-s65536 ok',
    'ovl-node c1000-s64 ok',
    'ovl-node idle-1000 ok',
    'ovl-node-select c10-s64 ok',
    'ovl-node-select c10-s65536 ok',
    'ovl-node-select c1000-s64 ok',
  ]);
  for (const run of doc.runs.filter((r) => r.axis !== 'idle')) {
    assert.ok((run.messagesPerSec ?? 0) > 0, `${run.server} ${run.scenario} msgs/s`);
    assert.ok((run.p99Us ?? 0) >= (run.p50Us ?? 0), 'p99 ≥ p50');
    assert.ok((run.cpuUsPerMessage ?? 0) > 0, 'CPU per message');
    assert.ok((run.threads ?? 0) >= 1, 'threads');
    assert.equal(run.errors, 0);
    assert.equal(run.mismatches, 0);
  }
  const idle = doc.runs.find((r) => r.axis === 'idle');
  assert.ok(idle?.idleCpuPercent !== undefined && idle.idleCpuPercent >= 0);

  const html = readFileSync(join(out, 'index.html'), 'utf8');
  for (const chart of CHARTS) assert.ok(html.includes(`<section id="${chart.id}">`), chart.id);
  assert.equal(html.match(/<svg /g)?.length, CHARTS.length);
  assert.ok(html.trimEnd().endsWith('</html>'));
});

test('unknown models, engines and peers are one-line usage errors naming the valid ones', async () => {
  for (const [flag, value, valid] of [
    ['--models', 'completion-port,ioctl', 'completion-port, events, routines, blocking'],
    ['--engines', 'kqueue', 'node, uring'],
    ['--peers', 'nginx', 'node-net, c-epoll'],
  ] as const) {
    const result = await runCli(['report', flag, value, '--out', join(tmpdir(), 'never-written')]);
    assert.equal(result.code, 2, `${flag}: ${result.stderr}`);
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.ok(lines[0]?.startsWith(`overlapped: ${flag}: unknown '`), result.stderr);
    assert.ok(lines[0]?.includes(valid), result.stderr);
  }
  // An --out that cannot be written is refused before anything runs.
  const dir = mkdtempSync(join(tmpdir(), 'ovl-report-out-'));
  try {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const out = await runCli(['report', '--quick', '--out', join(file, 'report')]);
    assert.equal(out.code, 1, out.stderr);
    assert.equal(
      out.stderr,
      `overlapped: --out ${join(file, 'report')}: cannot write there (ENOTDIR): choose another --out\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const duration = await runCli(['report', '--duration', '-1']);
  assert.equal(duration.code, 2);
  assert.equal(
    duration.stderr,
    "overlapped: --duration must be a number of seconds from 0.1 to 600, got '-1'\n",
  );
});

test('from the published package (no bench/) the command says in one line where it runs', (t) => {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const installed = mkdtempSync(join(tmpdir(), 'ovl-report-installed-'));
  t.after(() => rmSync(installed, { recursive: true, force: true }));
  // What the package ships of the CLI: dist/src and package.json, without dist/bench.
  cpSync(join(root, 'dist/src'), join(installed, 'dist/src'), { recursive: true });
  copyFileSync(join(root, 'package.json'), join(installed, 'package.json'));
  symlinkSync(join(root, 'node_modules'), join(installed, 'node_modules'));
  const result = spawnSync(process.execPath, [join(installed, 'dist/src/cli/main.js'), 'report', '--quick'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(result.status, 1, result.stderr);
  assert.match(
    result.stderr,
    /^overlapped: report runs from a clone of the repository: it needs bench\/ .* npm run report\n$/,
  );
});
