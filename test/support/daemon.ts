/**
 * Real third-party servers for tests (HAProxy, Prometheus): a free loopback
 * port, a temporary directory, and a child process that is stopped and
 * whose output is kept for the failure message.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Why `command` cannot run here (for a skip), or undefined when it can. */
export function missing(command: string, versionFlag: string, install: string): string | undefined {
  const probe = spawnSync(command, [versionFlag], { encoding: 'utf8' });
  return probe.error !== undefined || probe.status !== 0
    ? `${command} is not installed here: ${install}`
    : undefined;
}

/** A port free on 127.0.0.1 now (the OS picks it; a daemon binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface Daemon {
  readonly child: ChildProcess;
  /** What it printed so far (stdout and stderr). */
  output(): string;
  stop(): Promise<void>;
}

/** Starts `command` and waits until `readyPort` on 127.0.0.1 accepts a connection. */
export async function startDaemon(
  command: string,
  args: string[],
  readyPort: number,
  timeoutMs = 15_000,
): Promise<Daemon> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const daemon: Daemon = {
    child,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`${command} exited with ${child.exitCode} before listening:\n${out}`);
    }
    if (await accepts(readyPort)) return daemon;
    if (performance.now() > deadline) {
      await daemon.stop();
      throw new Error(`${command} did not listen on ${readyPort} within ${timeoutMs} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
