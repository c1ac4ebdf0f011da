/**
 * Runs the built `overlapped` command as a user would: a separate process,
 * its exit code or signal, and everything it wrote to stdout and stderr.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** dist/src/cli/main.js, found from this compiled file at dist/test/support/. */
export const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts `overlapped <args>` with piped stdio; `env` is added to (or, undefined, removed from) this process's. */
export function spawnCli(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): ChildProcessWithoutNullStreams {
  const merged = { ...process.env, ...env };
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete merged[name];
  return spawn(process.execPath, [MAIN, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: merged,
  });
}

/** Runs the CLI to completion with `input` on stdin (empty by default); SIGKILL after `timeoutMs`. */
export function runCli(
  args: readonly string[],
  input = '',
  timeoutMs = 10_000,
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, env);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`overlapped ${args.join(' ')} ran over ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    // A command that fails before reading all of its input closes the pipe: not a test failure.
    child.stdin.on('error', () => {});
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(input);
  });
}
