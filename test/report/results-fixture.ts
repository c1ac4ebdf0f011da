/**
 * A small results document as `overlapped report` writes it: two engines, four
 * models and one peer, the connection sweep at 10 and 1,000, the size sweep at 64 B
 * and 64 KiB, idle cells; with cells that did not run (blocking over its thread
 * cap, a failed run) and a peer that is absent from the checkout.
 */
import type { ReportRun, ResultsDocument } from '../../src/report/results.js';

const MODELS = ['completion-port', 'select', 'blocking', 'nonblocking'] as const;
const ENGINES = ['uring', 'node'] as const;

function run(
  server: string,
  model: string | undefined,
  engine: string | undefined,
  conns: number,
  size: number,
  fields: Partial<ReportRun>,
): ReportRun {
  return {
    server,
    label: model ?? 'C epoll',
    kind: model === undefined ? 'peer' : 'overlapped',
    ...(model === undefined ? {} : { model }),
    ...(engine === undefined ? {} : { engine }),
    axis: size === 64 ? 'conns' : 'size',
    scenario: `c${conns}-s${size}`,
    conns,
    size,
    depth: 1,
    status: 'ok',
    ...fields,
  };
}

/** Plausible figures: cost grows with connections for select, with size for all. */
function measured(model: string, engine: string, conns: number, size: number): Partial<ReportRun> {
  const base = engine === 'uring' ? 6 : 11;
  const grow = model === 'select' ? (conns / 10) ** 0.3 : 1;
  const cpu = base * grow * (1 + size / 8192);
  return {
    messagesPerSec: 1e6 / cpu,
    p50Us: 200 * grow,
    p99Us: 900 * grow * (conns / 10) ** 0.5,
    cpuUsPerMessage: cpu,
    rssPerConnBytes: model === 'blocking' ? 9.5 * 2 ** 20 : 8 * 1024,
    rssIdleBytes: 60 * 2 ** 20,
    threads: model === 'blocking' ? conns + 8 : 8,
    generatorCpuPercent: 60,
    errors: 0,
    mismatches: 0,
  };
}

export function fixtureResults(): ResultsDocument {
  const runs: ReportRun[] = [];
  for (const engine of ENGINES) {
    for (const model of MODELS) {
      const id = `ovl-${engine}${model === 'completion-port' ? '' : `-${model}`}`;
      for (const [conns, size] of [
        [10, 64],
        [1000, 64],
        [10, 65536],
      ] as const) {
        if (model === 'blocking' && conns > 64) {
          runs.push(
            run(id, model, engine, conns, size, {
              status: 'missing',
              reason: 'a thread per client, and --max-threads is 64',
            }),
          );
        } else if (model === 'nonblocking' && engine === 'node' && size === 65536) {
          runs.push(
            run(id, model, engine, conns, size, {
              status: 'failed',
              reason: 'load generator failed (1): connect ECONNREFUSED',
            }),
          );
        } else {
          runs.push(run(id, model, engine, conns, size, measured(model, engine, conns, size)));
        }
      }
    }
    for (const sweep of [undefined, 1, 10, 100]) {
      const model = sweep === undefined ? 'completion-port' : 'nonblocking';
      const id = `ovl-${engine}${sweep === undefined ? '' : '-nonblocking'}`;
      runs.push({
        ...run(id, model, engine, 1000, 0, {}),
        axis: 'idle',
        scenario: `idle-1000${sweep === undefined ? '' : `-sweep-${sweep}`}`,
        depth: 0,
        ...(sweep === undefined ? {} : { sweepIntervalMs: sweep }),
        idleCpuPercent: sweep === undefined ? 0 : 40 / sweep,
        rssPerConnBytes: 3000,
        threads: 8,
      });
    }
  }
  for (const [conns, size] of [
    [10, 64],
    [1000, 64],
    [10, 65536],
  ] as const) {
    runs.push(
      run('c-epoll', undefined, undefined, conns, size, measured('c', 'uring', conns, size)),
    );
  }
  return {
    format: 'overlapped-report/1',
    date: '2026-12-01T23:00:00.000Z',
    machine: {
      cpu: 'Fixture CPU',
      cpus: 2,
      memoryBytes: 24 * 2 ** 30,
      os: 'Linux',
      kernel: '6.18.0',
      node: 'v20.20.2',
    },
    options: {
      quick: true,
      durationSec: 1,
      warmupSec: 0.3,
      maxThreads: 64,
      engines: [...ENGINES],
      models: [...MODELS],
    },
    loader: 'c',
    pinned: true,
    sizeSweepConns: 10,
    elapsedSec: 100,
    servers: [
      ...ENGINES.flatMap((engine) =>
        MODELS.map((model) => ({
          id: `ovl-${engine}${model === 'completion-port' ? '' : `-${model}`}`,
          label: model,
          kind: 'overlapped' as const,
          model,
          engine,
          available: true,
        })),
      ),
      { id: 'c-epoll', label: 'C epoll', kind: 'peer', available: true },
      {
        id: 'c-uring',
        label: 'C io_uring',
        kind: 'peer',
        available: false,
        reason: 'bench/peers/uring-echo.c is not in this checkout',
      },
    ],
    runs,
  };
}
