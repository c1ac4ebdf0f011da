/**
 * Echo benchmark: runs each server under test and its peers one after the other
 * under the same closed-loop load, and reports messages/s, p99 latency, server CPU
 * time per message (with ratios to the plain node:net peer, to the C epoll peer, and
 * of each I/O model to the same engine's completion-port variant) and server memory
 * per open connection. Absolute numbers drift between machines and runs; the ratios
 * are what to compare.
 *
 * The server is pinned to CPU 0 and the load generator (a separate process) to CPU 1
 * with taskset, so the two never compete for a core. The load generator is the C one
 * (bench/peers/load-gen.c) unless it cannot be built or `--loader node` asks for the
 * node:net one, which saturates its own core well before most servers do. Run `--help`
 * for the flags.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import type { LoadReport } from '../src/load/load-generator.js';
import {
  chooseLoader,
  choosePinning,
  LOADERS,
  type LoaderName,
  oneLine,
  openFileLimit,
  probe,
  runCell,
  SPARE_FDS,
} from './echo-run.js';
import {
  C_BASELINE,
  C_URING_PEER,
  DEFAULT_MODEL,
  ENGINES,
  type EngineName,
  MODELS,
  type ModelName,
  NODE_BASELINE,
  type ServerSpec,
  serverCatalogue,
} from './echo-servers.js';

/** Above this share of its core the generator, not the server, may be what limits msgs/s. */
const GENERATOR_SATURATED_PERCENT = 90;
/**
 * Issue bars: what an I/O model may cost in CPU/message over its engine's
 * completion-port variant (none for blocking and nonblocking: they are measured, not barred).
 */
const MODEL_CPU_BARS: Partial<Record<ModelName, number>> = {
  events: 1.3,
  routines: 1.3,
  select: 1.5,
  'async-select': 1.5,
  'event-select': 1.5,
};

interface Scenario {
  id: string;
  conns: number;
  size: number;
  depth: number;
}

const SCENARIOS: Scenario[] = [
  { id: '50x64-d1', conns: 50, size: 64, depth: 1 },
  { id: '50x64-d16', conns: 50, size: 64, depth: 16 },
  { id: '1000x64-d1', conns: 1000, size: 64, depth: 1 },
  { id: '8000x64-d1', conns: 8000, size: 64, depth: 1 },
  { id: '50x16k-d2', conns: 50, size: 16 * 1024, depth: 2 },
];

const SCENARIO_IDS = SCENARIOS.map((s) => s.id);
const CATALOGUE = serverCatalogue();
const SERVER_IDS = CATALOGUE.map((s) => s.id);

const USAGE = `usage: npm run bench:echo -- [flags]
  --duration <s>      measured seconds per run (default 5)
  --warmup <s>        uncounted seconds before each measured window (default 1)
  --scenarios <ids>   comma-separated, from: ${SCENARIOS.map((s) => s.id).join(', ')}
  --engines <names>   overlapped engines: ${ENGINES.join(', ')} or all (default all)
  --models <names>    overlapped I/O models: ${MODELS.join(', ')} or all
                      (default ${DEFAULT_MODEL}; all when --servers is given); the
                      model ratios need ${DEFAULT_MODEL} in the list too
  --servers <ids>     comma-separated ids (default: every one not marked "only when named"):
${CATALOGUE.map((s) => `                        ${s.id.padEnd(22)}${s.description}`).join('\n')}
                      --engines and --models, when given, narrow this list further
  --repeat <n>        runs per cell; the tables show the median of each column (default 1)
  --loader <c|node>   load generator: c (bench/peers/load-gen.c, epoll, built with cc
                      into bench/.cache) or node (src/load/load-generator.ts, node:net).
                      Default c, or node with a printed reason when c cannot be built;
                      an explicit --loader c that cannot be built is an error
  --json <file>       also write every run, the medians and the ratios to <file>

Before any run each server is prepared (c-epoll and c-uring compiled into bench/.cache, bun
installed there with npm if it is not on PATH) and started once as a probe; a server
that cannot be prepared, exits before listening (an engine or --model this build does
not have), or runs another engine than asked, is skipped with the reason printed.
overlapped variants get --engine <name>, and --model <name> unless the model is
${DEFAULT_MODEL} (the default of \`overlapped echo\`).
Exit code 1 if a server failed under load or any run counted errors or mismatches.`;

interface BenchConfig {
  /** Undefined: c when it builds, else node. */
  loader: LoaderName | undefined;
  durationSec: number;
  warmupSec: number;
  repeat: number;
  scenarios: Scenario[];
  servers: ServerSpec[];
  jsonFile: string | undefined;
}

function fail(message: string): never {
  console.error(`echo-bench: ${message}`);
  process.exit(2);
}

/** Splits a comma-separated flag value into its non-empty items. */
function items(list: string): string[] {
  return list
    .split(',')
    .map((id) => id.trim())
    .filter((id) => id !== '');
}

function parseConfig(): BenchConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        duration: { type: 'string', default: '5' },
        warmup: { type: 'string', default: '1' },
        scenarios: { type: 'string' },
        engines: { type: 'string' },
        models: { type: 'string' },
        servers: { type: 'string' },
        repeat: { type: 'string', default: '1' },
        json: { type: 'string' },
        loader: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const number = (flag: string, min: number, max: number): number => {
    const n = Number(values[flag]);
    if (!Number.isFinite(n) || n < min || n > max) {
      fail(`--${flag} must be a number from ${min} to ${max}, got '${values[flag]}'`);
    }
    return n;
  };
  /** The ids a flag names, each one of `known`; `all` names every one. */
  const names = <T extends string>(flag: string, known: readonly T[]): T[] | undefined => {
    const list = values[flag];
    if (typeof list !== 'string') return undefined;
    const ids = items(list);
    if (ids.length === 1 && ids[0] === 'all') return [...known];
    const unknown = ids.filter((id) => !(known as readonly string[]).includes(id));
    if (unknown.length > 0 || ids.length === 0) {
      fail(`--${flag}: unknown '${unknown.join(',')}'; choose from ${known.join(', ')} or all`);
    }
    return ids as T[];
  };
  const repeat = number('repeat', 1, 100);
  if (!Number.isInteger(repeat)) fail('--repeat must be a whole number');
  const scenarioIds = names('scenarios', SCENARIO_IDS);
  const loader = values.loader;
  if (loader !== undefined && !(LOADERS as readonly unknown[]).includes(loader)) {
    fail(`--loader must be one of ${LOADERS.join(', ')}, got '${loader}'`);
  }
  return {
    loader: loader as LoaderName | undefined,
    durationSec: number('duration', 0.1, 3600),
    warmupSec: number('warmup', 0, 600),
    repeat,
    scenarios:
      scenarioIds === undefined ? SCENARIOS : SCENARIOS.filter((s) => scenarioIds.includes(s.id)),
    servers: selectServers(
      names('servers', SERVER_IDS),
      names('engines', ENGINES),
      names('models', MODELS),
    ),
    jsonFile: typeof values.json === 'string' ? values.json : undefined,
  };
}

/**
 * The servers to run, in catalogue order. Engine and model filters apply to the
 * overlapped variants only; without --servers the models default to completion-port
 * and opt-in variants are left out, with --servers every named one is a candidate.
 */
function selectServers(
  ids: string[] | undefined,
  engines: EngineName[] | undefined,
  models: ModelName[] | undefined,
): ServerSpec[] {
  const engineSet = engines ?? [...ENGINES];
  const modelSet = models ?? (ids === undefined ? [DEFAULT_MODEL] : [...MODELS]);
  const selected = CATALOGUE.filter(
    (s) =>
      (ids === undefined ? s.optIn !== true : ids.includes(s.id)) &&
      (s.engine === undefined || engineSet.includes(s.engine)) &&
      (s.model === undefined || modelSet.includes(s.model)),
  );
  const excluded = (ids ?? []).filter((id) => !selected.some((s) => s.id === id));
  if (excluded.length > 0) {
    fail(`--servers names ${excluded.join(', ')}, which --engines or --models leave out`);
  }
  if (selected.length === 0) fail('no server selected');
  return selected;
}

interface CellMedians {
  messagesPerSec: number;
  p99Us: number;
  serverCpuUsPerMessage: number | undefined;
  generatorCpuPercent: number | undefined;
  /** Server RSS before any connection. */
  rssIdleBytes: number | undefined;
  /** Server RSS growth per connection with every connection open, before any message. */
  rssPerConnOpenBytes: number | undefined;
  /** Server RSS growth per connection at the end of the measured window. */
  rssPerConnEndBytes: number | undefined;
}

interface CellSummary {
  server: string;
  engine?: EngineName;
  model?: ModelName;
  runs: LoadReport[];
  failures: string[];
  median?: CellMedians;
  /** False if in some run the server was not seen to accept every connection before RSS was read. */
  rssAllAccepted: boolean;
  errors: number;
  mismatches: number;
  /** Server CPU/message as a ratio to node-net's. */
  cpuPerMessageVsBaseline?: number;
  /** Server CPU/message as a ratio to c-epoll's. */
  cpuPerMessageVsCEpoll?: number;
  /** Server CPU/message as a ratio to c-uring's (the best C server). */
  cpuPerMessageVsCUring?: number;
  /** For events/routines variants: CPU/message as a ratio to the same engine's completion-port. */
  cpuPerMessageVsCompletionPort?: number;
  /** For events/routines variants: msgs/s as a ratio to the same engine's completion-port. */
  messagesPerSecVsCompletionPort?: number;
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function summarize(server: ServerSpec, runs: LoadReport[], failures: string[]): CellSummary {
  const defined = (xs: (number | undefined)[]) => xs.filter((x): x is number => x !== undefined);
  const summary: CellSummary = {
    server: server.id,
    ...(server.engine === undefined ? {} : { engine: server.engine }),
    ...(server.model === undefined ? {} : { model: server.model }),
    runs,
    failures,
    rssAllAccepted: runs.every((r) => r.serverRss?.allAccepted !== false),
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    mismatches: runs.reduce((sum, r) => sum + r.mismatches, 0),
  };
  if (runs.length > 0) {
    const perConn = (r: LoadReport, at: number | undefined) =>
      r.serverRss === undefined || at === undefined
        ? undefined
        : (at - r.serverRss.idleBytes) / r.conns;
    summary.median = {
      messagesPerSec: median(runs.map((r) => r.messagesPerSec)) as number,
      p99Us: median(runs.map((r) => r.latencyUs.p99)) as number,
      serverCpuUsPerMessage: median(defined(runs.map((r) => r.serverCpuUsPerMessage))),
      generatorCpuPercent: median(
        defined(
          runs.map((r) =>
            r.generatorCpuUs === undefined || r.durationSec === 0
              ? undefined
              : r.generatorCpuUs / (r.durationSec * 1e4),
          ),
        ),
      ),
      rssIdleBytes: median(defined(runs.map((r) => r.serverRss?.idleBytes))),
      rssPerConnOpenBytes: median(
        defined(runs.map((r) => perConn(r, r.serverRss?.connectedBytes))),
      ),
      rssPerConnEndBytes: median(defined(runs.map((r) => perConn(r, r.serverRss?.endBytes)))),
    };
  }
  return summary;
}

/** Fills in every ratio of the cells of one scenario. */
function addRatios(cells: CellSummary[]): void {
  const cpu = (id: string) => cells.find((c) => c.server === id)?.median?.serverCpuUsPerMessage;
  const ratio = (own: number | undefined, base: number | undefined) =>
    own !== undefined && base !== undefined && base > 0 ? own / base : undefined;
  const nodeBase = cpu(NODE_BASELINE);
  const cBase = cpu(C_BASELINE);
  const uringBase = cpu(C_URING_PEER);
  for (const cell of cells) {
    const own = cell.median?.serverCpuUsPerMessage;
    const vsNode = ratio(own, nodeBase);
    if (vsNode !== undefined) cell.cpuPerMessageVsBaseline = vsNode;
    const vsC = ratio(own, cBase);
    if (vsC !== undefined) cell.cpuPerMessageVsCEpoll = vsC;
    const vsCUring = ratio(own, uringBase);
    if (vsCUring !== undefined) cell.cpuPerMessageVsCUring = vsCUring;
    if (cell.model !== undefined && cell.model !== DEFAULT_MODEL) {
      // The completion-port variant of the same engine, and not its Nagle variant.
      const base = cells.find(
        (c) =>
          c.engine === cell.engine && c.model === DEFAULT_MODEL && c.server === `ovl-${c.engine}`,
      )?.median;
      const vsCp = ratio(own, base?.serverCpuUsPerMessage);
      if (vsCp !== undefined) cell.cpuPerMessageVsCompletionPort = vsCp;
      const rate = ratio(cell.median?.messagesPerSec, base?.messagesPerSec);
      if (rate !== undefined) cell.messagesPerSecVsCompletionPort = rate;
    }
  }
}

/** Plain fixed-width table: first column left-aligned, the others right-aligned. */
function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) =>
    Math.max(h.length, ...rows.map((row) => (row[c] ?? '').length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0)))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].map((l) => `  ${l}`).join('\n');
}

const integer = (n: number) => Math.round(n).toLocaleString('en-US');
const times = (r: number | undefined) => (r === undefined ? '-' : `${r.toFixed(2)}x`);
const kib = (bytes: number | undefined) =>
  bytes === undefined ? '-' : `${(bytes / 1024).toFixed(1)} KiB`;
const mib = (bytes: number | undefined) =>
  bytes === undefined ? '-' : `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function describeScenario(s: Scenario): string {
  const size = s.size >= 1024 && s.size % 1024 === 0 ? `${s.size / 1024} KiB` : `${s.size} B`;
  return `${s.conns} conns × ${size}, depth ${s.depth}`;
}

function scenarioTable(cells: CellSummary[], skipped: Map<string, string>): string {
  const header = [
    'server',
    'msgs/s',
    'p99 µs',
    'CPU µs/msg',
    `vs ${NODE_BASELINE}`,
    `vs ${C_BASELINE}`,
    `vs ${C_URING_PEER}`,
    'RSS idle',
    'RSS/conn open',
    'RSS/conn end',
    'load gen CPU',
    'errors',
    'mismatches',
  ];
  const rows = cells.map((cell) => {
    if (cell.median === undefined) {
      return [cell.server, `FAILED: ${oneLine(cell.failures[0] ?? 'no run completed')}`];
    }
    const m = cell.median;
    const flagged = cell.errors > 0 || cell.mismatches > 0 || cell.failures.length > 0;
    const unaccepted = cell.rssAllAccepted ? '' : '*';
    return [
      cell.server,
      integer(m.messagesPerSec),
      integer(m.p99Us),
      m.serverCpuUsPerMessage === undefined ? '-' : m.serverCpuUsPerMessage.toFixed(2),
      times(cell.cpuPerMessageVsBaseline),
      times(cell.cpuPerMessageVsCEpoll),
      times(cell.cpuPerMessageVsCUring),
      mib(m.rssIdleBytes),
      kib(m.rssPerConnOpenBytes) + unaccepted,
      kib(m.rssPerConnEndBytes),
      m.generatorCpuPercent === undefined ? '-' : `${m.generatorCpuPercent.toFixed(0)}%`,
      String(cell.errors),
      String(cell.mismatches) + (flagged ? '  << INVALID' : ''),
    ];
  });
  // The c-epoll and c-uring columns only when those peers ran (a FAILED row has neither).
  const dropped = [
    cells.some((c) => c.cpuPerMessageVsCUring !== undefined)
      ? -1
      : header.indexOf(`vs ${C_URING_PEER}`),
    cells.some((c) => c.cpuPerMessageVsCEpoll !== undefined)
      ? -1
      : header.indexOf(`vs ${C_BASELINE}`),
  ].filter((column) => column >= 0);
  const keep = (row: string[]) =>
    dropped.reduce((r, column) => (r.length <= column ? r : r.toSpliced(column, 1)), row);
  // Below the table, not in it: a long reason would stretch the first column.
  const skips = [...skipped].map(([id, reason]) => `\n  skipped ${id}: ${reason}`);
  return formatTable(keep(header), rows.map(keep)) + skips.join('');
}

/** The events/routines variants against their engine's completion-port variant, if any ran. */
function modelTable(cells: CellSummary[]): string | undefined {
  const rows = cells
    .filter((c) => c.cpuPerMessageVsCompletionPort !== undefined)
    .map((c) => {
      const r = c.cpuPerMessageVsCompletionPort as number;
      const bar = c.model === undefined ? undefined : MODEL_CPU_BARS[c.model];
      return [
        c.server,
        `ovl-${c.engine}`,
        times(r),
        times(c.messagesPerSecVsCompletionPort),
        bar === undefined ? '-' : r <= bar ? `ok (≤ ${bar}x)` : `OVER ${bar}x`,
      ];
    });
  if (rows.length === 0) return undefined;
  return formatTable(['model variant', 'vs', 'CPU µs/msg ratio', 'msgs/s ratio', 'bar'], rows);
}

/** Rough seconds one cell takes: server start, connecting, warm-up, window, drain and close. */
function cellSeconds(scenario: Scenario, config: BenchConfig): number {
  return config.warmupSec + config.durationSec + 1 + scenario.conns / 2000;
}

function clock(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

async function main(): Promise<void> {
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  const config = parseConfig();
  const { pinning, unpinned } = choosePinning();
  const pinned = unpinned === undefined;
  if (!pinned) {
    console.warn(
      `echo-bench: WARNING: running unpinned (${unpinned}): ` +
        'server and load generator share cores, so results are noisier',
    );
  }

  // Before the servers, so that an explicit --loader c that cannot be built fails at once.
  const chosen = chooseLoader(config.loader);
  if ('error' in chosen) fail(chosen.error);
  const { loader, fallback } = chosen;
  if (fallback !== undefined) {
    console.log(`echo-bench: using the node load generator: ${fallback}`);
  }

  // Prepare and probe every server once, before any load: what cannot run is skipped.
  const skipped = new Map<string, string>();
  for (const server of config.servers) {
    const reason = await probe(server);
    if (reason !== undefined) {
      skipped.set(server.id, reason);
      console.log(`echo-bench: skipping ${server.id}: ${reason}`);
    }
  }
  const servers = config.servers.filter((s) => !skipped.has(s.id));

  // A scenario with more connections than open files allowed would only count errors.
  const limit = openFileLimit();
  const skippedScenarios = new Map<string, string>();
  for (const scenario of config.scenarios) {
    if (limit !== undefined && scenario.conns + SPARE_FDS > limit) {
      const reason =
        `needs more than ${scenario.conns + SPARE_FDS} open files, ulimit -n is ${limit} ` +
        '(raise it, e.g. ulimit -n 20000)';
      skippedScenarios.set(scenario.id, reason);
      console.log(`echo-bench: skipping scenario ${scenario.id}: ${reason}`);
    }
  }
  const scenarios = config.scenarios.filter((s) => !skippedScenarios.has(s.id));

  const runsIn = (scenario: Scenario): number =>
    servers.filter((s) => s.maxClients === undefined || scenario.conns <= s.maxClients).length *
    config.repeat;
  const estimate = scenarios.reduce((sum, s) => sum + cellSeconds(s, config) * runsIn(s), 0);
  const total = scenarios.reduce((sum, s) => sum + runsIn(s), 0);
  console.log(
    `echo-bench: ${config.durationSec} s measured after ${config.warmupSec} s warm-up, ` +
      `${config.repeat} run(s) per cell${config.repeat > 1 ? ' (medians shown)' : ''}; ` +
      `${pinned ? 'server on CPU 0, load generator on CPU 1' : 'unpinned'}; ` +
      `load generator ${loader.name === 'c' ? 'c (bench/peers/load-gen.c)' : 'node (node:net)'}; ` +
      `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}\n` +
      `echo-bench: servers ${servers.map((s) => s.id).join(', ') || '(none)'}; ` +
      `${total} runs, about ${clock(estimate)} (m:ss)`,
  );

  let invalid = false;
  let done = 0;
  const results: { scenario: Scenario; cells: CellSummary[] }[] = [];
  for (const scenario of scenarios) {
    // A server that serves fewer clients at once than the scenario opens (the blocking
    // model's thread cap) would leave the rest waiting: it sits this scenario out.
    const notHere = new Map(skipped);
    for (const s of servers) {
      if (s.maxClients !== undefined && scenario.conns > s.maxClients) {
        notHere.set(s.id, `serves at most ${s.maxClients} clients at once`);
      }
    }
    const active = servers.filter((s) => !notHere.has(s.id));
    const runs = new Map(active.map((s) => [s.id, [] as LoadReport[]]));
    const failures = new Map(active.map((s) => [s.id, [] as string[]]));
    for (let r = 0; r < config.repeat; r++) {
      // Alternate the order between repeats so that drift does not favour one server.
      const order = r % 2 === 0 ? active : [...active].reverse();
      for (const server of order) {
        done++;
        process.stderr.write(
          `  [${done}/${total} ${clock(elapsed())}] ${scenario.id}: ${server.id} run ${r + 1}/${config.repeat}...\n`,
        );
        try {
          runs.get(server.id)?.push(
            await runCell(
              server,
              {
                conns: scenario.conns,
                size: scenario.size,
                depth: scenario.depth,
                durationSec: config.durationSec,
                warmupSec: config.warmupSec,
              },
              pinning,
              loader,
            ),
          );
        } catch (err) {
          failures.get(server.id)?.push((err as Error).message);
          process.stderr.write(
            `  ${scenario.id}: ${server.id} failed: ${(err as Error).message}\n`,
          );
        }
      }
    }
    const cells = active.map((s) => summarize(s, runs.get(s.id) ?? [], failures.get(s.id) ?? []));
    addRatios(cells);
    for (const cell of cells) {
      if (cell.errors > 0 || cell.mismatches > 0 || cell.failures.length > 0) invalid = true;
    }
    results.push({ scenario, cells });
    console.log(
      `\n${scenario.id}: ${describeScenario(scenario)}\n${scenarioTable(cells, notHere)}`,
    );
    const models = modelTable(cells);
    if (models !== undefined) console.log(`\n  I/O models vs completion-port:\n${models}`);
  }

  if (config.jsonFile !== undefined) {
    mkdirSync(dirname(config.jsonFile), { recursive: true });
    const document = {
      date: new Date().toISOString(),
      node: process.version,
      cpu: cpus()[0]?.model,
      cpuCount: availableParallelism(),
      pinned,
      loader: loader.name,
      durationSec: config.durationSec,
      warmupSec: config.warmupSec,
      repeat: config.repeat,
      baseline: NODE_BASELINE,
      cBaseline: C_BASELINE,
      cUringPeer: C_URING_PEER,
      modelCpuBars: MODEL_CPU_BARS,
      elapsedSec: elapsed(),
      servers: config.servers.map((s) => ({
        id: s.id,
        engine: s.engine,
        model: s.model,
        skipped: skipped.get(s.id),
      })),
      scenarios: results.map(({ scenario, cells }) => ({ ...scenario, results: cells })),
      skippedScenarios: Object.fromEntries(skippedScenarios),
    };
    writeFileSync(config.jsonFile, `${JSON.stringify(document, null, 2)}\n`);
    console.log(`\nwrote ${config.jsonFile}`);
  }
  console.log(
    '\nCPU µs/msg: server user+system CPU (from /proc, 10 ms ticks) over the measured window ' +
      `per message; vs ${NODE_BASELINE} / vs ${C_BASELINE} / vs ${C_URING_PEER}: that figure as a ratio to those peers'.\n` +
      'RSS: server VmRSS before connecting; RSS/conn: its growth per connection with all ' +
      'connections open (before any message) and at the end of the window.',
  );
  if (results.some(({ cells }) => cells.some((c) => !c.rssAllAccepted))) {
    console.log(
      '* the server was not seen holding a descriptor per connection before RSS was read ' +
        '(not all accepted yet, or sockets /proc does not list): RSS/conn open may be low.',
    );
  }
  const saturated = results.some(({ cells }) =>
    cells.some((c) => (c.median?.generatorCpuPercent ?? 0) > GENERATOR_SATURATED_PERCENT),
  );
  if (saturated) {
    console.log(
      `Note: the load generator used over ${GENERATOR_SATURATED_PERCENT}% of its core in some cells, ` +
        'so msgs/s there may be capped by the generator; CPU µs/msg stays comparable.',
    );
  }
  if (skipped.size > 0 || skippedScenarios.size > 0) {
    const what = [...skipped.keys(), ...[...skippedScenarios.keys()].map((id) => `scenario ${id}`)];
    console.log(`Skipped (could not run here): ${what.join(', ')}.`);
  }
  console.log(`Total time ${clock(elapsed())} (m:ss).`);
  if (invalid) {
    console.log(
      'RESULTS MARKED INVALID: a server failed to run, or a run counted errors or mismatches.',
    );
    process.exitCode = 1;
  }
}

await main();
