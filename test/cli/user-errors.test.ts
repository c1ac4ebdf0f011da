/**
 * Every subcommand with every class of bad input, as a user would type it:
 * each must print exactly one line on stderr (`overlapped: …`), no stack
 * frame, and exit with the documented code (docs/errors.md: 2 for a bad
 * command line, 1 for a runtime failure). Cases that reach an engine run on
 * each engine that works here, forced with OVERLAPPED_ENGINE.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type RunResult, runCli, spawnCli } from '../support/cli-runner.js';
import { unusedPort } from '../support/echo-fixture.js';
import { enginesUnderTest } from '../support/engines.js';
import { tempPipeDir, unixOnly } from '../support/pipe-fixture.js';
import { type PlainServer, startPlainServer } from '../support/plain-server.js';

const COMMANDS = ['echo', 'client', 'load', 'pipe-server', 'pipe-client'] as const;
type Subcommand = (typeof COMMANDS)[number];

/** Asserts one `overlapped: ` line on stderr, no stack frame, and `code`; returns the line. */
function assertUserError(result: RunResult, code: number, what: string): string {
  const detail = `${what}: exit ${result.code}, stderr ${JSON.stringify(result.stderr)}`;
  assert.ok(!/^ {4}at /m.test(result.stderr), `stack frame on stderr; ${detail}`);
  assert.doesNotMatch(result.stderr, /Warning/, `a warning on stderr; ${detail}`);
  assert.match(result.stderr, /^overlapped: [^\n]+\n$/, `not one 'overlapped: ' line; ${detail}`);
  assert.equal(result.code, code, `exit code; ${detail}`);
  return result.stderr.trimEnd();
}

/** Bad command lines: refused while parsing, before any engine or socket exists. */
const USAGE_CASES: { name: string; commands: readonly Subcommand[]; args: string[] }[] = [
  { name: 'an unknown flag', commands: COMMANDS, args: ['--bogus'] },
  { name: 'a flag without its value', commands: ['echo', 'client', 'load'], args: ['--port'] },
  {
    name: 'a port that is not a number',
    commands: ['echo', 'client', 'load'],
    args: ['--port', 'abc'],
  },
  {
    name: 'a port out of range',
    commands: ['echo', 'client', 'load'],
    args: ['--port', '70000'],
  },
  { name: 'an empty --host', commands: ['echo', 'client', 'load'], args: ['--host', ''] },
  {
    name: 'a malformed --host',
    commands: ['echo', 'client', 'load'],
    args: ['--host', 'not a host'],
  },
  {
    name: 'an unknown --engine',
    commands: ['echo', 'client', 'pipe-server', 'pipe-client'],
    args: ['--engine', 'bogus'],
  },
  {
    name: 'a --timeout that is not a number',
    commands: ['client', 'pipe-client'],
    args: ['--timeout', 'soon'],
  },
  { name: 'an unknown --mode', commands: ['pipe-server', 'pipe-client'], args: ['--mode', 'x'] },
  { name: 'an empty --name', commands: ['pipe-server', 'pipe-client'], args: ['--name', ''] },
  { name: 'an unknown --proxy-protocol', commands: ['echo'], args: ['--proxy-protocol', 'v3'] },
  {
    name: '--proxy-from without --proxy-protocol',
    commands: ['echo'],
    args: ['--proxy-from', '10.0.0.0/8'],
  },
  {
    name: 'a --proxy-from that is not a network',
    commands: ['echo'],
    args: ['--proxy-protocol', 'v1', '--proxy-from', '10.0.0/8'],
  },
  {
    name: 'a --proxy-from prefix out of range',
    commands: ['echo'],
    args: ['--proxy-protocol', 'v2', '--proxy-from', '10.0.0.0/33'],
  },
  {
    name: 'a --proxy-timeout of 0',
    commands: ['echo'],
    args: ['--proxy-protocol', 'any', '--proxy-timeout', '0'],
  },
  {
    name: '--proxy-protocol with --threads',
    commands: ['echo'],
    args: ['--threads', '2', '--proxy-protocol', 'v2'],
  },
  {
    name: '--metrics with --threads',
    commands: ['echo'],
    args: ['--threads', '2', '--metrics', '0'],
  },
  {
    name: 'a malformed --metrics',
    commands: ['echo', 'pipe-server'],
    args: ['--metrics', 'host:'],
  },
  {
    name: 'a --metrics port out of range',
    commands: ['echo', 'pipe-server'],
    args: ['--metrics', '70000'],
  },
];

describe('bad command lines: one line, exit 2, on every subcommand', { concurrency: 4 }, () => {
  for (const { name, commands, args } of USAGE_CASES) {
    for (const command of commands) {
      it(`${command} with ${name} (${args.join(' ')})`, async () => {
        const result = await runCli([
          command,
          ...args,
          ...(command.endsWith('client') ? ['hi'] : []),
        ]);
        assertUserError(result, 2, `${command} ${args.join(' ')}`);
        assert.equal(result.stdout, '', 'nothing started, so nothing was logged');
      });
    }
  }

  for (const command of COMMANDS) {
    it(`${command} with OVERLAPPED_ENGINE=bogus names the variable`, async () => {
      const result = await runCli(
        [command, ...(command.endsWith('client') ? ['hi'] : [])],
        '',
        10_000,
        {
          OVERLAPPED_ENGINE: 'bogus',
        },
      );
      const line = assertUserError(result, 2, `OVERLAPPED_ENGINE=bogus ${command}`);
      assert.match(line, /OVERLAPPED_ENGINE/);
      assert.match(line, /node or uring/);
    });
  }

  for (const [variable, value, allowed] of [
    ['OVERLAPPED_URING_POOL_BUFFERS', '1000', /power of two from 32 to 32768/],
    ['OVERLAPPED_URING_POOL_BUFFERS', 'abc', /power of two/],
    ['OVERLAPPED_URING_TASKRUN', 'fast', /defer, coop, plain/],
    ['OVERLAPPED_URING_RECV_MULTISHOT', 'no', /use 0 .* or 1/],
    ['OVERLAPPED_URING_POOL_INCREMENTAL', 'yes', /use 0 .* or 1/],
  ] as const) {
    for (const command of ['echo', 'client'] as const) {
      it(`${command} with ${variable}=${value} names the variable and the allowed values`, async () => {
        const result = await runCli(
          [command, ...(command === 'client' ? ['hi'] : [])],
          '',
          10_000,
          {
            [variable]: value,
          },
        );
        const line = assertUserError(result, 2, `${variable}=${value} ${command}`);
        assert.ok(line.includes(`${variable}="${value}"`), line);
        assert.match(line, allowed);
      });
    }
  }

  it('echo --host [::1] is taken as ::1 (the form start lines print)', async () => {
    const result = await runCli(['echo', '--host', '[::1]', '--port', '70000']);
    // Only the port is refused: the bracketed address passed.
    const line = assertUserError(result, 2, 'echo --host [::1] --port 70000');
    assert.match(line, /--port/);
  });
});

for (const { name: engine, skip } of enginesUnderTest()) {
  const env = { OVERLAPPED_ENGINE: engine };
  describe(`runtime failures on the ${engine} engine: one line, exit 1`, {
    skip,
    concurrency: 2,
  }, () => {
    let silent: PlainServer;
    before(async () => {
      // Accepts and never answers: an echo client must not wait for it forever.
      silent = await startPlainServer(() => {});
    });
    after(() => silent.close());

    it('echo --host "" never listens (the node engine took it as every interface)', async () => {
      const result = await runCli(['echo', '--host', '', '--port', '0'], '', 10_000, env);
      assertUserError(result, 2, 'echo --host ""');
      assert.equal(result.stdout, '', 'no listening line');
    });

    it('client and load to a port where nothing listens', async () => {
      const port = String(await unusedPort());
      for (const args of [
        ['client', '--port', port, 'hi'],
        ['load', '--port', port, '--duration', '1'],
      ]) {
        const line = assertUserError(await runCli(args, '', 10_000, env), 1, args.join(' '));
        assert.match(line, /ECONNREFUSED/);
      }
    });

    it('client to a server that never answers gives up after --timeout', async () => {
      const started = performance.now();
      const args = ['client', '--port', String(silent.port), '--timeout', '300', 'hi'];
      const line = assertUserError(await runCli(args, '', 10_000, env), 1, args.join(' '));
      assert.match(line, /no echo .* within 300 ms \(--timeout\)/);
      assert.ok(performance.now() - started < 5000, 'it gave up at the timeout');
      const relay = ['client', '--port', String(silent.port), '--timeout', '300'];
      const relayed = assertUserError(await runCli(relay, 'abc\n', 10_000, env), 1, 'relay');
      assert.match(relayed, /no echo .* within 300 ms/);
    });

    it('client relaying stdin to a server that closes: "the server closed the connection"', async () => {
      const closer = await startPlainServer((socket) => {
        socket.once('data', () => socket.destroy());
      });
      try {
        const port = String(closer.port);
        // More than the socket buffers hold, so the client is still sending when the server goes.
        const input = 'x'.repeat(8 * 1024 * 1024);
        const line = assertUserError(
          await runCli(['client', '--port', port], input, 20_000, env),
          1,
          'relay to a closing server',
        );
        assert.match(line, /the server closed the connection/);
        assert.doesNotMatch(line, /ENOTCONN|EPIPE|ECONNRESET/);
      } finally {
        await closer.close();
      }
    });

    it('pipe-client where no server listens, pipe-server in a missing directory', {
      skip: unixOnly,
    }, async () => {
      const tmp = tempPipeDir();
      try {
        const none = await runCli(
          ['pipe-client', '--name', tmp.path('none.sock'), 'x'],
          '',
          10_000,
          env,
        );
        assert.match(assertUserError(none, 1, 'pipe-client, no server'), /OVL_ERR_PIPE_NOT_FOUND/);
        const missing = tmp.path('no/such/dir/p.sock');
        const line = assertUserError(
          await runCli(['pipe-server', '--name', missing], '', 10_000, env),
          1,
          'pipe-server in a missing directory',
        );
        assert.ok(line.includes(missing), `the path asked for is named: ${line}`);
        assert.match(line, /does not exist/);
        assert.doesNotMatch(line, /\.ovl-/, 'the private bind name leaked');
      } finally {
        tmp.remove();
      }
    });

    it('pipe-client --mode byte against a busy byte-mode server: no EPIPE trace', {
      skip: unixOnly,
    }, async () => {
      const tmp = tempPipeDir();
      const path = tmp.path('busy.sock');
      const server = spawnCli(
        ['pipe-server', '--name', path, '--mode', 'byte', '--instances', '1', '--quiet'],
        env,
      );
      server.stdin.end();
      try {
        await new Promise<void>((resolve, reject) => {
          server.stdout.once('data', () => resolve());
          server.once('close', () => reject(new Error('pipe-server exited')));
        });
        const holder = spawnCli(['pipe-client', '--name', path, '--mode', 'byte'], env);
        holder.stdin.write('hold\n');
        await new Promise((resolve) => holder.stdout.once('data', resolve));
        try {
          for (let i = 0; i < 3; i++) {
            const result = await runCli(
              ['pipe-client', '--name', path, '--mode', 'byte', 'hi'],
              '',
              10_000,
              env,
            );
            const line = assertUserError(result, 1, 'byte client, busy server');
            assert.match(line, /closed the pipe without replying/);
            assert.match(line, /busy/);
          }
        } finally {
          holder.kill('SIGKILL');
        }
      } finally {
        server.kill('SIGKILL');
        tmp.remove();
      }
    });

    it('pipe-client --mode byte against a message-mode server says to use message mode', {
      skip: unixOnly,
    }, async () => {
      const tmp = tempPipeDir();
      const path = tmp.path('message.sock');
      const server = spawnCli(['pipe-server', '--name', path, '--quiet'], env);
      server.stdin.end();
      try {
        await new Promise<void>((resolve, reject) => {
          server.stdout.once('data', () => resolve());
          server.once('close', () => reject(new Error('pipe-server exited')));
        });
        const result = await runCli(
          ['pipe-client', '--name', path, '--mode', 'byte', 'hi'],
          '',
          10_000,
          env,
        );
        const line = assertUserError(result, 1, 'byte client, message server');
        assert.match(line, /message-mode server/);
        assert.match(line, /--mode message/);
        assert.equal(result.stdout, '', 'the frame header was not printed as a reply');
        // The other way round was already caught: a message-mode client and a byte-mode server.
        const small = await runCli(
          ['pipe-client', '--name', path, '--max-message', '4', 'hi'],
          '',
          10_000,
          env,
        );
        const tooLarge = assertUserError(small, 1, 'a reply over the client --max-message');
        assert.match(tooLarge, /26-byte reply/);
        assert.match(tooLarge, /pipe-client --max-message/);
      } finally {
        server.kill('SIGKILL');
        tmp.remove();
      }
    });
  });
}
