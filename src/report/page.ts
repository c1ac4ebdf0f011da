/**
 * Builds the report's `index.html` from a results document: one self-contained
 * page (inline SVG charts and CSS, no script, nothing fetched at view time).
 */
import { CHARTS, chartRows, chartSpec, MODEL_COLOURS, renderSvg } from './charts.js';
import { MODEL_NOTES } from './model-notes.js';
import { reading } from './readings.js';
import type { ReportRun, ResultsDocument } from './results.js';

const html = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const integer = (n: number | undefined) =>
  n === undefined ? '–' : Math.round(n).toLocaleString('en-US');
const fixed = (n: number | undefined, digits = 2) => (n === undefined ? '–' : n.toFixed(digits));
const kib = (bytes: number | undefined) =>
  bytes === undefined ? '–' : `${(bytes / 1024).toFixed(1)}`;
const size = (bytes: number) =>
  bytes >= 1024 && bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} B`;

const STYLE = `
body { font: 15px/1.5 Helvetica, Arial, sans-serif; color: #222; margin: 0; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 0 0 4px; }
.meta { color: #555; margin: 0 0 16px; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { max-width: 900px; color: #333; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child, td.l, th.l { text-align: left; }
th { background: #f4f4f4; }
.models { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
.model { border: 1px solid #ddd; border-left: 6px solid var(--c); border-radius: 4px; padding: 10px 12px; }
.model p { margin: 4px 0; font-size: 14px; }
.missing { color: #a33; }
.note { background: #f7f7f2; border: 1px solid #e6e6d8; padding: 8px 12px; border-radius: 4px; max-width: 900px; }
`;

function header(doc: ResultsDocument): string {
  const m = doc.machine;
  const o = doc.options;
  const mode = o.quick
    ? '<strong>--quick</strong> (reduced grid, short windows: read the shape, not the last digit)'
    : 'full grid';
  return `<h1>Eight Winsock I/O models under the same load</h1>
<p class="meta">overlapped report, ${mode}; ${html(doc.date)}; ${html(m.cpu)} × ${m.cpus}, ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB, ${html(m.os)} ${html(m.kernel)}, Node ${html(m.node)}.
Each cell: ${o.durationSec} s measured after ${o.warmupSec} s warm-up; ${doc.pinned ? 'server pinned to CPU 0, load generator to CPU 1' : 'server and load generator unpinned'}; load generator ${doc.loader === 'c' ? 'C epoll (bench/peers/load-gen.c)' : 'node:net'}, closed loop: each connection sends its next message only when the previous one came back byte-exact. The blocking model ran with --max-threads ${o.maxThreads}. Whole run ${Math.round(doc.elapsedSec)} s.</p>
<p class="note">How to read: every chart has one panel per engine (<code>uring</code>: the native io_uring engine; <code>node</code>: the portable node:net engine); the peers (plain servers written without overlapped, for reference) appear dashed in grey in every panel. Lower is better everywhere. A cross on a chart’s floor marks a cell that did not run here, and the table at the end says why. Compare shapes and ratios within this page; absolute numbers move between machines and runs.</p>`;
}

function serversSection(doc: ResultsDocument): string {
  const rows = doc.servers.map(
    (s) =>
      `<tr><td>${html(s.id)}</td><td class="l">${html(s.kind === 'peer' ? `peer: ${s.label}` : s.label)}</td><td class="l">${html(s.engine ?? '–')}</td><td class="l ${s.available ? '' : 'missing'}">${s.available ? 'ran' : `not run: ${html(s.reason ?? '')}`}</td></tr>`,
  );
  return `<h2>Servers</h2><table><tr><th>id</th><th class="l">model / peer</th><th class="l">engine</th><th class="l">status</th></tr>${rows.join('')}</table>`;
}

async function chartsSection(doc: ResultsDocument): Promise<string> {
  const parts: string[] = [];
  for (const chart of CHARTS) {
    const rows = chartRows(chart, doc);
    const body =
      rows.length === 0
        ? `<p class="missing">No cell of this chart was in the run (its models or engines were not chosen).</p>`
        : await renderSvg(chartSpec(chart, rows));
    parts.push(
      `<section id="${chart.id}"><h2>${html(chart.title)}</h2><figure>${body}<figcaption>${html(reading(chart.id, doc))}</figcaption></figure></section>`,
    );
  }
  return parts.join('\n');
}

/** A model's CPU per message at the fewest and most connections it ran at, per engine. */
function measuredLine(doc: ResultsDocument, model: string): string {
  const lines: string[] = [];
  for (const engine of [...new Set(doc.runs.flatMap((r) => (r.engine ? [r.engine] : [])))]) {
    const runs = doc.runs
      .filter(
        (r) =>
          r.model === model &&
          r.engine === engine &&
          r.axis !== 'idle' &&
          r.size === 64 &&
          r.depth === 1,
      )
      .sort((a, b) => a.conns - b.conns);
    const ran = runs.filter((r) => r.status === 'ok');
    const first = ran[0];
    const last = ran[ran.length - 1];
    if (first === undefined || last === undefined) {
      const why = runs[0]?.reason;
      lines.push(`${engine}: did not run${why ? ` (${why})` : ''}`);
      continue;
    }
    const notRun = runs.filter((r) => r.status !== 'ok');
    const span =
      first === last
        ? `${fixed(first.cpuUsPerMessage)} µs/msg at ${integer(first.conns)} connections`
        : `${fixed(first.cpuUsPerMessage)} µs/msg at ${integer(first.conns)} connections, ${fixed(last.cpuUsPerMessage)} at ${integer(last.conns)}`;
    lines.push(
      `${engine}: ${span}` +
        (notRun.length > 0 ? `; not run at ${notRun.map((r) => integer(r.conns)).join(', ')}` : ''),
    );
  }
  return lines.join('. ');
}

function modelsSection(doc: ResultsDocument): string {
  const cards = doc.options.models.map((model) => {
    const note = MODEL_NOTES[model];
    if (note === undefined) return '';
    return `<div class="model" style="--c:${MODEL_COLOURS[model] ?? '#777'}"><h3>${html(note.title)} <code>${html(model)}</code></h3>
<p><em>${html(note.told)}</em></p><p><strong>Use it for:</strong> ${html(note.use)}</p><p><strong>Where it breaks:</strong> ${html(note.breaks)}</p><p><strong>Measured:</strong> ${html(measuredLine(doc, model))}.</p></div>`;
  });
  return `<h2>The models</h2><p>From the seeds’ model table (docs/models.md): how each one is told that it can go on, when to use it, and where it breaks; then what this run measured.</p><div class="models">${cards.join('')}</div>`;
}

function runsTable(runs: ReportRun[], title: string): string {
  const rows = runs.map((r) => {
    const where =
      r.axis === 'idle'
        ? `idle ${integer(r.conns)}${r.sweepIntervalMs === undefined ? '' : `, sweep ${r.sweepIntervalMs} ms`}`
        : `${integer(r.conns)} × ${size(r.size)}`;
    if (r.status !== 'ok') {
      return `<tr><td>${html(r.server)}</td><td class="l">${html(where)}</td><td class="l missing" colspan="7">${html(r.status)}: ${html(r.reason ?? '')}</td></tr>`;
    }
    return `<tr><td>${html(r.server)}</td><td class="l">${html(where)}</td><td>${integer(r.messagesPerSec)}</td><td>${integer(r.p50Us)}</td><td>${integer(r.p99Us)}</td><td>${fixed(r.cpuUsPerMessage)}</td><td>${kib(r.rssPerConnBytes)}</td><td>${r.threads ?? '–'}</td><td>${fixed(r.idleCpuPercent)}</td></tr>`;
  });
  return `<h2>${html(title)}</h2><table><tr><th>server</th><th class="l">cell</th><th>msgs/s</th><th>p50 µs</th><th>p99 µs</th><th>CPU µs/msg</th><th>RSS/conn KiB</th><th>threads</th><th>idle CPU %</th></tr>${rows.join('')}</table>`;
}

/**
 * One row per server at the connection count nearest 1,000 that the sweep ran:
 * the figures to quote, with CPU per message against the C epoll peer's.
 */
function glanceSection(doc: ResultsDocument): string {
  const sweep = doc.runs.filter((r) => r.axis !== 'idle' && r.size === 64 && r.depth === 1);
  const counts = [...new Set(sweep.map((r) => r.conns))];
  if (counts.length === 0) return '';
  const at = counts.reduce((best, c) => (Math.abs(Math.log(c / 1000)) < Math.abs(Math.log(best / 1000)) ? c : best));
  const runs = sweep.filter((r) => r.conns === at);
  const base = runs.find((r) => r.server === 'c-epoll' && r.status === 'ok')?.cpuUsPerMessage;
  const rows = runs.map((r) => {
    const who = r.kind === 'peer' ? `peer: ${r.label}` : `${r.model} (${r.engine})`;
    if (r.status !== 'ok') {
      return `<tr><td>${html(who)}</td><td class="l missing" colspan="6">${html(r.status)}: ${html(r.reason ?? '')}</td></tr>`;
    }
    const ratio = base === undefined || r.cpuUsPerMessage === undefined ? '–' : `${(r.cpuUsPerMessage / base).toFixed(2)}x`;
    return `<tr><td>${html(who)}</td><td>${integer(r.messagesPerSec)}</td><td>${fixed((r.p99Us ?? 0) / 1000, 1)}</td><td>${fixed(r.cpuUsPerMessage)}</td><td>${ratio}</td><td>${kib(r.rssPerConnBytes)}</td><td>${r.threads ?? '–'}</td></tr>`;
  });
  return `<h2>At a glance: ${integer(at)} connections × 64 B</h2><table><tr><th>server</th><th>msgs/s</th><th>p99 ms</th><th>CPU µs/msg</th><th>vs C epoll</th><th>RSS/conn KiB</th><th>threads</th></tr>${rows.join('')}</table>`;
}

/** The whole page for `doc`. */
export async function buildPage(doc: ResultsDocument): Promise<string> {
  const missing = doc.runs.filter((r) => r.status !== 'ok');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>overlapped report: eight I/O models under load</title><style>${STYLE}</style></head>
<body><main>
${header(doc)}
${glanceSection(doc)}
${await chartsSection(doc)}
${modelsSection(doc)}
${serversSection(doc)}
${missing.length > 0 ? runsTable(missing, `Cells that did not run (${missing.length})`) : '<h2>Cells that did not run</h2><p>None: every planned cell ran.</p>'}
<details><summary>Every run (${doc.runs.length})</summary>${runsTable(doc.runs, 'Every run')}</details>
</main></body></html>
`;
}
