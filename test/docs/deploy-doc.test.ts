/**
 * docs/deploy.md's configuration blocks are real: HAProxy accepts its
 * haproxy.cfg (`haproxy -c`), promtool its scrape configuration and its
 * alerting rules. Each check skips, saying why, where the tool is missing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { missing, tempDir } from '../support/daemon.js';

const doc = readFileSync(new URL('../../../docs/deploy.md', import.meta.url), 'utf8');

/** The fenced blocks of `language` in the page, in order. */
function blocks(language: string): string[] {
  return [...doc.matchAll(new RegExp(`^\`\`\`${language}\\n([\\s\\S]*?)^\`\`\`$`, 'gm'))].map(
    (m) => m[1] as string,
  );
}

function check(command: string, args: (file: string) => string[], text: string, name: string) {
  const dir = tempDir('ovl-deploy-doc-');
  try {
    const file = join(dir.path, name);
    writeFileSync(file, text);
    const run = spawnSync(command, args(file), { encoding: 'utf8', timeout: 20_000 });
    assert.equal(
      run.status,
      0,
      `${command} refused docs/deploy.md's ${name}:\n${run.stdout}${run.stderr}`,
    );
  } finally {
    dir.remove();
  }
}

test('the haproxy.cfg of docs/deploy.md passes haproxy -c', (t) => {
  const why = missing('haproxy', '-v', 'apt-get install -y haproxy');
  if (why !== undefined) {
    t.skip(why);
    return;
  }
  const [cfg] = blocks('haproxy');
  assert.ok(cfg?.includes('send-proxy-v2'), 'no haproxy block with send-proxy-v2');
  check('haproxy', (f) => ['-c', '-q', '-f', f], cfg as string, 'haproxy.cfg');
});

test('the scrape configuration and the alerting rules of docs/deploy.md pass promtool', (t) => {
  const why = missing('promtool', '--version', 'apt-get install -y prometheus');
  if (why !== undefined) {
    t.skip(why);
    return;
  }
  const yaml = blocks('yaml');
  const scrape = yaml.find((b) => b.includes('scrape_configs:'));
  const rules = yaml.find((b) => b.includes('groups:'));
  assert.ok(scrape !== undefined && rules !== undefined, 'a scrape config and a rules block');
  check('promtool', (f) => ['check', 'config', f], scrape, 'prometheus.yml');
  check('promtool', (f) => ['check', 'rules', f], rules, 'rules.yml');
});
