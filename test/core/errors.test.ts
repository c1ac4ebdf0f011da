import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { test } from 'node:test';
import {
  connectionClosedError,
  ERROR_CODES,
  errnoOf,
  OsError,
  OverlappedError,
  osErrorFromErrno,
  resetToCancelError,
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

test('an errno from a native engine becomes the OsError Node would make', () => {
  const reset = osErrorFromErrno(-constants.errno.ECONNRESET, 'read');
  assert.ok(reset instanceof OsError);
  assert.deepEqual(
    [reset.code, reset.errno, reset.syscall],
    ['ECONNRESET', -constants.errno.ECONNRESET, 'read'],
  );
  assert.equal(reset.message, 'read ECONNRESET');
  assert.equal(reset.win32?.name, 'WSAECONNRESET');
  const refused = osErrorFromErrno(-constants.errno.ECONNREFUSED, 'connect', {
    address: '127.0.0.1',
    port: 9,
  });
  assert.equal(refused.message, 'connect ECONNREFUSED 127.0.0.1:9');
  assert.deepEqual([refused.address, refused.port], ['127.0.0.1', 9]);
  assert.equal(errnoOf('EPIPE'), -constants.errno.EPIPE);
  assert.equal(errnoOf('ENOTANERRNO'), 0);
});

test('the errors both engines complete with when a connection goes: stable code, errno and message', () => {
  const closed = connectionClosedError();
  assert.deepEqual(
    [closed.code, closed.errno, closed.syscall, closed.message, closed.win32?.name],
    [
      'EPIPE',
      -constants.errno.EPIPE,
      'write',
      'the connection closed before the send completed',
      'WSAESHUTDOWN',
    ],
  );
  const reset = resetToCancelError();
  assert.deepEqual(
    [reset.code, reset.errno, reset.syscall, reset.message, reset.win32?.name],
    [
      'ECONNABORTED',
      -constants.errno.ECONNABORTED,
      'cancel',
      'the connection was reset to cancel an operation the OS had not finished',
      'WSAECONNABORTED',
    ],
  );
  assert.notEqual(
    connectionClosedError(),
    closed,
    'a new error each time (with the caller as its stack)',
  );
});
