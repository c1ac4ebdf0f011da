/**
 * The echo server against a client this project did not write: socat, which
 * copies its stdin to the connection, half-closes at end of input, and copies
 * the connection to its stdout until the server closes.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { it } from 'node:test';
import {
  assertSameBytes,
  runSeed,
  SeededRandom,
  startEcho,
  waitForConnections,
} from '../support/echo-fixture.js';

const socat = spawnSync('socat', ['-V'], { encoding: 'utf8' });
const socatMissing =
  socat.error !== undefined || socat.status !== 0
    ? 'socat is not installed: apt-get install -y socat'
    : undefined;

it('echoes 200 KiB from socat byte-exact, then closes after socat half-closes', async (t) => {
  if (socatMissing !== undefined) {
    t.skip(socatMissing);
    return;
  }
  const rng = new SeededRandom(runSeed());
  const data = rng.bytes(200 * 1024);
  const server = await startEcho();
  try {
    const child = spawn('socat', ['-t', '2', '-', `TCP:127.0.0.1:${server.address.port}`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    const exited = new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error('socat did not exit within 10 s'));
      }, 10_000);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    child.stdin.end(data);
    const code = await exited;
    assert.equal(code, 0, `socat exited with ${code}: ${Buffer.concat(err).toString()}`);
    assertSameBytes(Buffer.concat(out), data, `socat round trip, seed ${rng.seed}`);
    await waitForConnections(server, 0);
  } finally {
    await server.stop({ deadlineMs: 1000 });
  }
});
