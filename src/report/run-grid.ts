/**
 * Runs a report's grid: probes every server once, plans every cell (marking the
 * ones that cannot run, with why), states the expected length, then runs the
 * cells one after the other under the same load, through the echo bench's own
 * machinery (bench/echo-run.ts: pinning, probing, the C load generator).
 */
import { connect, type Socket } from 'node:net';
import {
  chooseLoader,
  choosePinning,
  freePort,
  type Loader,
  oneLine,
  openFileLimit,
  type Pinning,
  probe,
  runCell,
  SPARE_FDS,
  sleep,
  spawnPinned,
  stopServer,
  tail,
  waitForListening,
} from '../../bench/echo-run.js';
import { type EngineName, HOST, type ModelName } from '../../bench/echo-servers.js';
import type { LoadReport } from '../load/load-generator.js';
import { readProcessCpuUs } from '../load/server-cpu.js';
import { readProcessRssBytes, readProcessThreads } from '../load/server-memory.js';
import {
  clock,
  type GridShape,
  IDLE_MODELS,
  idleCellSeconds,
  idleScenarios,
  loadCellSeconds,
  loadScenarios,
  type Scenario,
} from './grid.js';
import { createProgress } from './progress.js';
import type { ReportRun, ServerEntry } from './results.js';
import { absentPeers, type ReportServer, reportServers, withFlags } from './servers.js';

const PROBES_AT_ONCE = 4;

export interface GridChoice {
  grid: GridShape;
  engines: EngineName[];
  models: ModelName[];
  maxThreads: number;
  /** Peer ids to run beside the models; undefined: every peer. */
  peers?: string[];
  /** Where the lines of the run go (the expected length, probes, warnings). */
  say(line: string): void;
}

export interface GridOutcome {
  servers: ServerEntry[];
  runs: ReportRun[];
  loader: string;
  pinned: boolean;
}

interface Cell {
  server: ReportServer;
  scenario: Scenario;
  seconds: number;
  /** Set when the cell cannot run: it is recorded missing with this reason. */
  missing?: string;
}

function baseRun(cell: Cell): ReportRun {
  const { entry } = cell.server;
  const { scenario } = cell;
  return {
    server: entry.id,
    label: entry.label,
    kind: entry.kind,
    ...(entry.model === undefined ? {} : { model: entry.model }),
    ...(entry.engine === undefined ? {} : { engine: entry.engine }),
    axis: scenario.axis,
    scenario: scenario.id,
    conns: scenario.conns,
    size: scenario.size,
    depth: scenario.depth,
    ...(scenario.sweepIntervalMs === undefined
      ? {}
      : { sweepIntervalMs: scenario.sweepIntervalMs }),
    status: 'ok',
  };
}

/** Samples the server's thread count every 100 ms while the load runs; keeps the most seen. */
function threadWatch(seen: { threads?: number }): (pid: number) => () => void {
  return (pid) => {
    const sample = () => {
      try {
        seen.threads = Math.max(seen.threads ?? 0, readProcessThreads(pid));
      } catch {
        // The server exited; the load's own report says so.
      }
    };
    sample();
    const timer = setInterval(sample, 100);
    return () => {
      sample();
      clearInterval(timer);
    };
  };
}

function fromLoad(cell: Cell, report: LoadReport, threads: number | undefined): ReportRun {
  const run = baseRun(cell);
  const rss = report.serverRss;
  const broken = report.errors > 0 || report.mismatches > 0 || report.messages === 0;
  return {
    ...run,
    status: broken ? 'failed' : 'ok',
    ...(broken
      ? {
          reason:
            report.messages === 0
              ? 'no message came back in the measured window'
              : `${report.errors} connection errors, ${report.mismatches} mismatched echoes`,
        }
      : {}),
    messagesPerSec: report.messagesPerSec,
    p50Us: report.latencyUs.p50,
    p99Us: report.latencyUs.p99,
    ...(report.serverCpuUsPerMessage === undefined
      ? {}
      : { cpuUsPerMessage: report.serverCpuUsPerMessage }),
    ...(rss === undefined
      ? {}
      : {
          rssIdleBytes: rss.idleBytes,
          rssPerConnBytes: (rss.connectedBytes - rss.idleBytes) / report.conns,
        }),
    ...(threads === undefined ? {} : { threads }),
    ...(report.generatorCpuUs === undefined || report.durationSec === 0
      ? {}
      : { generatorCpuPercent: report.generatorCpuUs / (report.durationSec * 1e4) }),
    errors: report.errors,
    mismatches: report.mismatches,
  };
}

/**
 * Opens `conns` idle connections to `port` into `sockets` (so the caller can close
 * every one, even when a connect fails); resolves once every one is connected.
 */
async function openIdle(port: number, conns: number, sockets: Socket[]): Promise<void> {
  // In batches, so the listen backlog never overflows into SYN retries.
  for (let i = 0; i < conns; i += 200) {
    const batch = Array.from({ length: Math.min(200, conns - i) }, () => {
      const socket = connect({ host: HOST, port });
      sockets.push(socket);
      return new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        // Kept for the socket's life: a reset when the server stops is not an error here.
        socket.on('error', reject);
      });
    });
    await Promise.all(batch);
  }
}

/**
 * An idle cell: the server with `conns` connections open and no traffic, its CPU
 * over `idleSec` as a share of one core, and its RSS growth per connection.
 */
async function runIdle(cell: Cell, grid: GridShape, pinning: Pinning): Promise<ReportRun> {
  const port = await freePort();
  const child = spawnPinned(pinning.server, cell.server.spec.launch(port));
  tail(child.stdout);
  const stderr = tail(child.stderr);
  const sockets: Socket[] = [];
  try {
    await waitForListening(port, child, stderr);
    const pid = child.pid;
    if (pid === undefined) throw new Error('has no pid');
    const idleRss = readProcessRssBytes(pid);
    await openIdle(port, cell.scenario.conns, sockets);
    // Accepting and the first sweeps are not idle.
    await sleep(500);
    const rss = readProcessRssBytes(pid);
    const threads = readProcessThreads(pid);
    const before = readProcessCpuUs(pid);
    const started = performance.now();
    await sleep(grid.idleSec * 1000);
    const cpuUs = readProcessCpuUs(pid) - before;
    const seconds = (performance.now() - started) / 1000;
    return {
      ...baseRun(cell),
      idleCpuPercent: cpuUs / (seconds * 1e4),
      rssIdleBytes: idleRss,
      rssPerConnBytes: (rss - idleRss) / cell.scenario.conns,
      threads,
    };
  } finally {
    for (const socket of sockets) socket.destroy();
    await stopServer(child);
  }
}

function describe(run: ReportRun): string {
  const where = `${run.server} ${run.scenario}`;
  if (run.status !== 'ok') return `${where}: ${run.status}: ${run.reason}`;
  if (run.axis === 'idle') return `${where}: idle CPU ${run.idleCpuPercent?.toFixed(2)}% of a core`;
  const cpu = run.cpuUsPerMessage?.toFixed(2) ?? '-';
  return `${where}: ${Math.round(run.messagesPerSec ?? 0).toLocaleString('en-US')} msg/s, p99 ${Math.round(run.p99Us ?? 0)} µs, ${cpu} µs CPU/msg`;
}

function plan(servers: ReportServer[], choice: GridChoice): Cell[] {
  const { grid } = choice;
  const limit = openFileLimit();
  const cells: Cell[] = [];
  const unavailable = (s: ReportServer, scenario: Scenario): string | undefined => {
    if (!s.entry.available) return s.entry.reason;
    if (limit !== undefined && scenario.conns + SPARE_FDS > limit) {
      return `needs ${scenario.conns + SPARE_FDS} open files, ulimit -n is ${limit}`;
    }
    const cap = s.spec.maxClients;
    if (cap !== undefined && scenario.conns > cap) {
      return `a thread per client, and --max-threads is ${cap}`;
    }
    return undefined;
  };
  for (const scenario of loadScenarios(grid)) {
    for (const server of servers) {
      const missing = unavailable(server, scenario);
      cells.push({
        server,
        scenario,
        seconds: missing === undefined ? loadCellSeconds(scenario, grid) : 0,
        ...(missing === undefined ? {} : { missing }),
      });
    }
  }
  for (const scenario of idleScenarios(grid)) {
    const model = scenario.sweepIntervalMs === undefined ? IDLE_MODELS[1] : IDLE_MODELS[0];
    for (const server of servers) {
      if (server.entry.model !== model) continue;
      const spec =
        scenario.sweepIntervalMs === undefined
          ? server
          : {
              entry: server.entry,
              spec: withFlags(server.spec, server.spec.id, [
                '--sweep-interval',
                String(scenario.sweepIntervalMs),
              ]),
            };
      const missing = unavailable(server, scenario);
      cells.push({
        server: spec,
        scenario,
        seconds: missing === undefined ? idleCellSeconds(scenario, grid) : 0,
        ...(missing === undefined ? {} : { missing }),
      });
    }
  }
  return cells;
}

export async function runGrid(choice: GridChoice): Promise<GridOutcome> {
  const { say, grid } = choice;
  const chosen = chooseLoader(undefined);
  if ('error' in chosen) throw new Error(chosen.error);
  const loader: Loader = chosen.loader;
  if (chosen.fallback !== undefined)
    say(`report: using the node load generator: ${chosen.fallback}`);
  const { pinning, unpinned } = choosePinning();
  if (unpinned !== undefined) {
    say(`report: WARNING: running unpinned (${unpinned}): server and load share cores`);
  }

  const servers = reportServers(choice.engines, choice.models, choice.maxThreads, choice.peers);
  say(`report: probing ${servers.length} servers (each started once; what cannot run is listed)`);
  // Probes measure nothing, so a few run at once (a server start is mostly waiting).
  const queue = [...servers];
  const prober = async () => {
    for (let server = queue.shift(); server !== undefined; server = queue.shift()) {
      const reason = await probe(server.spec);
      if (reason !== undefined) {
        server.entry.available = false;
        server.entry.reason = oneLine(reason);
        say(`report: ${server.entry.id} cannot run here: ${server.entry.reason}`);
      }
    }
  };
  await Promise.all(Array.from({ length: PROBES_AT_ONCE }, prober));
  const absent = absentPeers(servers, choice.peers);
  for (const peer of absent) say(`report: ${peer.id} (${peer.label}) not run: ${peer.reason}`);

  const cells = plan(servers, choice);
  const toRun = cells.filter((c) => c.missing === undefined);
  const seconds = toRun.reduce((sum, c) => sum + c.seconds, 0);
  say(
    `report: ${toRun.length} cells to run (${cells.length - toRun.length} cannot run here), ` +
      `about ${clock(seconds)} (m:ss); ${grid.durationSec} s measured after ${grid.warmupSec} s warm-up per cell; ` +
      `${unpinned === undefined ? 'server on CPU 0, load on CPU 1' : 'unpinned'}; ` +
      `load generator ${loader.name === 'c' ? 'C (bench/peers/load-gen.c)' : 'node:net'}`,
  );

  const runs: ReportRun[] = [];
  const started = performance.now();
  const progress = createProgress(toRun.length, seconds);
  try {
    for (const cell of cells) {
      if (cell.missing !== undefined) {
        runs.push({ ...baseRun(cell), status: 'missing', reason: cell.missing });
        continue;
      }
      let run: ReportRun;
      try {
        if (cell.scenario.axis === 'idle') {
          run = await runIdle(cell, grid, pinning);
        } else {
          const seen: { threads?: number } = {};
          const report = await runCell(
            cell.server.spec,
            {
              conns: cell.scenario.conns,
              size: cell.scenario.size,
              depth: cell.scenario.depth,
              durationSec: grid.durationSec,
              warmupSec: grid.warmupSec,
            },
            pinning,
            loader,
            threadWatch(seen),
          );
          run = fromLoad(cell, report, seen.threads);
        }
      } catch (err) {
        run = { ...baseRun(cell), status: 'failed', reason: oneLine((err as Error).message) };
      }
      runs.push(run);
      progress.done(cell.seconds, describe(run));
    }
  } finally {
    progress.stop();
  }
  const notOk = runs.filter((r) => r.status !== 'ok').length;
  say(
    `report: ${runs.length - notOk} cells measured, ${notOk} not (each listed in the page with why), ` +
      `in ${clock((performance.now() - started) / 1000)} (m:ss)`,
  );
  return {
    servers: [...servers.map((s) => s.entry), ...absent],
    runs,
    loader: loader.name,
    pinned: unpinned === undefined,
  };
}
