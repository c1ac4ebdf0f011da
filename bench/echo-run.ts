/**
 * Running servers under load, shared by the echo benchmark and `overlapped report`:
 * start a server pinned to a core, wait until it listens, probe whether it can run
 * here at all, and drive it with the C (or node:net) load generator pinned to
 * another core, reading its CPU and memory from /proc.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { LoadOptions, LoadReport } from '../src/load/load-generator.js';
import { buildCPeer } from './c-build.js';
import { HOST, type Launch, ROOT, type ServerSpec } from './echo-servers.js';

export const LOADERS = ['c', 'node'] as const;
export type LoaderName = (typeof LOADERS)[number];

/** The load generator the cells run: the compiled C binary, or node running run-load.js. */
export type Loader = { name: 'c'; binary: string } | { name: 'node' };

/** Starts `launch` pinned to `cpu`; taskset execs the server, so the child's pid is its own. */
export function spawnPinned(cpu: number | undefined, launch: Launch): ChildProcess {
  const options = {
    stdio: ['ignore', 'pipe', 'pipe'] as ('ignore' | 'pipe')[],
    env: { ...process.env, ...launch.env },
  };
  return cpu === undefined
    ? spawn(launch.file, launch.args, options)
    : spawn('taskset', ['-c', String(cpu), launch.file, ...launch.args], options);
}

/** Keeps the last `limit` characters a stream produced, for error messages. */
export function tail(stream: NodeJS.ReadableStream | null, limit = 4000): () => string {
  let text = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    text = (text + chunk).slice(-limit);
  });
  return () => text.trim();
}

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A port that was free a moment ago (bound to 0, read, released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Connects once, then closes gracefully and waits for the server's side to close
 * too: the server must not still hold this probe's descriptor when the load
 * generator counts its idle descriptors (the baseline of "all accepted").
 */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    let connected = false;
    const timer = setTimeout(() => socket.destroy(), 2000);
    socket.once('connect', () => {
      connected = true;
      socket.end();
    });
    socket.on('data', () => {});
    socket.once('error', () => {});
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(connected);
    });
  });
}

export async function waitForListening(
  port: number,
  child: ChildProcess,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + 15_000;
  child.once('error', () => {}); // e.g. ENOENT from spawn; exitCode tells the rest
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `exited (${child.exitCode ?? child.signalCode}) before listening: ${stderr() || '(no stderr)'}`,
      );
    }
    if (await canConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`not listening on ${HOST}:${port} after 15 s: ${stderr() || '(no stderr)'}`);
}

export async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited(child);
  clearTimeout(killer);
}

/**
 * Gets `server` ready and starts it once on its own: resolves with a reason to skip
 * it, or undefined when it listens and (if it can tell) runs what was asked for.
 */
export async function probe(server: ServerSpec): Promise<string | undefined> {
  const unprepared = await server.prepare?.();
  if (unprepared !== undefined) return unprepared;
  const port = await freePort();
  let child: ChildProcess;
  try {
    child = spawnPinned(undefined, server.launch(port));
  } catch (err) {
    return `cannot start: ${(err as Error).message}`;
  }
  const stdout = tail(child.stdout);
  const stderr = tail(child.stderr);
  try {
    await waitForListening(port, child, stderr);
    // The start-up line may follow the listen by a moment.
    for (let i = 0; i < 40 && !stdout().includes('listening'); i++) await sleep(25);
    return server.verify?.(stdout());
  } catch (err) {
    return oneLine((err as Error).message);
  } finally {
    await stopServer(child);
  }
}

/** The first line of a multi-line message, for the report. */
export function oneLine(text: string): string {
  return text.split('\n').find((line) => line.trim() !== '') ?? text;
}

/**
 * The load generator to use: node when asked; else the C one, built now if stale. When
 * it cannot be built, an explicit `--loader c` is an error and the default falls back
 * to node, with the reason in `fallback`.
 */
export function chooseLoader(
  asked: LoaderName | undefined,
): { loader: Loader; fallback?: string } | { error: string } {
  if (asked === 'node') return { loader: { name: 'node' } };
  const built = buildCPeer('load-gen');
  if ('binary' in built) return { loader: { name: 'c', binary: built.binary } };
  if (asked === 'c')
    return { error: `--loader c: cannot build bench/peers/load-gen.c: ${built.skip}` };
  return { loader: { name: 'node' }, fallback: `cannot build the C one (${built.skip})` };
}

/** The C load generator's flags for `options` (see bench/peers/load-gen.c). */
function loadGenArgs(options: LoadOptions): string[] {
  const args = [
    '--host',
    options.host ?? HOST,
    '--port',
    String(options.port),
    '--conns',
    String(options.conns),
    '--size',
    String(options.size),
    '--depth',
    String(options.depth),
    '--duration',
    String(options.durationSec),
    '--warmup',
    String(options.warmupSec ?? 0),
  ];
  if (options.connectTimeoutMs !== undefined) {
    args.push('--connect-timeout-ms', String(options.connectTimeoutMs));
  }
  if (options.serverPid !== undefined) args.push('--server-pid', String(options.serverPid));
  return args;
}

export async function runLoadProcess(
  cpu: number | undefined,
  options: LoadOptions,
  loader: Loader,
): Promise<LoadReport> {
  const child = spawnPinned(
    cpu,
    loader.name === 'c'
      ? { file: loader.binary, args: loadGenArgs(options) }
      : {
          file: process.execPath,
          args: [join(ROOT, 'dist/bench/run-load.js'), JSON.stringify(options)],
        },
  );
  const stdout = tail(child.stdout, 1_000_000);
  const stderr = tail(child.stderr);
  const limitMs = ((options.warmupSec ?? 0) + options.durationSec) * 1000 + 60_000;
  const killer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  await exited(child);
  clearTimeout(killer);
  if (child.exitCode !== 0) {
    throw new Error(`load generator failed (${child.exitCode ?? child.signalCode}): ${stderr()}`);
  }
  return JSON.parse(stdout()) as LoadReport;
}

export interface Pinning {
  server: number | undefined;
  load: number | undefined;
}

/** What one run loads a server with. */
export interface CellLoad {
  conns: number;
  size: number;
  depth: number;
  durationSec: number;
  warmupSec: number;
}

/**
 * One run of one server under one load. `watch`, when given, is called with the
 * server's pid once it listens and before the load starts; the function it returns
 * is called when the load has ended, while the server still runs.
 */
export async function runCell(
  server: ServerSpec,
  load: CellLoad,
  pinning: Pinning,
  loader: Loader,
  watch?: (pid: number) => () => void,
): Promise<LoadReport> {
  const port = await freePort();
  const child = spawnPinned(pinning.server, server.launch(port));
  tail(child.stdout);
  const stderr = tail(child.stderr);
  try {
    await waitForListening(port, child, stderr);
    if (child.pid === undefined) throw new Error('has no pid');
    const stopWatching = watch?.(child.pid);
    try {
      // The load generator samples the server's RSS idle, connected and at the end.
      return await runLoadProcess(
        pinning.load,
        { host: HOST, port, ...load, serverPid: child.pid },
        loader,
      );
    } finally {
      stopWatching?.();
    }
  } finally {
    await stopServer(child);
  }
}

/** The soft limit on open files this process (and so every child) has, if the shell tells. */
export function openFileLimit(): number | undefined {
  const out = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout?.trim();
  const n = Number(out);
  return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number.isSafeInteger(n) ? n : undefined;
}

/** Descriptors a server or the generator needs beyond one per connection. */
export const SPARE_FDS = 100;

/**
 * Server on CPU 0 and load generator on CPU 1 when taskset exists and there are two
 * CPUs; otherwise unpinned, with the reason (results are then noisier).
 */
export function choosePinning(): { pinning: Pinning; unpinned?: string } {
  const hasTaskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  if (hasTaskset && availableParallelism() >= 2) return { pinning: { server: 0, load: 1 } };
  return {
    pinning: { server: undefined, load: undefined },
    unpinned: hasTaskset ? 'fewer than 2 CPUs' : 'taskset not found',
  };
}
