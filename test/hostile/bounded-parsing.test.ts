/**
 * Memory follows bytes received, not what a frame header claims: a pipe
 * server run with `--max-message 2147483647` in a child process whose
 * address space is capped (`ulimit -v`), on each engine. Twenty clients send
 * headers claiming 2^31 - 1 bytes and a byte of payload; the server must stay
 * up, keep its address space far below what the headers claim, and answer a
 * well-behaved client meanwhile. Then one client sends a real 1 MiB message
 * in pieces, which still round-trips.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, test } from 'node:test';
import { PipeClient } from '../../src/servers/pipe/pipe-client.js';
import { MAIN } from '../support/cli-runner.js';
import { delay, waitFor } from '../support/echo-fixture.js';
import { enginesUnderTest } from '../support/engines.js';
import { engine as defaultEngine, tempPipeDir, unixOnly, within } from '../support/pipe-fixture.js';

/** 3 GB of address space: Node itself needs about 1 GB; one 2 GiB reservation would not fit beside it. */
const ADDRESS_SPACE_KB = 3_000_000;

function vmSizeKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmSize:\s+(\d+) kB/.exec(status);
  return m === null ? 0 : Number(m[1]);
}

function startServer(engineName: string, path: string): { child: ChildProcess; log: () => string } {
  const child = spawn(
    'sh',
    [
      '-c',
      `ulimit -v ${ADDRESS_SPACE_KB}; exec "$0" "$@"`,
      process.execPath,
      MAIN,
      'pipe-server',
      '--name',
      path,
      '--max-message',
      '2147483647',
      '--quiet',
    ],
    { env: { ...process.env, OVERLAPPED_ENGINE: engineName }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  return { child, log: () => out };
}

describe('bounded parsing: a header claiming 2^31 - 1 bytes', { skip: unixOnly }, () => {
  for (const e of enginesUnderTest()) {
    test(`${e.name}: the server under ulimit -v stays up, bounded, and serves others`, {
      skip: e.skip ?? (process.platform !== 'linux' ? 'reads /proc' : false),
    }, async () => {
      const tmp = tempPipeDir();
      const path = tmp.path();
      const { child, log } = startServer(e.name, path);
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      const hostile: net.Socket[] = [];
      try {
        await waitFor(
          () => log().includes('pipe server listening'),
          'the server to listen',
          10_000,
        );
        const before = vmSizeKb(child.pid as number);
        for (let i = 0; i < 20; i++) {
          const s = net.connect(path);
          s.on('error', () => {});
          s.write(Buffer.from([0x7f, 0xff, 0xff, 0xff, 0x41]));
          hostile.push(s);
        }
        await delay(1000);
        const during = vmSizeKb(child.pid as number);
        assert.equal(child.exitCode, null, `the server died: ${log()}`);
        // 20 claims of 2 GiB would be 40 GiB; what arrived is 100 bytes.
        assert.ok(
          during - before < 200_000,
          `address space grew by ${during - before} kB for 100 received bytes`,
        );
        const client = await PipeClient.connect(path, { engine: defaultEngine() });
        try {
          assert.equal((await client.transact('hello')).toString(), 'Default answer from server');
          // A real large message still arrives (its storage grows as it comes).
          const big = Buffer.alloc(1024 * 1024, 7);
          assert.equal(
            (await within(client.transact(big), 10_000, 'a 1 MiB request')).toString(),
            'Default answer from server',
          );
        } finally {
          client.close();
        }
        assert.equal(child.exitCode, null, `the server died: ${log()}`);
        assert.doesNotMatch(log(), /RangeError|Uncaught|allocation failed/);
      } finally {
        for (const s of hostile) s.destroy();
        child.kill('SIGTERM');
        const code = await within(exited, 10_000, 'the server to exit');
        tmp.remove();
        assert.equal(code, 0, log());
      }
    });
  }
});
