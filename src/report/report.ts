/**
 * `overlapped report` end to end: run the grid, write `results.json`, build
 * `index.html` from it. The page is built from the written document only, so
 * what the page shows is what the JSON holds.
 */
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineName, ModelName } from '../../bench/echo-servers.js';
import type { GridShape } from './grid.js';
import { buildPage } from './page.js';
import { machineInfo, type ResultsDocument } from './results.js';
import { runGrid } from './run-grid.js';

export interface ReportOptions {
  quick: boolean;
  grid: GridShape;
  engines: EngineName[];
  models: ModelName[];
  maxThreads: number;
  peers?: string[];
  outDir: string;
  say(line: string): void;
}

export async function runReport(options: ReportOptions): Promise<{ json: string; html: string }> {
  // Before the run, not after it: a directory that cannot be written would lose the whole run.
  mkdirSync(options.outDir, { recursive: true });
  accessSync(options.outDir, constants.W_OK);
  const started = performance.now();
  const date = new Date().toISOString();
  const outcome = await runGrid(options);
  const doc: ResultsDocument = {
    format: 'overlapped-report/1',
    date,
    machine: machineInfo(),
    options: {
      quick: options.quick,
      durationSec: options.grid.durationSec,
      warmupSec: options.grid.warmupSec,
      maxThreads: options.maxThreads,
      engines: options.engines,
      models: options.models,
    },
    loader: outcome.loader,
    pinned: outcome.pinned,
    sizeSweepConns: options.grid.sizeConns,
    elapsedSec: (performance.now() - started) / 1000,
    servers: outcome.servers,
    runs: outcome.runs,
  };
  mkdirSync(options.outDir, { recursive: true });
  const json = join(options.outDir, 'results.json');
  writeFileSync(json, `${JSON.stringify(doc, null, 2)}\n`);
  return { json, html: await writePage(doc, options.outDir) };
}

/** Writes `outDir`/index.html for `doc`; resolves to its path. */
export async function writePage(doc: ResultsDocument, outDir: string): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const html = join(outDir, 'index.html');
  writeFileSync(html, await buildPage(doc));
  return html;
}
