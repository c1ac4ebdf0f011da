/**
 * The paragraph under each chart: what the chart shows and how to read it, then
 * what this run measured, in numbers taken from the results (never asserted in
 * advance: a model that did not break here is not said to break).
 */
import type { ReportRun, ResultsDocument } from './results.js';

const integer = (n: number) => Math.round(n).toLocaleString('en-US');
const fixed = (n: number) => (n >= 100 ? integer(n) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const times = (n: number) => `${n.toFixed(1)}x`;

function ok(doc: ResultsDocument, pick: (r: ReportRun) => boolean): ReportRun[] {
  return doc.runs.filter((r) => r.status === 'ok' && pick(r));
}

const engines = (doc: ResultsDocument) => [
  ...new Set(doc.runs.flatMap((r) => (r.engine === undefined ? [] : [r.engine]))),
];

/**
 * For each engine: each model's value at the fewest and at the most connections it
 * ran at, as growth; the steepest growers first, the completion port as reference.
 */
function growth(
  doc: ResultsDocument,
  value: (r: ReportRun) => number | undefined,
  unit: string,
): string {
  const sentences: string[] = [];
  for (const engine of engines(doc)) {
    const runs = ok(doc, (r) => r.engine === engine && r.axis !== 'idle' && r.size === 64);
    const byModel = new Map<string, ReportRun[]>();
    for (const r of runs)
      byModel.set(r.model ?? r.label, [...(byModel.get(r.model ?? r.label) ?? []), r]);
    const grown: { model: string; from: ReportRun; to: ReportRun; ratio: number }[] = [];
    for (const [model, list] of byModel) {
      const sorted = list.filter((r) => value(r) !== undefined).sort((a, b) => a.conns - b.conns);
      const from = sorted[0];
      const to = sorted[sorted.length - 1];
      if (from === undefined || to === undefined || from === to) continue;
      grown.push({ model, from, to, ratio: (value(to) as number) / (value(from) as number) });
    }
    if (grown.length === 0) continue;
    grown.sort((a, b) => b.ratio - a.ratio);
    const say = (g: (typeof grown)[number]) =>
      `${g.model} ${fixed(value(g.from) as number)} → ${fixed(value(g.to) as number)} ${unit} from ${integer(g.from.conns)} to ${integer(g.to.conns)} connections (${times(g.ratio)})`;
    const cp = grown.find((g) => g.model === 'completion-port');
    const top = grown.filter((g) => g !== cp).slice(0, 3);
    sentences.push(
      `On ${engine}: ${top.map(say).join('; ')}${cp === undefined ? '' : `; against completion-port ${say(cp).replace(/^completion-port /, '')}`}.`,
    );
  }
  return sentences.join(' ');
}

/** The cells a chart could not draw, grouped by reason: which series, at which x. */
function missingNote(
  doc: ResultsDocument,
  pick: (r: ReportRun) => boolean,
  x: (r: ReportRun) => number = (r) => r.conns,
): string {
  const missing = doc.runs.filter((r) => r.status !== 'ok' && pick(r));
  if (missing.length === 0) return '';
  const reasons = new Map<string, ReportRun[]>();
  for (const r of missing) {
    const reason = r.reason ?? 'no reason recorded';
    reasons.set(reason, [...(reasons.get(reason) ?? []), r]);
  }
  const list = [...reasons].map(([reason, runs]) => {
    const who = [...new Set(runs.map((r) => (r.engine === undefined ? r.label : `${r.model} on ${r.engine}`)))];
    const at = [...new Set(runs.map(x))].sort((a, b) => a - b).map(integer);
    return `${who.join(', ')} at ${at.join(', ')} (${reason})`;
  });
  return ` Crosses on the floor are cells that did not run: ${list.join('; ')}.`;
}

export function reading(chartId: string, doc: ResultsDocument): string {
  const conns = (r: ReportRun) => r.axis !== 'idle' && r.size === 64 && r.depth === 1;
  const sized = (r: ReportRun) => r.axis !== 'idle' && r.conns === doc.sizeSweepConns;
  switch (chartId) {
    case 'cpu-vs-conns':
      return (
        'Each point is one run: the server’s own CPU time (user + system, read from /proc over the measured window) divided by the messages it echoed, with the load generator on the other core. A flat line is a model whose cost does not depend on how many sockets it watches; a rising one pays per socket, per call: select scans its sets, events and event-select open a wait loop per 63 sockets once past the 64-event wall. ' +
        growth(doc, (r) => r.cpuUsPerMessage, 'µs') +
        missingNote(doc, conns)
      );
    case 'p99-vs-conns':
      return (
        'The 99th percentile of the round trip, as the closed-loop load generator timed it (one 64-byte message in flight per connection, so with more connections each one waits for its turn). Lines that rise faster than the completion port’s are queueing behind per-socket work. ' +
        growth(doc, (r) => (r.p99Us === undefined ? undefined : r.p99Us / 1000), 'ms') +
        missingNote(doc, conns)
      );
    case 'rss-vs-conns': {
      const blocking = ok(doc, (r) => r.model === 'blocking' && conns(r));
      const cp = ok(doc, (r) => r.model === 'completion-port' && conns(r));
      const facts = blocking.map((b) => {
        const ref = cp.find((c) => c.engine === b.engine && c.conns === b.conns);
        const kib = (r: ReportRun) => `${fixed((r.rssPerConnBytes ?? 0) / 1024)} KiB`;
        return `blocking on ${b.engine} at ${integer(b.conns)} connections: ${kib(b)} per connection with ${b.threads ?? '?'} threads${ref === undefined ? '' : `, against ${kib(ref)} for completion-port`}`;
      });
      return (
        'Resident memory the server grew by, per connection, once every connection was open and before any message (the load generator reads VmRSS once the server holds a descriptor per connection; growth of 0.1 KiB or less, or none, is drawn at 0.1). A thread per connection costs a whole stack and, here, a V8 isolate; the readiness models hold no receive buffer while a socket is idle. ' +
        (facts.length > 0 ? `Measured: ${facts.join('; ')}.` : '') +
        missingNote(doc, conns)
      );
    }
    case 'cpu-vs-size':
    case 'p99-vs-size': {
      const cpu = chartId === 'cpu-vs-size';
      const value = (r: ReportRun) => (cpu ? r.cpuUsPerMessage : r.p99Us);
      const unit = (v: number) => (cpu ? `${fixed(v)} µs` : `${fixed(v / 1000)} ms`);
      const facts = engines(doc).flatMap((engine) => {
        const big = ok(doc, (r) => r.engine === engine && sized(r)).sort((a, b) => b.size - a.size);
        const largest = big[0]?.size;
        if (largest === undefined) return [];
        const at = big.filter((r) => r.size === largest && value(r) !== undefined);
        at.sort((a, b) => (value(a) as number) - (value(b) as number));
        const best = at[0];
        const worst = at[at.length - 1];
        if (best === undefined || worst === undefined) return [];
        return [
          `at ${integer(largest)} B on ${engine}, ${best.model} is ${cpu ? 'cheapest' : 'quickest'} (${unit(value(best) as number)}) and ${worst.model} ${cpu ? 'dearest' : 'slowest'} (${unit(value(worst) as number)})`,
        ];
      });
      return (
        `${doc.sizeSweepConns} connections, one message in flight each, from 64 bytes to 64 KiB. Past the server's 8 KiB buffers a message takes several receives and sends, so ${cpu ? 'the cost per message' : 'the round trip'} climbs with size for every model; what differs is the cost per call each model adds. ` +
        (facts.length > 0 ? `Measured: ${facts.join('; ')}.` : '') +
        missingNote(doc, sized, (r) => r.size)
      );
    }
    case 'idle-cpu': {
      const idle = ok(doc, (r) => r.axis === 'idle');
      const most = Math.max(0, ...idle.map((r) => r.conns));
      const facts = idle
        .filter((r) => r.conns === most)
        .map(
          (r) =>
            `${r.engine} ${r.model}${r.sweepIntervalMs === undefined ? '' : ` (sweep ${r.sweepIntervalMs} ms)`} ${fixed(r.idleCpuPercent ?? 0)}%`,
        );
      return (
        'Every connection open and silent, the server left alone for the window: a completion port sleeps until something completes, while the non-blocking model sweeps every socket and sleeps --sweep-interval ms after an empty sweep, so its idle CPU grows with the connection count and shrinks with the interval (a longer interval adds up to that long to the first request’s latency). ' +
        (facts.length > 0 ? `At ${integer(most)} idle connections: ${facts.join('; ')}.` : '') +
        missingNote(doc, (r) => r.axis === 'idle')
      );
    }
    default:
      return '';
  }
}
