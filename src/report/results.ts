/**
 * The report's `results.json`: every cell of the grid, run or not, with the
 * machine it ran on. The page is built from this document alone, so a saved
 * `results.json` can be rendered again (`buildPage`) without re-running anything.
 */
import { readFileSync } from 'node:fs';
import { cpus, type as osType, release, totalmem } from 'node:os';

/** Which chart family a cell feeds: a connection-count sweep, a message-size sweep, or idle connections. */
export type Axis = 'conns' | 'size' | 'idle';

export interface ServerEntry {
  /** The bench catalogue's id (`ovl-uring-select`, `c-epoll`, …). */
  id: string;
  /** How the page names it: the model for overlapped servers, the peer's name otherwise. */
  label: string;
  kind: 'overlapped' | 'peer';
  model?: string;
  engine?: string;
  available: boolean;
  /** Why it cannot run here, when it cannot. */
  reason?: string;
}

export interface ReportRun {
  server: string;
  label: string;
  kind: 'overlapped' | 'peer';
  model?: string;
  engine?: string;
  axis: Axis;
  /** Scenario id, e.g. `conns-1000` or `idle-1000-sweep-10`. */
  scenario: string;
  conns: number;
  /** Bytes per message (0 for idle cells). */
  size: number;
  /** Messages in flight per connection (0 for idle cells). */
  depth: number;
  /** nonblocking: the sleep after an empty sweep, in ms. */
  sweepIntervalMs?: number;
  /** `missing`: not run, for `reason`; `failed`: ran and broke (reason says how). */
  status: 'ok' | 'missing' | 'failed';
  reason?: string;
  messagesPerSec?: number;
  p50Us?: number;
  p99Us?: number;
  /** Server user+system CPU over the measured window, per message echoed. */
  cpuUsPerMessage?: number;
  /** Server RSS growth per connection, all connections open, before any message. */
  rssPerConnBytes?: number;
  rssIdleBytes?: number;
  /** Most threads the server process had during the run (`Threads:` of /proc/<pid>/status). */
  threads?: number;
  /** Idle cells: server CPU as a percentage of one core while every connection sat idle. */
  idleCpuPercent?: number;
  generatorCpuPercent?: number;
  errors?: number;
  mismatches?: number;
}

export interface MachineInfo {
  cpu: string;
  cpus: number;
  memoryBytes: number;
  os: string;
  kernel: string;
  node: string;
}

export interface ResultsDocument {
  format: 'overlapped-report/1';
  date: string;
  machine: MachineInfo;
  /** The command line's choices, as run. */
  options: {
    quick: boolean;
    durationSec: number;
    warmupSec: number;
    maxThreads: number;
    engines: string[];
    models: string[];
  };
  /** `c` (bench/peers/load-gen.c) or `node`, and whether server and load had a core each. */
  loader: string;
  pinned: boolean;
  /** Every other run uses this many connections for the message-size sweep. */
  sizeSweepConns: number;
  elapsedSec: number;
  servers: ServerEntry[];
  runs: ReportRun[];
}

export function machineInfo(): MachineInfo {
  return {
    cpu: cpus()[0]?.model ?? 'unknown CPU',
    cpus: cpus().length,
    memoryBytes: totalmem(),
    os: osType(),
    kernel: release(),
    node: process.version,
  };
}

/**
 * Reads a results.json and checks the parts the page relies on, so a hand-edited
 * or truncated file fails with what is wrong rather than a broken page.
 */
export function readResults(file: string): ResultsDocument {
  const doc = JSON.parse(readFileSync(file, 'utf8')) as Partial<ResultsDocument>;
  checkResults(doc);
  return doc;
}

export function checkResults(doc: Partial<ResultsDocument>): asserts doc is ResultsDocument {
  if (doc.format !== 'overlapped-report/1') {
    throw new Error(`not an overlapped report (format ${JSON.stringify(doc.format)})`);
  }
  if (!Array.isArray(doc.runs) || !Array.isArray(doc.servers) || doc.machine === undefined) {
    throw new Error('results.json lacks runs, servers or machine');
  }
  for (const run of doc.runs) {
    if (run.status === 'ok' && run.axis !== 'idle' && run.cpuUsPerMessage === undefined) {
      throw new Error(`run ${run.server} ${run.scenario} is ok but has no CPU per message`);
    }
    if (run.status !== 'ok' && run.reason === undefined) {
      throw new Error(`run ${run.server} ${run.scenario} is ${run.status} without a reason`);
    }
  }
}
