/**
 * The servers the echo benchmark can run: `overlapped echo` as engine × model
 * variants, and the peers it is compared with (plain node:net, C epoll, C io_uring, Bun).
 *
 * A server is described by how to start it on a port, plus an optional `prepare`
 * step that gets it ready on this machine (compile the C peer, install Bun) or
 * says why it cannot run here. The benchmark then probes each one by starting it
 * once; whatever cannot run is skipped with its reason printed, never silently.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ECHO_MODELS, type EchoModel } from '../src/servers/echo/echo-models.js';
import { buildCPeer, CACHE_DIR, lastLine, ROOT } from './c-build.js';

export { CACHE_DIR, ROOT };
export const HOST = '127.0.0.1';

export const ENGINES = ['node', 'uring'] as const;
export type EngineName = (typeof ENGINES)[number];
export const MODELS = ECHO_MODELS;
export type ModelName = EchoModel;
/** The model `overlapped echo` runs without a `--model` flag. */
export const DEFAULT_MODEL: ModelName = 'completion-port';

/** Ratio baselines: CPU/message of every server is also shown relative to these. */
export const NODE_BASELINE = 'node-net';
export const C_BASELINE = 'c-epoll';
/** The best C server (DESIGN.md: the peer to beat): io_uring, 64 KiB buffers. */
export const C_URING_PEER = 'c-uring';

/** A command line that starts a server listening on HOST and a given port. */
export interface Launch {
  file: string;
  args: string[];
  /** Added to the benchmark's own environment. */
  env?: Record<string, string>;
}

export interface ServerSpec {
  id: string;
  /** One line for `--help`. */
  description: string;
  /** Set for `overlapped echo` variants: what the benchmark asked it to run. */
  engine?: EngineName;
  model?: ModelName;
  /** Runs only when named in `--servers`. */
  optIn?: boolean;
  /** Clients it serves at once, when capped (the blocking model's threads): larger scenarios skip it. */
  maxClients?: number;
  /**
   * Gets the server ready to run here, once per benchmark. Resolves with a reason
   * to skip it, or undefined when it can run. Absent: nothing to prepare.
   */
  prepare?(): Promise<string | undefined>;
  /** The command that starts it on `port`; valid once `prepare` succeeded. */
  launch(port: number): Launch;
  /**
   * Checks the server's stdout once it listens, e.g. that the engine it reports is
   * the one asked for. Returns a reason to skip it, or undefined.
   */
  verify?(stdout: string): string | undefined;
}

/** `overlapped echo` on `engine`, running `model`, with `extra` flags. */
function overlappedVariant(
  engine: EngineName,
  model: ModelName,
  suffix: string,
  description: string,
  extra: string[] = [],
  nodeFlags: string[] = [],
): ServerSpec {
  return {
    id: `ovl-${engine}${suffix}`,
    description,
    engine,
    model,
    launch: (port) => ({
      file: process.execPath,
      args: [
        ...nodeFlags,
        join(ROOT, 'dist/src/cli/main.js'),
        'echo',
        '--host',
        HOST,
        '--port',
        String(port),
        '--quiet',
        '--max-connections',
        '20000',
        '--engine',
        engine,
        // The default model gets no flag, so the variant runs on builds without --model.
        ...(model === DEFAULT_MODEL ? [] : ['--model', model]),
        ...extra,
      ],
      // Also through the environment, for any code in the server that picks its engine itself.
      env: { OVERLAPPED_ENGINE: engine },
    }),
    verify: (stdout) => verifyOverlapped(stdout, engine, model),
  };
}

/**
 * The start-up log line of `overlapped echo` (pino JSON) names the engine that runs
 * (and the model, once it logs one); a server that quietly fell back to another is
 * not the variant asked for.
 */
function verifyOverlapped(
  stdout: string,
  engine: EngineName,
  model: ModelName,
): string | undefined {
  for (const line of stdout.split('\n')) {
    let record: { engine?: unknown; model?: unknown };
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      continue;
    }
    if (typeof record.engine === 'string' && record.engine !== engine) {
      return `asked for engine '${engine}' but it runs '${record.engine}'`;
    }
    if (typeof record.model === 'string' && record.model !== model) {
      return `asked for model '${model}' but it runs '${record.model}'`;
    }
  }
  return undefined;
}

/** Every server the benchmark knows, in report order. */
export function serverCatalogue(): ServerSpec[] {
  const overlapped: ServerSpec[] = [];
  for (const engine of ENGINES) {
    for (const model of MODELS) {
      const suffix = model === DEFAULT_MODEL ? '' : `-${model}`;
      const variant = overlappedVariant(
        engine,
        model,
        suffix,
        `overlapped echo --engine ${engine}, ${model}`,
      );
      // A thread per client, 64 at most by default: the scenarios of 50 clients only.
      overlapped.push(model === 'blocking' ? { ...variant, maxClients: 64 } : variant);
    }
  }
  const nagle = ENGINES.map((engine) => ({
    ...overlappedVariant(
      engine,
      DEFAULT_MODEL,
      '-nagle',
      `overlapped echo --engine ${engine} --nagle (only when named)`,
      ['--nagle'],
    ),
    optIn: true,
  }));
  // A receive buffer per connection (--no-pooled), the seeds' design: what the default
  // (pooled receives, no buffer per idle connection) is measured against.
  const buffers = ENGINES.map((engine) =>
    overlappedVariant(
      engine,
      DEFAULT_MODEL,
      '-buffers',
      `overlapped echo --engine ${engine} --no-pooled (a receive buffer per connection)`,
      ['--no-pooled'],
    ),
  );
  // The default with V8's young generation capped at 1 MiB per semi-space: what a server of
  // many mostly idle connections would run with, since V8 otherwise grows the young
  // generation to 16 MiB per semi-space while connections are accepted (fixed memory
  // that shows up as RSS per connection).
  const lean = ENGINES.map((engine) => ({
    ...overlappedVariant(
      engine,
      DEFAULT_MODEL,
      '-lean',
      `node --max-semi-space-size=1 overlapped echo --engine ${engine} (only when named)`,
      [],
      ['--max-semi-space-size=1'],
    ),
    optIn: true,
  }));
  // The metrics endpoint on (its counters are always counted; this adds the HTTP server).
  const metrics = ENGINES.map((engine) => ({
    ...overlappedVariant(
      engine,
      DEFAULT_MODEL,
      '-metrics',
      `overlapped echo --engine ${engine} --metrics 127.0.0.1:0 (only when named)`,
      ['--metrics', '127.0.0.1:0'],
    ),
    optIn: true,
  }));
  const base = ENGINES.map(baseVariant);
  return [
    ...overlapped,
    ...buffers,
    ...lean,
    ...nagle,
    ...metrics,
    ...base,
    nodePeer(),
    cPeer(C_BASELINE, 'epoll-echo', 'C epoll echo (bench/peers/epoll-echo.c, built with cc -O2)'),
    cPeer(
      C_URING_PEER,
      'uring-echo',
      'C io_uring echo, 64 KiB buffers (bench/peers/uring-echo.c, built with cc -O2 -luring)',
      ['-luring'],
    ),
    bunPeer(),
  ];
}

/**
 * The default echo from another build of overlapped (`OVERLAPPED_BENCH_BASE`:
 * a directory holding its built dist/), to measure a change against the
 * commit before it in the same run, under the same load.
 */
function baseVariant(engine: EngineName): ServerSpec {
  const variant = overlappedVariant(
    engine,
    DEFAULT_MODEL,
    '-base',
    `overlapped echo --engine ${engine} from the build in $OVERLAPPED_BENCH_BASE (only when named)`,
  );
  const main = () => join(process.env.OVERLAPPED_BENCH_BASE ?? '', 'dist/src/cli/main.js');
  return {
    ...variant,
    optIn: true,
    prepare: async () => {
      if (process.env.OVERLAPPED_BENCH_BASE === undefined) {
        return 'OVERLAPPED_BENCH_BASE is not set: point it at a directory with another build';
      }
      return existsSync(main()) ? undefined : `${main()} does not exist: build it first`;
    },
    launch: (port) => {
      const launch = variant.launch(port);
      const at = launch.args.indexOf(join(ROOT, 'dist/src/cli/main.js'));
      return { ...launch, args: launch.args.map((a, i) => (i === at ? main() : a)) };
    },
  };
}

function nodePeer(): ServerSpec {
  return {
    id: NODE_BASELINE,
    description: 'plain node:net echo (bench/peers/node-echo.ts): the ratio baseline',
    launch: (port) => ({
      file: process.execPath,
      args: [join(ROOT, 'dist/bench/peers/node-echo.js'), '--host', HOST, '--port', String(port)],
    }),
  };
}

/** A C peer under bench/peers, compiled into bench/.cache on first use. */
function cPeer(id: string, name: string, description: string, libs: string[] = []): ServerSpec {
  let binary = join(CACHE_DIR, name);
  return {
    id,
    description,
    prepare: async () => {
      const built = buildCPeer(name, libs);
      if ('skip' in built) return built.skip;
      binary = built.binary;
      return undefined;
    },
    launch: (port) => ({ file: binary, args: ['--host', HOST, '--port', String(port)] }),
  };
}

function bunPeer(): ServerSpec {
  let bun = 'bun';
  return {
    id: 'bun',
    description: 'Bun.listen echo (bench/peers/bun-echo.js); bun is installed on demand',
    prepare: async () => {
      const found = findOrInstallBun();
      if ('skip' in found) return found.skip;
      bun = found.path;
      return undefined;
    },
    launch: (port) => ({
      file: bun,
      args: [join(ROOT, 'bench/peers/bun-echo.js'), '--host', HOST, '--port', String(port)],
    }),
  };
}

/**
 * A working bun: the one on PATH, else the one installed in the cache, else one
 * installed there now with npm (the `bun` package brings the platform binary
 * through its optional dependencies). Never touches package.json.
 */
function findOrInstallBun(): { path: string } | { skip: string } {
  const runs = (path: string) =>
    spawnSync(path, ['--version'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
  if (runs('bun')) return { path: 'bun' };
  const prefix = join(CACHE_DIR, 'bun');
  const cached = join(prefix, 'node_modules/.bin/bun');
  if (runs(cached)) return { path: cached };
  const args = ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', 'bun@1'];
  process.stderr.write(`  installing bun: npm ${args.join(' ')}\n`);
  mkdirSync(prefix, { recursive: true });
  const result = spawnSync('npm', args, { encoding: 'utf8', timeout: 300_000 });
  if (result.error !== undefined) return { skip: `npm install bun@1: ${result.error.message}` };
  if (result.status !== 0) {
    return { skip: `npm install bun@1 failed (${result.status}): ${lastLine(result.stderr)}` };
  }
  return runs(cached)
    ? { path: cached }
    : { skip: `bun was installed into ${prefix} but ${cached} --version does not run` };
}
