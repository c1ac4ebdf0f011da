/**
 * Pipe names and socket files: where a bare name lives, what is refused,
 * stale vs live socket files, permissions, and cleaning up after ourselves.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { PipeListener } from '../../src/core/pipe-listener.js';
import { MAX_SOCKET_PATH_BYTES, resolvePipeName } from '../../src/core/pipe-name.js';
import { engine, tempPipeDir, unixOnly } from '../support/pipe-fixture.js';

describe('resolvePipeName', () => {
  test('a bare name maps to \\\\.\\pipe\\<name> on Windows; a path is kept as is', () => {
    assert.equal(resolvePipeName('mynamedpipe', { platform: 'win32' }), '\\\\.\\pipe\\mynamedpipe');
    assert.equal(resolvePipeName('\\\\.\\pipe\\x', { platform: 'win32' }), '\\\\.\\pipe\\x');
    assert.equal(resolvePipeName('/run/x.sock', { platform: 'linux' }), '/run/x.sock');
    assert.equal(resolvePipeName('./rel.sock', { platform: 'linux' }), './rel.sock');
  });

  test('a bare name lives in $XDG_RUNTIME_DIR/overlapped/, made owner-only', {
    skip: unixOnly,
  }, () => {
    const tmp = tempPipeDir();
    try {
      chmodSync(tmp.dir, 0o700);
      const path = resolvePipeName('mynamedpipe', { env: { XDG_RUNTIME_DIR: tmp.dir } });
      assert.equal(path, join(tmp.dir, 'overlapped', 'mynamedpipe'));
      assert.equal(statSync(join(tmp.dir, 'overlapped')).mode & 0o777, 0o700);
    } finally {
      tmp.remove();
    }
  });

  test('without XDG_RUNTIME_DIR it lives in <tmp>/overlapped-<uid>/', { skip: unixOnly }, () => {
    const path = resolvePipeName('mynamedpipe', { env: {} });
    assert.match(path, new RegExp(`overlapped-${process.getuid?.()}/mynamedpipe$`));
  });

  test('refuses a shared pipe directory, NUL, empty and over-long names', {
    skip: unixOnly,
  }, () => {
    const tmp = tempPipeDir();
    try {
      const shared = join(tmp.dir, 'overlapped');
      mkdirSync(shared);
      chmodSync(shared, 0o777);
      assert.throws(() => resolvePipeName('x', { env: { XDG_RUNTIME_DIR: tmp.dir } }), {
        code: 'OVL_ERR_INVALID_ARGUMENT',
        message: /writable by others/,
      });
    } finally {
      tmp.remove();
    }
    assert.throws(() => resolvePipeName('a\0b'), /NUL/);
    assert.throws(() => resolvePipeName(''), { code: 'OVL_ERR_INVALID_ARGUMENT' });
    assert.throws(() => resolvePipeName(`/tmp/${'x'.repeat(MAX_SOCKET_PATH_BYTES)}`), {
      code: 'OVL_ERR_INVALID_ARGUMENT',
      message: /Unix socket address/,
    });
    assert.throws(() => resolvePipeName('a\\b', { platform: 'linux' }), /not a valid pipe name/);
  });
});

describe('pipe listener socket files', { skip: unixOnly }, () => {
  test('owner-only by default, fileMode otherwise; close removes the file', async () => {
    const tmp = tempPipeDir();
    try {
      const a = await PipeListener.listen({ engine: engine(), path: tmp.path('a.sock') });
      assert.equal(statSync(a.path).mode & 0o777, 0o600);
      const b = await PipeListener.listen({
        engine: engine(),
        path: tmp.path('b.sock'),
        fileMode: 0o660,
      });
      assert.equal(statSync(b.path).mode & 0o777, 0o660);
      a.close();
      b.close();
      assert.equal(existsSync(a.path), false, 'no socket file left behind');
      assert.equal(existsSync(b.path), false);
    } finally {
      tmp.remove();
    }
  });

  test('a live server on the path is an error, never stolen', async () => {
    const tmp = tempPipeDir();
    const path = tmp.path();
    const other = net.createServer();
    await new Promise<void>((resolve) => other.listen(path, resolve));
    try {
      await assert.rejects(PipeListener.listen({ engine: engine(), path }), {
        code: 'OVL_ERR_PIPE_NAME_IN_USE',
        message: /live server/,
      });
      // The other server still answers.
      await new Promise<void>((resolve, reject) => {
        const probe = net.connect(path, () => {
          probe.destroy();
          resolve();
        });
        probe.on('error', reject);
      });
    } finally {
      other.close();
      tmp.remove();
    }
  });

  test('a stale socket file of a dead server is replaced', async () => {
    const tmp = tempPipeDir();
    const path = tmp.path();
    try {
      // A process that binds the socket and dies without cleaning up.
      const child = spawn(process.execPath, [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
      ]);
      await new Promise((resolve) => child.once('exit', resolve));
      assert.ok(statSync(path).isSocket(), 'the dead server left its socket file');
      const listener = await PipeListener.listen({ engine: engine(), path });
      listener.close();
      assert.equal(existsSync(path), false);
    } finally {
      tmp.remove();
    }
  });

  test('a path that is not a socket is refused and left alone', async () => {
    const tmp = tempPipeDir();
    const path = tmp.path('file.txt');
    try {
      writeFileSync(path, 'precious');
      await assert.rejects(PipeListener.listen({ engine: engine(), path }), {
        code: 'OVL_ERR_PIPE_NAME_IN_USE',
        message: /not a socket/,
      });
      assert.ok(statSync(path).isFile());
    } finally {
      tmp.remove();
    }
  });

  test('close does not remove a socket file that is no longer ours', async () => {
    const tmp = tempPipeDir();
    const path = tmp.path();
    try {
      const listener = await PipeListener.listen({ engine: engine(), path });
      unlinkSync(path);
      const other = net.createServer();
      await new Promise<void>((resolve) => other.listen(path, resolve));
      try {
        listener.close();
        assert.ok(existsSync(path), "the other server's socket file is still there");
      } finally {
        other.close();
      }
    } finally {
      tmp.remove();
    }
  });
  test('where the private name would not fit, it binds in place: same rules', async () => {
    const tmp = tempPipeDir();
    try {
      // A directory so long that <dir>/.ovl-<12 hex> passes the socket address limit, <dir>/p not.
      const dir = join(tmp.dir, 'd'.repeat(100 - tmp.dir.length - 1));
      mkdirSync(dir);
      const path = join(dir, 'p');
      const listener = await PipeListener.listen({ engine: engine(), path });
      assert.equal(statSync(path).mode & 0o777, 0o600);
      await assert.rejects(PipeListener.listen({ engine: engine(), path }), {
        code: 'OVL_ERR_PIPE_NAME_IN_USE',
      });
      listener.close();
      assert.equal(existsSync(path), false);
    } finally {
      tmp.remove();
    }
  });
});
