/**
 * The page as a browser draws it: the fixture's index.html opened in headless
 * Chromium (Debian's `chromium`, installed by .ci/run), a screenshot taken and
 * decoded, and checked to hold a drawn page (text and grey axes) and the charts'
 * coloured lines. Skipped, with the reason printed, where Chromium is not
 * installed or cannot start.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import { buildPage } from '../../src/report/page.js';
import { fixtureResults } from './results-fixture.js';

const BROWSERS = ['chromium', 'chromium-browser', 'google-chrome'];

function findBrowser(): string | undefined {
  return BROWSERS.find(
    (name) => spawnSync(name, ['--version'], { stdio: 'ignore', timeout: 20_000 }).status === 0,
  );
}

const browser = findBrowser();

test('headless Chromium draws the page: a non-blank screenshot with coloured chart lines', {
  timeout: 90_000,
  skip:
    browser === undefined &&
    `no Chromium here (tried ${BROWSERS.join(', ')}): apt-get install chromium`,
}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovl-report-shot-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const page = join(dir, 'index.html');
  const shot = join(dir, 'shot.png');
  writeFileSync(page, await buildPage(fixtureResults()));
  const run = spawnSync(
    browser as string,
    [
      '--headless',
      // Root in a container has no user namespace for Chromium's sandbox.
      '--no-sandbox',
      '--disable-gpu',
        // Containers often mount a small /dev/shm; Chromium then fails to draw.
        '--disable-dev-shm-usage',
      '--hide-scrollbars',
      `--user-data-dir=${join(dir, 'profile')}`,
      '--window-size=1280,1600',
      `--screenshot=${shot}`,
      pathToFileURL(page).href,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  if (!existsSync(shot)) {
    const why = (run.stderr ?? '').trim().split('\n').pop() ?? run.error?.message ?? '';
    t.skip(`${browser} could not start (exit ${run.status ?? run.signal}): ${why}`);
    return;
  }
  const png = PNG.sync.read(readFileSync(shot));
  assert.equal(png.width, 1280);
  let drawn = 0;
  let coloured = 0;
  for (let i = 0; i < png.data.length; i += 4) {
    const r = png.data[i] as number;
    const g = png.data[i + 1] as number;
    const b = png.data[i + 2] as number;
    if (r < 235 || g < 235 || b < 235) drawn++;
    if (Math.max(r, g, b) - Math.min(r, g, b) > 80) coloured++;
  }
  const pixels = png.width * png.height;
  assert.ok(drawn / pixels > 0.03, `only ${((drawn / pixels) * 100).toFixed(2)}% of pixels drawn`);
  // Model lines, points and legend swatches: blank or colourless SVG would have none.
  assert.ok(coloured > 500, `only ${coloured} coloured pixels`);
});
