/**
 * The Prometheus view of the core's counters (`src/core/counters.ts`): each
 * metric reads them when prom-client asks, at scrape time. Nothing here runs
 * on the I/O path.
 *
 * The metrics are registered as objects with prom-client's metric interface
 * (`name`, `help`, `type`, `get()`), not as its Counter and Histogram
 * classes: those keep their own values and can only be incremented or
 * observed, whereas these values are already counted (a histogram's buckets
 * included) and only need reading.
 */
import { collectDefaultMetrics, type Metric, Registry } from 'prom-client';
import {
  BATCH_BUCKETS,
  BYTES_AT,
  COMPLETED_AT,
  counters,
  DEADLINES,
  ENGINE_LABELS,
  HOT,
  LENT_AT,
  LIMITS,
  livePorts,
  OPERATIONS,
  POSTED_AT,
  RESULTS,
  RETURNED_AT,
} from '../core/counters.js';

type Labels = Record<string, string | number>;

interface Sample {
  value: number;
  labels: Labels;
  metricName?: string;
}

/** One metric read at scrape time. */
class ScrapedMetric {
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    readonly read: () => Sample[],
  ) {}

  get(): { name: string; help: string; type: string; values: Sample[]; aggregator: string } {
    const { name, help, type, aggregator } = this;
    return { name, help, type, values: this.read(), aggregator };
  }

  reset(): void {}
}

/** Engines this process has posted an operation on or opened a connection with. */
function usedEngines(): number[] {
  const used: number[] = [];
  for (let e = 0; e < ENGINE_LABELS.length; e++) {
    let any =
      (counters.connectionsOpen[e] as number) !== 0 || (counters.accepted[e] as number) !== 0;
    for (let op = 0; op < OPERATIONS.length && !any; op++) {
      any = (HOT[POSTED_AT + e * OPERATIONS.length + op] as number) > 0;
    }
    if (any) used.push(e);
  }
  return used;
}

/** Calls `each` with the counters' slot and labels of every operation of every used engine. */
function eachOperation(each: (slot: number, labels: Labels) => void): void {
  for (const e of usedEngines()) {
    for (let op = 0; op < OPERATIONS.length; op++) {
      each(e * OPERATIONS.length + op, {
        engine: ENGINE_LABELS[e] as string,
        operation: OPERATIONS[op] as string,
      });
    }
  }
}

/** A sample per operation of every used engine, valued by `value(slot)`. */
function perOperation(value: (slot: number) => number): Sample[] {
  const samples: Sample[] = [];
  eachOperation((slot, labels) => samples.push({ value: value(slot), labels }));
  return samples;
}

function perEngine(values: Float64Array): Sample[] {
  return usedEngines().map((e) => ({
    value: values[e] as number,
    labels: { engine: ENGINE_LABELS[e] as string },
  }));
}

function completedIn(slot: number): number {
  let n = 0;
  for (let r = 0; r < RESULTS.length; r++)
    n += HOT[COMPLETED_AT + slot * RESULTS.length + r] as number;
  return n;
}

function portSum(field: 'size' | 'waiting' | 'active' | 'count'): Sample[] {
  let total = 0;
  for (const ref of livePorts) {
    const port = ref.deref();
    if (port === undefined) {
      livePorts.delete(ref);
      continue;
    }
    if (port.closed) continue;
    total += field === 'count' ? 1 : port[field];
  }
  return [{ value: total, labels: {} }];
}

function batchHistogram(): Sample[] {
  const samples: Sample[] = [];
  const name = 'overlapped_completion_batch_size';
  for (const e of usedEngines()) {
    const engine = ENGINE_LABELS[e] as string;
    let cumulative = 0;
    for (let b = 0; b < BATCH_BUCKETS.length; b++) {
      cumulative += counters.batchBuckets[e * BATCH_BUCKETS.length + b] as number;
      samples.push({
        value: cumulative,
        labels: { engine, le: BATCH_BUCKETS[b] as number },
        metricName: `${name}_bucket`,
      });
    }
    const count = counters.batchCount[e] as number;
    samples.push({ value: count, labels: { engine, le: '+Inf' }, metricName: `${name}_bucket` });
    samples.push({
      value: counters.batchSum[e] as number,
      labels: { engine },
      metricName: `${name}_sum`,
    });
    samples.push({ value: count, labels: { engine }, metricName: `${name}_count` });
  }
  return samples;
}

const REFUSED_BY_CODE = {
  proxy_header: 'OVL_ERR_PROXY_HEADER',
  proxy_timeout: 'OVL_ERR_PROXY_TIMEOUT',
} as const;

const LINT_REJECTED_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** A registry with every overlapped metric and Node's default process metrics. */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  const metrics = [
    new ScrapedMetric(
      'overlapped_completions_total',
      'Completions delivered, by engine, operation and result (ok, aborted, error)',
      'counter',
      () => {
        const samples: Sample[] = [];
        eachOperation((slot, labels) => {
          RESULTS.forEach((result, r) => {
            const value = HOT[COMPLETED_AT + slot * RESULTS.length + r] as number;
            samples.push({ value, labels: { ...labels, result } });
          });
        });
        return samples;
      },
    ),
    new ScrapedMetric(
      'overlapped_operations_posted_total',
      'Operations posted, by engine and operation',
      'counter',
      () => perOperation((slot) => HOT[POSTED_AT + slot] as number),
    ),
    new ScrapedMetric(
      'overlapped_operations_in_flight',
      'Operations posted whose completion has not been delivered yet',
      'gauge',
      () => perOperation((slot) => (HOT[POSTED_AT + slot] as number) - completedIn(slot)),
    ),
    new ScrapedMetric(
      'overlapped_completion_bytes_total',
      'Bytes moved by delivered completions, by engine and operation',
      'counter',
      () => perOperation((slot) => HOT[BYTES_AT + slot] as number),
    ),
    new ScrapedMetric(
      'overlapped_lent_bytes',
      'Bytes of buffers owned by pending operations (recv buffers, sends in flight): lent to the engine and kernel',
      'gauge',
      () =>
        usedEngines().map((e) => {
          let lent = 0;
          for (let op = 0; op < OPERATIONS.length; op++) {
            const slot = e * OPERATIONS.length + op;
            lent += (HOT[LENT_AT + slot] as number) - (HOT[RETURNED_AT + slot] as number);
          }
          return { value: lent, labels: { engine: ENGINE_LABELS[e] as string } };
        }),
    ),
    new ScrapedMetric(
      'overlapped_pool_buffers_lent',
      'Leases of pool buffers held now by completed pooled receives until released (node: 8 KiB buffers; uring: 64 KiB ones that small leases share with kernel 6.12+, 8 KiB before)',
      'gauge',
      () =>
        usedEngines().map((e) => ({
          value: counters.poolLent[e] as number,
          labels: { engine: ENGINE_LABELS[e] as string },
        })),
    ),
    new ScrapedMetric(
      'overlapped_completion_batch_size',
      'Completions per batch an engine handed to the core (one wake-up of the event loop)',
      'histogram',
      batchHistogram,
    ),
    new ScrapedMetric(
      'overlapped_port_queue_depth',
      'Completions queued on the open completion ports and not yet dequeued',
      'gauge',
      () => portSum('size'),
    ),
    new ScrapedMetric(
      'overlapped_port_waiting_workers',
      'Dequeue calls (worker loops) waiting on the open completion ports',
      'gauge',
      () => portSum('waiting'),
    ),
    new ScrapedMetric(
      'overlapped_port_active_workers',
      'Workers holding a completion (counted against concurrency) on the open completion ports',
      'gauge',
      () => portSum('active'),
    ),
    new ScrapedMetric('overlapped_ports', 'Open completion ports', 'gauge', () => portSum('count')),
    new ScrapedMetric(
      'overlapped_connections_open',
      'Connections (TCP sockets and pipe connections) open now',
      'gauge',
      () => perEngine(counters.connectionsOpen),
    ),
    new ScrapedMetric(
      'overlapped_connections_accepted_total',
      'Connections accepted (TCP and pipe)',
      'counter',
      () => perEngine(counters.accepted),
    ),
    new ScrapedMetric(
      'overlapped_connections_refused_total',
      'Connections refused: the server was at its connection limit, or the PROXY header was missing, bad, late or from a source outside --proxy-from',
      'counter',
      () => [
        {
          value: counters.limitCloses[LIMITS.indexOf('max_connections')] as number,
          labels: { reason: 'max_connections' },
        },
        {
          value: counters.limitCloses[LIMITS.indexOf('proxy_source')] as number,
          labels: { reason: 'proxy_source' },
        },
        ...Object.entries(REFUSED_BY_CODE).map(([reason, code]) => ({
          value: counters.errors.get(code) ?? 0,
          labels: { reason },
        })),
      ],
    ),
    new ScrapedMetric(
      'overlapped_limit_closes_total',
      'Connections a limit refused or cut off (max_connections, send_queue: a client that does not read, proxy_source)',
      'counter',
      () =>
        LIMITS.map((limit, i) => ({ value: counters.limitCloses[i] as number, labels: { limit } })),
    ),
    new ScrapedMetric(
      'overlapped_deadline_closes_total',
      'Connections a deadline closed (connection: idle, read or write; proxy_header: --proxy-timeout)',
      'counter',
      () =>
        DEADLINES.map((deadline, i) => ({
          value: counters.deadlineCloses[i] as number,
          labels: { deadline },
        })),
    ),
    new ScrapedMetric(
      'overlapped_errors_total',
      'Errors operations completed with (aborts aside) and PROXY refusals, by code',
      'counter',
      () => [...counters.errors].map(([code, value]) => ({ value, labels: { code } })),
    ),
  ];
  // prom-client formats any object with its metric interface; these only read.
  for (const metric of metrics) registry.registerMetric(metric as unknown as Metric);
  collectDefaultMetrics({ register: registry });
  // prom-client also exports these sums of its per-type gauges as gauges named *_total, which
  // Prometheus's lint (promtool check metrics) rejects as names for counters only; the per-type
  // gauges (nodejs_active_handles{type}, …) stay and carry the same numbers.
  for (const name of LINT_REJECTED_DEFAULTS) registry.removeSingleMetric(name);
  return registry;
}
