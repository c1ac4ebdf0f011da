/**
 * The C io_uring echo peer (bench/peers/uring-echo.c, `c-uring` in the echo
 * benchmark), built with cc like the benchmark builds it: it must echo byte for
 * byte, messages larger than its buffer included, on many connections at once,
 * keep serving after a client goes, and refuse bad flags in one line.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { buildCPeer } from '../../bench/c-build.js';

const built = process.platform === 'linux' ? buildCPeer('uring-echo', ['-luring']) : undefined;
const skip =
  built === undefined
    ? `io_uring is Linux only (this is ${process.platform})`
    : 'skip' in built
      ? `cannot build bench/peers/uring-echo.c: ${built.skip}`
      : false;
if (skip !== false) console.log(`# uring-echo peer: skipped: ${skip}`);

/** Sends `data` on a new connection and resolves with everything echoed back, once it all came. */
function echoOf(port: number, data: Buffer, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const client = net.connect(port, '127.0.0.1', () => client.write(data));
    const timer = setTimeout(() => {
      client.destroy();
      reject(new Error(`only ${got} of ${data.length} bytes echoed within ${timeoutMs} ms`));
    }, timeoutMs);
    client.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= data.length) {
        clearTimeout(timer);
        client.end();
        resolve(Buffer.concat(chunks));
      }
    });
    client.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

describe('the C io_uring echo peer', { skip }, () => {
  let server: ChildProcess | undefined;
  let port = 0;

  before(async () => {
    if (built === undefined || 'skip' in built) return;
    const child = spawn(built.binary, ['--host', '127.0.0.1', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server = child;
    port = await new Promise<number>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stderr?.setEncoding('utf8').on('data', (text: string) => {
        err += text;
      });
      child.stdout?.setEncoding('utf8').on('data', (text: string) => {
        out += text;
        const m = /^listening (\d+)$/m.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`uring-echo exited (${code}): ${err}`)));
    });
  });

  after(() => {
    server?.kill('SIGKILL');
  });

  test('echoes byte-exact on 16 connections at once, messages four times its 64 KiB buffer', async () => {
    const inputs = Array.from({ length: 16 }, () => randomBytes(256 * 1024));
    const echoes = await Promise.all(inputs.map((data) => echoOf(port, data)));
    for (const [i, echoed] of echoes.entries()) {
      assert.equal(echoed.length, inputs[i]?.length);
      assert.ok(echoed.equals(inputs[i] as Buffer), `connection ${i}: the echo differs`);
    }
  });

  test('keeps serving after a client resets its connection mid-echo', async () => {
    const gone = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => gone.once('connect', () => resolve()));
    gone.write(randomBytes(512 * 1024));
    gone.resetAndDestroy();
    const data = randomBytes(1000);
    assert.ok((await echoOf(port, data)).equals(data));
    assert.equal(server?.exitCode, null, 'the server is still running');
  });

  test('refuses a bad flag in one line, exit 2', () => {
    if (built === undefined || 'skip' in built) return;
    const r = spawnSync(built.binary, ['--port', 'x'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.equal(r.stderr, 'uring-echo: --port must be a whole number from 0 to 65535\n');
  });
});
