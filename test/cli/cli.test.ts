/**
 * The `overlapped` command as a user runs it: a separate process, its exit
 * code, its stdout and stderr. User errors must be one line on stderr
 * (`overlapped: …`) with no stack trace; the echo server logs JSON lines.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ECHO_MODELS } from '../../src/servers/echo/echo-models.js';
import { MAIN, type RunResult, runCli, spawnCli } from '../support/cli-runner.js';
import { delay, unusedPort } from '../support/echo-fixture.js';
import { startPlainServer } from '../support/plain-server.js';

/** Asserts stderr is exactly one line `overlapped: …` and returns that line. */
function assertOneLineError(result: RunResult, what: string): string {
  const detail = `${what}: stderr was ${JSON.stringify(result.stderr)}`;
  assert.ok(!/^ {4}at /m.test(result.stderr), `stack trace on stderr; ${detail}`);
  assert.match(result.stderr, /^overlapped: [^\n]+\n$/, `not one 'overlapped: ' line; ${detail}`);
  return result.stderr.trimEnd();
}

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A running `overlapped echo` whose stdout is read as pino JSON lines. */
class EchoProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly logs: LogLine[] = [];
  stderr = '';
  #partial = '';
  #listeners = new Set<() => void>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: readonly string[]) {
    this.child = spawnCli(['echo', ...args]);
    this.child.stdin.end();
    this.child.stdout.setEncoding('utf8').on('data', (s: string) => {
      const lines = (this.#partial + s).split('\n');
      this.#partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: -1, msg: `(not JSON) ${line}` });
        }
      }
      for (const listener of this.#listeners) listener();
    });
    this.child.stderr.setEncoding('utf8').on('data', (s: string) => {
      this.stderr += s;
    });
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        for (const listener of this.#listeners) listener();
        resolve({ code, signal });
      });
    });
  }

  messages(): string[] {
    return this.logs.map((l) => l.msg);
  }

  /** Resolves with the first log line matching `match`, waiting for it if needed. */
  waitForLog(
    match: (line: LogLine) => boolean,
    what: string,
    timeoutMs = 10_000,
  ): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.logs.find(match);
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          done();
          reject(new Error(`echo exited before logging ${what}; stderr: ${this.stderr}`));
        }
      };
      const done = () => {
        clearTimeout(timer);
        this.#listeners.delete(check);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`no ${what} log line in ${timeoutMs} ms; got ${this.messages().join(' | ')}`),
        );
      }, timeoutMs);
      this.#listeners.add(check);
      check();
    });
  }

  /** The port from the `echo server listening on …` line. */
  async listeningPort(): Promise<number> {
    const line = await this.waitForLog(
      (l) => l.msg.startsWith('echo server listening on '),
      "'echo server listening on'",
    );
    assert.equal(typeof line.port, 'number', `no port field in ${JSON.stringify(line)}`);
    return line.port as number;
  }

  /** Sends `signal` and waits for the exit (SIGKILL after `timeoutMs`). */
  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
    timeoutMs = 5_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

describe('overlapped --help', { concurrency: true }, () => {
  const cases: { args: string[]; mentions: string[] }[] = [
    { args: ['--help'], mentions: ['echo', 'client', 'load', '--version'] },
    {
      args: ['echo', '--help'],
      mentions: [
        '--host',
        '--port',
        '--workers',
        '--buffer-size',
        '--max-connections',
        '--engine',
        '--model',
        '--nagle',
        '--quiet',
        '--log-format',
        '--log-level',
      ],
    },
    {
      args: ['client', '--help'],
      mentions: ['--host', '--port', '--timeout', '--engine', 'message'],
    },
    {
      args: ['load', '--help'],
      mentions: ['--host', '--port', '--conns', '--size', '--depth', '--duration', '--json'],
    },
  ];
  for (const { args, mentions } of cases) {
    it(`overlapped ${args.join(' ')} exits 0 and names ${mentions.join(' ')}`, async () => {
      const result = await runCli(args);
      assert.equal(result.code, 0, `exit code; stderr: ${result.stderr}`);
      for (const word of mentions) {
        assert.ok(result.stdout.includes(word), `help does not mention ${word}:\n${result.stdout}`);
      }
    });
  }
});

describe('overlapped user errors', { concurrency: true }, () => {
  it('echo --port 70000: exit 2, one line naming the range', async () => {
    const result = await runCli(['echo', '--port', '70000']);
    assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`);
    const line = assertOneLineError(result, 'echo --port 70000');
    assert.match(line, /--port/);
    assert.match(line, /0 to 65535/);
  });

  it('echo --port abc: exit 2, one line saying a whole number is needed', async () => {
    const result = await runCli(['echo', '--port', 'abc']);
    assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`);
    const line = assertOneLineError(result, 'echo --port abc');
    assert.match(line, /--port/);
    assert.match(line, /whole number/);
    assert.match(line, /'abc'/);
  });

  it('--bogus (program level): non-zero exit, one line', async () => {
    const result = await runCli(['--bogus']);
    assert.notEqual(result.code, 0);
    const line = assertOneLineError(result, '--bogus');
    assert.match(line, /--bogus/);
  });

  it('echo --model poll: exit 2, one line naming the models', async () => {
    const result = await runCli(['echo', '--model', 'poll']);
    assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`);
    const line = assertOneLineError(result, 'echo --model poll');
    assert.match(line, /completion-port/);
  });

  it('echo --bogus: exit 2, one line', async () => {
    const result = await runCli(['echo', '--bogus']);
    assert.equal(result.code, 2);
    const line = assertOneLineError(result, 'echo --bogus');
    assert.match(line, /--bogus/);
  });

  it('echo on a port in use: exit 1, one line naming EADDRINUSE and --port', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const address = blocker.address();
      assert.ok(address !== null && typeof address === 'object');
      const result = await runCli(['echo', '--port', String(address.port)]);
      assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
      const line = assertOneLineError(result, 'echo on a used port');
      assert.match(line, /EADDRINUSE/);
      assert.match(line, /--port/);
      assert.ok(line.includes(String(address.port)), `the port is not named: ${line}`);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('client to a closed port: exit 1, one line naming ECONNREFUSED', async () => {
    const port = await unusedPort();
    const result = await runCli(['client', '--port', String(port), 'hi']);
    assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
    const line = assertOneLineError(result, 'client to a closed port');
    assert.match(line, /ECONNREFUSED/);
    assert.equal(result.stdout, '');
  });
});

describe('overlapped echo + client end to end', () => {
  for (const model of ECHO_MODELS) {
    it(`--model ${model}: echoes messages and stdin, logs connects, and stops on SIGTERM with exit 0`, async () => {
      const server = new EchoProcess(['--port', '0', '--model', model]);
      try {
        const port = await server.listeningPort();
        const listening = server.logs.find((l) => l.msg.startsWith('echo server listening on '));
        assert.equal(listening?.model, model);
        assert.ok(port > 0 && port <= 65535, `port ${port}`);

        const messages = await runCli(['client', '--port', String(port), 'hello', 'world']);
        assert.equal(messages.code, 0, `client exit code; stderr: ${messages.stderr}`);
        assert.equal(messages.stdout, 'hello\nworld\n');
        assert.equal(messages.stderr, '');

        const relay = await runCli(['client', '--port', String(port)], 'abc\n');
        assert.equal(relay.code, 0, `relay exit code; stderr: ${relay.stderr}`);
        assert.equal(relay.stdout, 'abc\n');
        assert.equal(relay.stderr, '');

        await server.waitForLog(
          (l) => l.msg === 'disconnected' && l.connections === 0,
          "'disconnected' with 0 connections left",
        );
        const connects = server.logs.filter((l) => l.msg === 'connected');
        const disconnects = server.logs.filter((l) => l.msg === 'disconnected');
        assert.equal(connects.length, 2, server.messages().join(' | '));
        assert.equal(disconnects.length, 2, server.messages().join(' | '));
        for (const line of connects) assert.match(String(line.peer), /^127\.0\.0\.1:\d+$/);

        const exit = await server.stop('SIGTERM');
        assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${server.stderr}`);
        assert.ok(server.messages().includes('stopped'), server.messages().join(' | '));
        assert.equal(server.stderr, '');
      } finally {
        await server.stop('SIGKILL');
      }
    });
  }

  it('--quiet logs no connects or disconnects, but still the listening line', async () => {
    const server = new EchoProcess(['--port', '0', '--quiet']);
    try {
      const port = await server.listeningPort();
      const result = await runCli(['client', '--port', String(port), 'ping']);
      assert.equal(result.code, 0, `client exit code; stderr: ${result.stderr}`);
      assert.equal(result.stdout, 'ping\n');

      const exit = await server.stop('SIGTERM');
      assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${server.stderr}`);
      const chatty = server.logs.filter((l) => l.msg === 'connected' || l.msg === 'disconnected');
      assert.deepEqual(chatty, [], 'info lines logged under --quiet');
      assert.equal(server.stderr, '');
    } finally {
      await server.stop('SIGKILL');
    }
  });
});

describe('overlapped load against overlapped echo', () => {
  for (const model of ECHO_MODELS) {
    it(`--model ${model}: --json reports messages echoed intact, no errors, and the server CPU per message`, async () => {
      const server = new EchoProcess(['--port', '0', '--quiet', '--model', model]);
      try {
        const port = await server.listeningPort();
        const pid = server.child.pid;
        assert.ok(pid !== undefined);
        const result = await runCli(
          [
            'load',
            '--port',
            String(port),
            '--conns',
            '8',
            '--size',
            '300',
            '--depth',
            '4',
            '--duration',
            '1',
            '--server-pid',
            String(pid),
            '--json',
          ],
          '',
          20_000,
        );
        assert.equal(result.code, 0, `load exit code; stderr: ${result.stderr}`);
        const report = JSON.parse(result.stdout) as {
          messages: number;
          errors: number;
          mismatches: number;
          latencyUs: { p99: number };
          serverCpuUsPerMessage?: number;
        };
        assert.ok(report.messages > 0, 'messages were echoed');
        assert.equal(report.errors, 0);
        assert.equal(report.mismatches, 0);
        assert.ok(report.latencyUs.p99 > 0);
        assert.equal(typeof report.serverCpuUsPerMessage, 'number');
        const exit = await server.stop('SIGTERM');
        assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${server.stderr}`);
      } finally {
        await server.stop('SIGKILL');
      }
    });
  }
});

describe('overlapped load never reports a bad run as a good one', { concurrency: true }, () => {
  const short = ['--conns', '2', '--size', '64', '--duration', '1'];

  it('a server that never answers: exit 1, no zero report, a hint that it may not be an echo server', async () => {
    const silent = await startPlainServer(() => {});
    try {
      const result = await runCli(['load', '--port', String(silent.port), ...short], '', 20_000);
      const line = assertOneLineError(result, 'load against a silent server');
      assert.equal(result.code, 1);
      assert.match(line, /no message was echoed .*no byte came back.*an echo server\?/);
      assert.equal(result.stdout, '', 'no report of zeros');
    } finally {
      await silent.close();
    }
  });

  it('echoes that differ: exit 1 naming the offset of the first wrong byte', async () => {
    // Flips stream byte 70 of the first connection: message 2, offset 6.
    let done = false;
    const corrupting = await startPlainServer((socket) => {
      let seen = 0;
      socket.on('data', (data) => {
        const copy = Buffer.from(data);
        if (!done && seen + copy.length > 70) {
          done = true;
          copy[70 - seen] = (copy[70 - seen] as number) ^ 0xff;
        }
        seen += copy.length;
        socket.write(copy);
      });
    });
    try {
      const args = ['load', '--port', String(corrupting.port), ...short, '--depth', '2'];
      const result = await runCli(args, '', 20_000);
      const line = assertOneLineError(result, 'load against a corrupting server');
      assert.equal(result.code, 1);
      assert.match(line, /first wrong byte is at offset 6 of message 2 on connection \d/);
    } finally {
      await corrupting.close();
    }
  });

  for (const json of [false, true]) {
    it(`Ctrl-C during the warm-up${json ? ' (--json)' : ''}: says nothing was measured, exit 1`, async () => {
      const server = new EchoProcess(['--port', '0']);
      try {
        const port = await server.listeningPort();
        const child = spawnCli([
          'load',
          '--port',
          String(port),
          ...short,
          '--warmup',
          '30',
          ...(json ? ['--json'] : []),
        ]);
        child.stdin.end();
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (s: string) => {
          stdout += s;
        });
        child.stderr.setEncoding('utf8').on('data', (s: string) => {
          stderr += s;
        });
        const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
        // The load's SIGINT handler is in place before it connects: once the server logs a
        // connection, the load is in its warm-up, whatever the machine's speed.
        await server.waitForLog((l) => l.msg === 'connected', "the load's first connection");
        child.kill('SIGINT');
        const code = await exited;
        const line = assertOneLineError(
          { code, signal: null, stdout, stderr },
          'Ctrl-C during the warm-up',
        );
        assert.equal(code, 1);
        assert.match(line, /during the warm-up: nothing was measured/);
        if (json) {
          const report = JSON.parse(stdout) as { stoppedEarly: boolean; stoppedIn: string };
          assert.equal(report.stoppedEarly, true);
          assert.equal(report.stoppedIn, 'warmup');
        } else {
          assert.equal(stdout, '', 'no report of zeros');
        }
      } finally {
        await server.stop('SIGKILL');
      }
    });
  }
});

/** True if this machine can listen on ::1 (some containers have no IPv6 loopback). */
async function hasIpv6Loopback(): Promise<boolean> {
  const probe = createServer();
  return new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(0, '::1', () => probe.close(() => resolve(true)));
  });
}

const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

describe('server logs', { concurrency: true }, () => {
  it('--log-format pretty: readable lines, not JSON, and the same events', async () => {
    const server = new EchoProcess(['--port', '0', '--log-format', 'pretty']);
    try {
      const line = await server.waitForLog((l) => l.level === -1, 'a pretty line');
      assert.match(
        line.msg,
        /^\(not JSON\) \[\d\d:\d\d:\d\d\.\d{3}\] INFO: echo server listening on 127\.0\.0\.1:\d+ /,
      );
      assert.ok(!line.msg.includes('\u001b['), 'no colours when stdout is not a terminal');
    } finally {
      await server.stop('SIGKILL');
    }
  });

  it('on a terminal the default is pretty; piped it is JSON', {
    skip: !hasScript && 'script (util-linux) is not installed',
  }, async () => {
    // script(1) gives the command a pseudo-terminal as stdout.
    const tty = spawn(
      'script',
      ['-qec', `${process.execPath} ${MAIN} echo --port 0`, '/dev/null'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let out = '';
    tty.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no start line on the terminal: ${out}`)),
          10_000,
        );
        tty.stdout.on('data', () => {
          if (out.includes('listening on')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      assert.match(out, /INFO.*echo server listening on/);
      assert.ok(!out.trimStart().startsWith('{'), `JSON on a terminal: ${out}`);
    } finally {
      tty.kill('SIGKILL');
    }
    const piped = new EchoProcess(['--port', '0']);
    try {
      await piped.listeningPort();
    } finally {
      await piped.stop('SIGKILL');
    }
  });

  it('--log-level warn drops the info lines, --log-level bogus is a usage error', async () => {
    const server = new EchoProcess(['--port', '0', '--log-level', 'warn']);
    try {
      await delay(1500);
      assert.deepEqual(server.logs, [], 'info lines logged at --log-level warn');
      assert.equal(server.child.exitCode, null, `the server is running; stderr: ${server.stderr}`);
    } finally {
      await server.stop('SIGKILL');
    }
    const bad = await runCli(['echo', '--log-level', 'loud']);
    assert.equal(bad.code, 2);
    assertOneLineError(bad, '--log-level loud');
  });

  it('start lines: IPv6 in brackets, pooled receives (the default) named, the engine and why', async (t) => {
    if (!(await hasIpv6Loopback())) {
      t.skip('no IPv6 loopback here');
      return;
    }
    const server = new EchoProcess(['--port', '0', '--host', '::1']);
    try {
      await server.listeningPort();
      const line = server.logs.find((l) => l.msg.startsWith('echo server listening on '));
      assert.match(
        String(line?.msg),
        /listening on \[::1\]:\d+ \(completion-port model, pooled receives; engine (node|uring): .+\)$/,
      );
      assert.equal(line?.pooled, true);
    } finally {
      await server.stop('SIGKILL');
    }
  });

  for (const [args, receives, pooled] of [
    [['--no-pooled'], 'a 8192-byte buffer per connection', false],
    [['--buffer-size', '4096'], 'a 4096-byte buffer per connection', false],
    [['--pooled', '--model', 'routines'], 'pooled receives', true],
  ] as const) {
    it(`start line with ${args.join(' ')}: ${receives}`, async () => {
      const server = new EchoProcess(['--port', '0', ...args]);
      try {
        await server.listeningPort();
        const line = server.logs.find((l) => l.msg.startsWith('echo server listening on '));
        assert.match(String(line?.msg), new RegExp(`model, ${receives}; engine`));
        assert.equal(line?.pooled, pooled);
      } finally {
        await server.stop('SIGKILL');
      }
    });
  }

  it('start line of a readiness model says nothing of pooled receives', async () => {
    const server = new EchoProcess(['--port', '0', '--model', 'select']);
    try {
      await server.listeningPort();
      const line = server.logs.find((l) => l.msg.startsWith('echo server listening on '));
      assert.match(String(line?.msg), /\(select model; engine/);
      assert.equal(line?.pooled, undefined);
    } finally {
      await server.stop('SIGKILL');
    }
  });

  it('--pooled with --buffer-size: one line, exit 2', async () => {
    const bad = await runCli(['echo', '--pooled', '--buffer-size', '4096']);
    assert.equal(bad.code, 2);
    assert.match(assertOneLineError(bad, '--pooled --buffer-size'), /give one or the other/);
  });

  it('pipe-server start line: "1 instance", and the engine and why', {
    skip: process.platform === 'win32',
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ovl-log-'));
    const child = spawnCli(['pipe-server', '--name', join(dir, 'p.sock'), '--instances', '1']);
    child.stdin.end();
    try {
      const first = await new Promise<string>((resolve, reject) => {
        child.stdout.setEncoding('utf8').once('data', resolve);
        child.once('close', () => reject(new Error('pipe-server exited')));
      });
      const line = JSON.parse(first.split('\n')[0] as string) as { msg: string };
      assert.match(line.msg, /\(message mode, 1 instance; engine (node|uring): .+\)$/);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
