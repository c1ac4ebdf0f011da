/**
 * The start-up probe: where a seccomp profile refuses io_uring, the toolkit
 * falls back to the node engine with the reason, and forcing uring is a
 * clear OVL_ERR_ENGINE_UNAVAILABLE. The refusal is made real with a small
 * seccomp launcher (test/support/no-io-uring.c), built here when a C
 * compiler is present.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { enginesUnderTest } from '../support/engines.js';

const SOURCE = fileURLToPath(new URL('../../../test/support/no-io-uring.c', import.meta.url));
const SELECT = new URL('../../src/engines/select.js', import.meta.url).href;

const uring = enginesUnderTest().find((e) => e.name === 'uring');
const dir = mkdtempSync(join(tmpdir(), 'overlapped-probe-'));
const launcher = join(dir, 'no-io-uring');
const built =
  process.platform === 'linux' &&
  spawnSync(process.env.CC || 'cc', ['-o', launcher, SOURCE], { stdio: 'ignore' }).status === 0;

after(() => rmSync(dir, { recursive: true, force: true }));

function chooseUnderSeccomp(engine: string): { out: string; err: string } {
  const script = `import(${JSON.stringify(SELECT)}).then((m) => {
    try { const c = m.chooseEngine(); console.log(c.engine.name + ': ' + c.reason); }
    catch (e) { console.error(e.code + ': ' + e.message); }
  });`;
  const r = spawnSync(launcher, [process.execPath, '-e', script], {
    env: { ...process.env, OVERLAPPED_ENGINE: engine },
    encoding: 'utf8',
  });
  return { out: r.stdout.trim(), err: r.stderr.trim() };
}

describe('io_uring refused by seccomp', {
  skip: uring?.skip ?? (!built && 'no C compiler to build the seccomp launcher'),
}, () => {
  test('the default falls back to node, saying why', () => {
    assert.match(
      chooseUnderSeccomp('').out,
      /^node: uring unavailable: io_uring is not available \(EPERM: .*seccomp profile\)$/,
    );
  });

  test('forcing uring fails with OVL_ERR_ENGINE_UNAVAILABLE and the reason', () => {
    assert.match(
      chooseUnderSeccomp('uring').err,
      /^OVL_ERR_ENGINE_UNAVAILABLE: engine 'uring' was requested but cannot run here: io_uring is not available \(EPERM/,
    );
  });
});
