/**
 * The report's charts as Vega-Lite specifications, rendered to SVG strings in Node
 * by Vega's headless renderer (`renderer: 'none'`, `view.toSVG()`): no browser and
 * no canvas are needed, and the SVG goes into the page inline. Vega and Vega-Lite
 * are loaded on first use only (they are development dependencies: see
 * docs/report.md), so nothing else in the package pays for them.
 *
 * Each chart has one panel per engine; the peers (which have no engine) are drawn
 * in every panel as dashed grey references. A cell that did not run is drawn as a
 * cross on the chart's floor, in its series' colour, so a gap is never silent.
 */
import type { Axis, ReportRun, ResultsDocument } from './results.js';

export interface ChartDef {
  id: string;
  title: string;
  axis: Axis;
  /** Which runs the chart reads (a sweep's rows: the conns chart at 64 B, the size chart at its connection count). */
  filter(run: ReportRun, doc: ResultsDocument): boolean;
  x: { field: keyof ReportRun; title: string };
  y: { title: string; value(run: ReportRun): number | undefined; log: boolean };
}

const connsSweep = (run: ReportRun) => run.axis !== 'idle' && run.size === 64 && run.depth === 1;
const sizeSweep = (run: ReportRun, doc: ResultsDocument) =>
  run.axis !== 'idle' && run.conns === doc.sizeSweepConns && run.depth === 1;

/** The two loaded sweeps: which runs each reads, and its x axis. */
const SWEEPS = {
  conns: {
    filter: connsSweep,
    x: { field: 'conns', title: 'open connections (log scale)' },
    against: 'open connections (64 B messages, one in flight each)',
  },
  size: {
    filter: sizeSweep,
    x: { field: 'size', title: 'message size (bytes, log scale)' },
    against: 'message size',
  },
} as const;

const CPU_PER_MESSAGE: ChartDef['y'] = {
  title: 'server CPU per message (µs, log scale)',
  value: (r) => r.cpuUsPerMessage,
  log: true,
};
const P99: ChartDef['y'] = {
  title: 'p99 latency (ms, log scale)',
  value: (r) => ms(r.p99Us),
  log: true,
};

function sweepChart(
  id: string,
  what: string,
  axis: keyof typeof SWEEPS,
  y: ChartDef['y'],
): ChartDef {
  const sweep = SWEEPS[axis];
  return {
    id,
    title: `${what} against ${sweep.against}`,
    axis,
    filter: sweep.filter,
    x: sweep.x,
    y,
  };
}

export const CHARTS: ChartDef[] = [
  sweepChart('cpu-vs-conns', 'Server CPU per message', 'conns', CPU_PER_MESSAGE),
  sweepChart('p99-vs-conns', 'p99 round-trip latency', 'conns', P99),
  sweepChart('rss-vs-conns', 'Server memory per open connection', 'conns', {
    title: 'RSS growth per connection (KiB, log scale)',
    value: (r) =>
      r.rssPerConnBytes === undefined ? undefined : Math.max(0.1, r.rssPerConnBytes / 1024),
    log: true,
  }),
  sweepChart('cpu-vs-size', 'Server CPU per message', 'size', CPU_PER_MESSAGE),
  sweepChart('p99-vs-size', 'p99 round-trip latency', 'size', P99),
  {
    id: 'idle-cpu',
    title:
      'CPU of a server whose connections are all idle: the non-blocking sweep against a completion port',
    axis: 'idle',
    filter: (run) => run.axis === 'idle',
    x: { field: 'conns', title: 'idle connections (log scale)' },
    y: {
      title: 'server CPU while idle (% of one core)',
      value: (r) => r.idleCpuPercent,
      log: false,
    },
  },
];

function ms(us: number | undefined): number | undefined {
  return us === undefined ? undefined : us / 1000;
}

/** The series a run belongs to in a chart: its model (or peer), or the sweep interval when idle. */
export function seriesOf(run: ReportRun): string {
  if (run.kind === 'peer') return `peer: ${run.label}`;
  if (run.sweepIntervalMs !== undefined) return `${run.model}, sweep ${run.sweepIntervalMs} ms`;
  return run.model ?? run.label;
}

/** One colour per model, shared by the charts and the page's model cards. */
export const MODEL_COLOURS: Record<string, string> = {
  'completion-port': '#1f77b4',
  events: '#ff7f0e',
  routines: '#2ca02c',
  blocking: '#d62728',
  nonblocking: '#9467bd',
  select: '#8c564b',
  'async-select': '#e377c2',
  'event-select': '#bcbd22',
  sessions: '#17becf',
};
const PEER_GREYS = ['#555555', '#888888', '#333333', '#aaaaaa'];
const SWEEP_COLOURS = ['#5b2a86', '#9467bd', '#c5b0d5', '#dcd0ea'];

/** Colours fixed per series, so a model keeps its colour in every chart of the page. */
function palette(series: string[]): { domain: string[]; range: string[] } {
  let peers = 0;
  let sweeps = 0;
  const range = series.map((s) => {
    if (s.startsWith('peer: ')) return PEER_GREYS[peers++ % PEER_GREYS.length] as string;
    if (s.includes(', sweep ')) return SWEEP_COLOURS[sweeps++ % SWEEP_COLOURS.length] as string;
    return MODEL_COLOURS[s] ?? '#7f7f7f';
  });
  return { domain: series, range };
}

export interface ChartRow {
  panel: string;
  series: string;
  peer: boolean;
  x: number;
  y: number;
  missing: boolean;
  reason?: string;
  missingLabel?: string;
}

/**
 * The rows a chart draws: one per run it reads, a peer's once per engine panel, a
 * cell that did not run at the chart's floor with `missing` set.
 */
export function chartRows(chart: ChartDef, doc: ResultsDocument): ChartRow[] {
  const runs = doc.runs.filter((r) => chart.filter(r, doc));
  const engines = [...new Set(runs.flatMap((r) => (r.engine === undefined ? [] : [r.engine])))];
  const panels = engines.length > 0 ? engines : ['peers'];
  const values = runs.flatMap((r) => {
    const v = r.status === 'ok' ? chart.y.value(r) : undefined;
    return v === undefined || !Number.isFinite(v) ? [] : [v];
  });
  const positive = values.filter((v) => v > 0);
  const floor = chart.y.log ? (positive.length > 0 ? Math.min(...positive) : 1) / 1.6 : 0;
  const rows: ChartRow[] = [];
  for (const run of runs) {
    const v = run.status === 'ok' ? chart.y.value(run) : undefined;
    const ok = v !== undefined && Number.isFinite(v) && (!chart.y.log || v > 0);
    const x = Number(run[chart.x.field]);
    for (const panel of run.engine === undefined ? panels : [run.engine]) {
      rows.push({
        panel: panel === 'peers' ? panel : `${panel} engine`,
        series: seriesOf(run),
        peer: run.kind === 'peer',
        x,
        y: ok ? (v as number) : floor,
        missing: !ok,
        ...(ok
          ? {}
          : {
              reason: run.reason ?? 'no value measured',
              missingLabel: `${seriesOf(run)} at ${x}: not run (${run.reason ?? 'no value measured'})`,
            }),
      });
    }
  }
  return rows;
}

/** 1-2-5 ticks spanning `values`: a log axis's default ticks (every integer of each decade) crowd it. */
function logTicks(values: number[]): number[] {
  const positive = values.filter((v) => v > 0);
  if (positive.length === 0) return [1];
  const low = Math.min(...positive);
  const high = Math.max(...positive);
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(low)) - 1; e <= Math.ceil(Math.log10(high)); e++) {
    for (const m of [1, 2, 5]) {
      const v = Number((m * 10 ** e).toPrecision(3));
      if (v >= low / 2.5 && v <= high * 2.5) ticks.push(v);
    }
  }
  return ticks;
}

/** The Vega-Lite specification of one chart. */
export function chartSpec(chart: ChartDef, rows: ChartRow[]): Record<string, unknown> {
  const series = [...new Set(rows.map((r) => r.series))];
  const colour = {
    field: 'series',
    type: 'nominal',
    title: 'model / peer',
    scale: palette(series),
    legend: { orient: 'right', labelLimit: 280 },
  };
  const x = {
    field: 'x',
    type: 'quantitative',
    title: chart.x.title,
    scale: { type: 'log', nice: false, padding: 12 },
    // Ticks at the measured points only: a log axis's default ticks crowd the panel.
    axis: {
      values: [...new Set(rows.map((r) => r.x))].sort((a, b) => a - b),
      labelExpr:
        chart.x.field === 'size'
          ? "datum.value >= 1024 ? format(datum.value / 1024, '~g') + ' KiB' : datum.value + ' B'"
          : "format(datum.value, ',')",
      grid: true,
    },
  };
  const y = {
    field: 'y',
    type: 'quantitative',
    title: chart.y.title,
    scale: chart.y.log ? { type: 'log' } : { type: 'linear', zero: true },
    axis: chart.y.log
      ? { format: '~g', grid: true, values: logTicks(rows.map((r) => r.y)) }
      : { format: ',~r', grid: true, tickCount: 6 },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: rows },
    facet: {
      column: {
        field: 'panel',
        type: 'nominal',
        title: null,
        header: { labelFontSize: 13, labelFontWeight: 'bold' },
      },
    },
    resolve: { scale: { y: 'shared' } },
    spec: {
      width: 360,
      height: 250,
      layer: [
        {
          transform: [{ filter: '!datum.missing' }],
          mark: { type: 'line', point: { filled: true, size: 36 }, strokeWidth: 2 },
          encoding: {
            x,
            y,
            color: colour,
            strokeDash: {
              field: 'peer',
              type: 'nominal',
              scale: {
                domain: [false, true],
                range: [
                  [1, 0],
                  [5, 3],
                ],
              },
              legend: null,
            },
          },
        },
        {
          transform: [{ filter: 'datum.missing' }],
          mark: { type: 'point', shape: 'cross', size: 110, filled: true, opacity: 0.9 },
          // The accessible label of each cross, so the SVG itself says what is missing and why.
          encoding: {
            x,
            y,
            color: colour,
            description: { field: 'missingLabel', type: 'nominal' },
          },
        },
      ],
    },
    config: {
      font: 'Helvetica, Arial, sans-serif',
      axis: { titleFontSize: 12, labelFontSize: 11 },
      legend: { titleFontSize: 12, labelFontSize: 11, labelLimit: 280 },
      view: { stroke: '#ccc' },
    },
  };
}

type Vega = typeof import('vega');
type VegaLite = typeof import('vega-lite');
let libraries: Promise<{ vega: Vega; vegaLite: VegaLite }> | undefined;

/** Vega and Vega-Lite, imported once, on first use. */
function loadLibraries(): Promise<{ vega: Vega; vegaLite: VegaLite }> {
  libraries ??= Promise.all([import('vega'), import('vega-lite')]).then(([vega, vegaLite]) => ({
    vega,
    vegaLite,
  }));
  return libraries;
}

/** Renders a Vega-Lite specification to an SVG document string. */
export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  const { vega, vegaLite } = await loadLibraries();
  const compiled = vegaLite.compile(spec as never).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
