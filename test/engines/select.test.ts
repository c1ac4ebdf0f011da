/**
 * Engine choice (DESIGN.md): uring by default where its addon loads and its
 * probe ring works, else node with the reason; forcing uring where it cannot
 * run is OVL_ERR_ENGINE_UNAVAILABLE with that reason.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { chooseEngine } from '../../src/engines/select.js';
import { enginesUnderTest } from '../support/engines.js';

const SELECT = new URL('../../src/engines/select.js', import.meta.url).href;

/** Runs chooseEngine() in a fresh process (the probe runs once per thread). */
function chooseIn(env: Record<string, string>): { out: string; err: string } {
  const script = `import(${JSON.stringify(SELECT)}).then((m) => {
    try { const c = m.chooseEngine(); console.log(c.engine.name + ': ' + c.reason); }
    catch (e) { console.error(e.code + ': ' + e.message); }
  });`;
  const r = spawnSync(process.execPath, ['-e', script], {
    env: { ...process.env, OVERLAPPED_ENGINE: '', ...env },
    encoding: 'utf8',
  });
  return { out: r.stdout.trim(), err: r.stderr.trim() };
}

describe('engine choice', () => {
  test('without the addon: node by default, with the reason', () => {
    const { out } = chooseIn({ OVERLAPPED_NATIVE_ADDON: '/nonexistent/overlapped_uring.node' });
    assert.match(out, /^node: uring unavailable: native addon not built: /);
  });

  test('forcing uring without the addon fails with OVL_ERR_ENGINE_UNAVAILABLE and the reason', () => {
    const { err } = chooseIn({
      OVERLAPPED_ENGINE: 'uring',
      OVERLAPPED_NATIVE_ADDON: '/nonexistent/overlapped_uring.node',
    });
    assert.match(
      err,
      /^OVL_ERR_ENGINE_UNAVAILABLE: engine 'uring' was requested but cannot run here: native addon not built/,
    );
  });

  const uring = enginesUnderTest().find((e) => e.name === 'uring');
  test('where uring runs, it is the default', { skip: uring?.skip ?? false }, () => {
    const choice = chooseEngine('');
    assert.equal(choice.engine.name, 'uring');
    assert.equal(choice.reason, 'io_uring is available');
    assert.equal(chooseIn({}).out, 'uring: io_uring is available');
  });
});
