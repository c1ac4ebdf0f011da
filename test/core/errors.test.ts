import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  ERROR_CODES,
  OsError,
  OverlappedError,
  toOsError,
  UsageError,
} from '../../src/core/errors.js';

test('docs/errors.md lists every toolkit error code', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  for (const code of Object.keys(ERROR_CODES)) {
    assert.ok(doc.includes(`\`${code}\``), `docs/errors.md does not list ${code}`);
  }
});

test('toolkit errors carry a stable code, a message and their Win32 counterpart', () => {
  const err = new UsageError('OVL_ERR_OVERLAPPED_IN_USE');
  assert.ok(err instanceof OverlappedError);
  assert.equal(err.code, 'OVL_ERR_OVERLAPPED_IN_USE');
  assert.match(err.message, /still pending/);
  assert.deepEqual(err.win32, { name: 'ERROR_INVALID_PARAMETER', code: 87 });
});

test('OS errors from Node keep code, errno and syscall, and gain the Winsock name', () => {
  const nodeError = Object.assign(new Error('read ECONNRESET'), {
    code: 'ECONNRESET',
    errno: -104,
    syscall: 'read',
  });
  const err = toOsError(nodeError);
  assert.ok(err instanceof OsError);
  assert.equal(err.code, 'ECONNRESET');
  assert.equal(err.errno, -104);
  assert.equal(err.syscall, 'read');
  assert.equal(err.win32?.name, 'WSAECONNRESET');
  assert.equal(err.cause, nodeError);
  assert.equal(toOsError(err), err, 'converting twice changes nothing');
});
