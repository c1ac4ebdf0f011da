/**
 * The page builder from a fixture results document: every chart is drawn as
 * inline SVG with labelled axes and a legend, the cells that did not run are
 * drawn and listed as missing with their reason, and the page needs nothing
 * from the network.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CHARTS, chartRows } from '../../src/report/charts.js';
import { buildPage } from '../../src/report/page.js';
import { readResults } from '../../src/report/results.js';
import { fixtureResults } from './results-fixture.js';

/** The markup of one chart's section. */
function section(html: string, id: string): string {
  const start = html.indexOf(`<section id="${id}">`);
  assert.ok(start >= 0, `no section for chart ${id}`);
  return html.slice(start, html.indexOf('</section>', start));
}

test('every chart is an inline SVG with both axes titled, a legend and a reading', async () => {
  const html = await buildPage(fixtureResults());
  assert.equal(CHARTS.length, 6);
  for (const chart of CHARTS) {
    const part = section(html, chart.id);
    assert.match(part, /<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/, chart.id);
    assert.ok(part.includes(`>${chart.x.title}</text>`), `${chart.id}: x axis title`);
    assert.ok(
      part.includes(`>${chart.y.title.replace('&', '&amp;')}</text>`),
      `${chart.id}: y axis title`,
    );
    assert.ok(part.includes('aria-roledescription="legend"'), `${chart.id}: legend`);
    assert.match(part, /<figcaption>[^<]{200,}<\/figcaption>/, `${chart.id}: reading`);
  }
  // Both engines get a panel; the peer is drawn in each.
  const cpu = section(html, 'cpu-vs-conns');
  assert.ok(cpu.includes('>uring engine</text>') && cpu.includes('>node engine</text>'));
  assert.ok(cpu.includes('peer: C epoll'));
  // Nothing is fetched when the page is viewed.
  assert.doesNotMatch(html, /<script|<link |src="http|href="http/);
});

test('cells that did not run are drawn as missing and listed with their reason', async () => {
  const doc = fixtureResults();
  const html = await buildPage(doc);
  const cap = 'a thread per client, and --max-threads is 64';
  // A cross on the chart's floor, labelled with what is missing and why.
  const cpu = section(html, 'cpu-vs-conns');
  assert.ok(
    cpu.includes(`aria-label="blocking at 1000: not run (${cap})"`),
    'missing cross in chart',
  );
  const rows = chartRows(CHARTS[0] as (typeof CHARTS)[number], doc);
  const missing = rows.filter((r) => r.missing);
  assert.deepEqual(missing.map((r) => `${r.panel} ${r.series} ${r.x}`).sort(), [
    'node engine blocking 1000',
    'uring engine blocking 1000',
  ]);
  const floor = Math.min(...rows.filter((r) => !r.missing).map((r) => r.y));
  for (const row of missing)
    assert.ok(row.y < floor, 'a missing cell sits below every measured one');
  // The failed run and the absent peer, in the tables.
  assert.ok(html.includes('failed: load generator failed (1): connect ECONNREFUSED'));
  assert.ok(html.includes(`missing: ${cap}`));
  assert.ok(html.includes('not run: bench/peers/uring-echo.c is not in this checkout'));
  assert.match(
    section(html, 'cpu-vs-size'),
    /nonblocking at 65536: not run \(load generator failed/,
  );
});

test('the page says what was measured, not what was expected', async () => {
  const html = await buildPage(fixtureResults());
  // select's growth in the fixture: 6.05 → 24.1 µs on uring.
  assert.match(
    section(html, 'cpu-vs-conns'),
    /On uring: select 6\.05 → 24\.1 µs from 10 to 1,000 connections \(4\.0x\)/,
  );
  assert.match(section(html, 'idle-cpu'), /uring nonblocking \(sweep 1 ms\) 40\.0%/);
  // Each model of the run has its card with the seeds' advice and its measured line.
  for (const model of ['completion-port', 'select', 'blocking', 'nonblocking']) {
    assert.ok(html.includes(`<code>${model}</code></h3>`), `card for ${model}`);
  }
  assert.ok(html.includes('Where it breaks:'));
});

test('results.json is read back and checked before a page is built from it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovl-report-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'results.json');
  writeFileSync(file, JSON.stringify(fixtureResults()));
  const doc = readResults(file);
  assert.equal(doc.runs.length, fixtureResults().runs.length);
  const broken = fixtureResults();
  const first = broken.runs.find((r) => r.status === 'missing');
  assert.ok(first !== undefined);
  delete first.reason;
  writeFileSync(file, JSON.stringify(broken));
  assert.throws(() => readResults(file), /is missing without a reason/);
  writeFileSync(file, JSON.stringify({ format: 'something else' }));
  assert.throws(() => readResults(file), /not an overlapped report/);
});
