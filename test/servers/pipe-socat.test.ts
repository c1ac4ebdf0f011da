/**
 * The pipe server against a client this project did not write: socat,
 * which copies its stdin to the Unix socket, half-closes at end of input, and
 * copies what comes back to its stdout until the server closes.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { PipeServer, type PipeServerOptions } from '../../src/servers/pipe/pipe-server.js';
import { engine, frame, tempPipeDir, unixOnly } from '../support/pipe-fixture.js';

const socat = spawnSync('socat', ['-V'], { encoding: 'utf8' });
const socatMissing =
  socat.error !== undefined || socat.status !== 0
    ? 'socat is not installed: apt-get install -y socat'
    : false;

/** Runs socat with `input` on stdin against `path`; resolves with its stdout. */
function runSocat(path: string, input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('socat', ['-t', '2', '-', `UNIX-CONNECT:${path}`]);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('socat did not exit within 10 s'));
    }, 10_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`socat exited ${code}: ${Buffer.concat(err).toString()}`));
      else resolve(Buffer.concat(out));
    });
    child.stdin.end(input);
  });
}

async function withServer(
  options: Omit<PipeServerOptions, 'engine'>,
  body: (path: string) => Promise<void>,
) {
  const tmp = tempPipeDir();
  const server = await PipeServer.start({ engine: engine(), name: tmp.path(), ...options });
  try {
    await body(server.path);
  } finally {
    await server.stop({ deadlineMs: 1000 });
    tmp.remove();
  }
}

describe('pipe server with socat', { skip: unixOnly || socatMissing }, () => {
  test('byte mode: socat sends a request and gets the reply', async () => {
    await withServer({ mode: 'byte' }, async (path) => {
      const out = await runSocat(path, Buffer.from('hello from socat'));
      assert.equal(out.toString(), 'Default answer from server');
    });
  });

  test('message mode: READY, then the framed reply to a framed request (docs/pipes.md)', async () => {
    await withServer({ handler: (r) => `got ${r.length} bytes: ${r.toString()}` }, async (path) => {
      const out = await runSocat(path, frame(Buffer.from('hello from socat')));
      const ready = Buffer.from([0x80, 0x00, 0x00, 0x05, ...Buffer.from('READY')]);
      const expected = Buffer.concat([ready, frame(Buffer.from('got 16 bytes: hello from socat'))]);
      assert.deepEqual(out, expected);
    });
  });

  test('message mode: two coalesced requests get two replies, in order', async () => {
    await withServer({ handler: (r) => r.toString().toUpperCase() }, async (path) => {
      const out = await runSocat(
        path,
        Buffer.concat([
          frame(Buffer.from('one')),
          frame(Buffer.alloc(0)),
          frame(Buffer.from('two')),
        ]),
      );
      assert.deepEqual(
        out.subarray(9),
        Buffer.concat([
          frame(Buffer.from('ONE')),
          frame(Buffer.alloc(0)),
          frame(Buffer.from('TWO')),
        ]),
      );
    });
  });
});
