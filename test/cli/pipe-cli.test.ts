/**
 * `overlapped pipe-server` and `overlapped pipe-client` as a user runs them:
 * separate processes, the resolved path in the start line, replies on
 * stdout, one-line errors with exit codes, and a clean stop on SIGTERM.
 */
import assert from 'node:assert/strict';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { runCli as run, spawnCli } from '../support/cli-runner.js';
import { tempPipeDir, unixOnly } from '../support/pipe-fixture.js';

/** Starts `overlapped pipe-server` and resolves once its listening line names the path. */
async function startServer(args: readonly string[]): Promise<{
  child: ChildProcessWithoutNullStreams;
  line: Record<string, unknown>;
  logs: string[];
}> {
  const child = spawnCli(['pipe-server', ...args]);
  child.stdin.end();
  const logs: string[] = [];
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const line = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let partial = '';
    const timer = setTimeout(
      () => reject(new Error(`no listening line; stderr: ${stderr}`)),
      10_000,
    );
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      const lines = (partial + s).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        logs.push(l);
        const parsed = JSON.parse(l) as Record<string, unknown>;
        if (String(parsed.msg).startsWith('pipe server listening on ')) {
          clearTimeout(timer);
          resolve(parsed);
        }
      }
    });
    child.once('close', () => reject(new Error(`pipe-server exited; stderr: ${stderr}`)));
  });
  return { child, line, logs };
}

function stopServer(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    child.once('close', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

describe('overlapped pipe-server / pipe-client', { skip: unixOnly }, () => {
  it('help names every flag, and the two meanings of mode', async () => {
    const server = await run(['pipe-server', '--help']);
    assert.equal(server.code, 0);
    for (const flag of [
      '--name',
      '--instances',
      '--max-message',
      '--mode',
      '--file-mode',
      '--quiet',
    ]) {
      assert.ok(server.stdout.includes(flag), `pipe-server --help lacks ${flag}`);
    }
    // An octal flag shows its default in octal, as it is typed (not 384).
    assert.match(server.stdout, /\(default: 600\)/);
    const client = await run(['pipe-client', '--help']);
    for (const flag of ['--name', '--timeout', '--mode', '--max-message', '--engine']) {
      assert.ok(client.stdout.includes(flag), `pipe-client --help lacks ${flag}`);
    }
  });

  it('serves requests from arguments and stdin lines, then stops on SIGTERM leaving no socket file', async () => {
    const tmp = tempPipeDir();
    const path = tmp.path('cli.sock');
    try {
      const { child, line } = await startServer(['--name', path, '--file-mode', '660', '--quiet']);
      assert.equal(line.path, path, 'the start line names the resolved path');
      assert.equal(statSync(path).mode & 0o777, 0o660);
      const args = await run(['pipe-client', '--name', path, 'one', 'two']);
      assert.equal(args.code, 0, args.stderr);
      assert.equal(args.stdout, 'Default answer from server\nDefault answer from server\n');
      const lines = await run(['pipe-client', '--name', path], 'a\nb\nc\n');
      assert.equal(lines.code, 0, lines.stderr);
      assert.equal(lines.stdout.split('\n').filter(Boolean).length, 3);
      const second = await run(['pipe-server', '--name', path]);
      assert.equal(second.code, 1);
      assert.match(
        second.stderr,
        /^overlapped: a live server already listens on .*OVL_ERR_PIPE_NAME_IN_USE\)\n$/,
      );
      assert.equal(await stopServer(child), 0);
      assert.equal(existsSync(path), false, 'no socket file left behind');
    } finally {
      tmp.remove();
    }
  });

  it('--instances 1: a second client is refused at once, or waits with --timeout', async () => {
    const tmp = tempPipeDir();
    const path = tmp.path('busy.sock');
    try {
      const { child } = await startServer(['--name', path, '--instances', '1', '--quiet']);
      // The first client holds the instance while it reads stdin.
      const holder = spawnCli(['pipe-client', '--name', path]);
      holder.stdin.write('hold\n');
      await new Promise((resolve) => holder.stdout.once('data', resolve));
      const refused = await run(['pipe-client', '--name', path, 'x']);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /^overlapped: .*busy.*\(OVL_ERR_PIPE_BUSY\)\n$/);
      // A command-line user is told of the flag, not of the API's waitNamedPipe.
      assert.match(refused.stderr, /--timeout/);
      assert.doesNotMatch(refused.stderr, /waitNamedPipe/);
      setTimeout(() => holder.stdin.end(), 200);
      const waited = await run(['pipe-client', '--name', path, '--timeout', '5000', 'x']);
      assert.equal(waited.code, 0, waited.stderr);
      assert.equal(waited.stdout, 'Default answer from server\n');
      await stopServer(child);
    } finally {
      tmp.remove();
    }
  });

  it('user errors are one line: no server (exit 1), bad flags (exit 2)', async () => {
    const tmp = tempPipeDir();
    try {
      const none = await run(['pipe-client', '--name', tmp.path('none.sock'), 'x']);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /^overlapped: no server on pipe .*OVL_ERR_PIPE_NOT_FOUND\)\n$/);
      for (const args of [
        ['pipe-server', '--file-mode', '999'],
        ['pipe-server', '--mode', 'stream'],
        ['pipe-server', '--max-message', '0'],
        ['pipe-server', '--instances', 'lots'],
        ['pipe-server', '--name', 'a\\b'],
      ]) {
        const result = await run(args);
        assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
        assert.match(result.stderr, /^overlapped: [^\n]+\n$/, args.join(' '));
      }
    } finally {
      tmp.remove();
    }
  });
});
