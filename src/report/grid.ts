/**
 * What a report runs: the scenarios of each sweep (the full grid and the `--quick`
 * one), and the planned cells, each server × scenario, with the cells that cannot
 * run marked missing with their reason before anything starts.
 */
import type { Axis } from './results.js';

export interface Scenario {
  id: string;
  axis: Axis;
  conns: number;
  size: number;
  depth: number;
  sweepIntervalMs?: number;
}

export interface GridShape {
  /** Connection counts of the connection sweep (64-byte messages, one in flight). */
  conns: number[];
  /** Message sizes of the size sweep, at `sizeConns` connections. */
  sizes: number[];
  sizeConns: number;
  /** Idle connection counts, and the nonblocking sweep intervals measured at each. */
  idleConns: number[];
  sweepIntervalsMs: number[];
  durationSec: number;
  warmupSec: number;
  /** Seconds each idle cell is measured. */
  idleSec: number;
}

/** The default report: 10 to 8,000 connections, 64 B to 64 KiB (its length: docs/benchmarks.md). */
export const FULL_GRID: GridShape = {
  conns: [10, 50, 100, 500, 1000, 2000, 4000, 8000],
  sizes: [64, 1024, 4096, 16384, 65536],
  sizeConns: 50,
  idleConns: [100, 1000, 4000],
  sweepIntervalsMs: [1, 10, 100],
  durationSec: 3,
  warmupSec: 1,
  idleSec: 2,
};

/**
 * `--quick`: both ends of each sweep only (10 and 1,000 connections cross the
 * 64-event wall; 64 B and 64 KiB), short windows: sized to stay under three minutes on 2 cores.
 */
export const QUICK_GRID: GridShape = {
  conns: [10, 1000],
  sizes: [64, 65536],
  sizeConns: 10,
  idleConns: [1000],
  sweepIntervalsMs: [1, 10, 100],
  durationSec: 1,
  warmupSec: 0.3,
  idleSec: 1,
};

/** The nonblocking model is measured idle at each sweep interval, the completion port beside it. */
export const IDLE_MODELS = ['nonblocking', 'completion-port'] as const;

/**
 * The loaded scenarios of a grid: the connection sweep at 64 B, then the size
 * sweep; a (conns, size) pair both sweeps hold is run once and serves both charts.
 */
export function loadScenarios(grid: GridShape): Scenario[] {
  const scenarios: Scenario[] = grid.conns.map((conns) => ({
    id: `c${conns}-s64`,
    axis: 'conns',
    conns,
    size: 64,
    depth: 1,
  }));
  for (const size of grid.sizes) {
    if (size === 64 && grid.conns.includes(grid.sizeConns)) continue;
    scenarios.push({
      id: `c${grid.sizeConns}-s${size}`,
      axis: 'size',
      conns: grid.sizeConns,
      size,
      depth: 1,
    });
  }
  return scenarios;
}

/** The idle scenarios: each idle count once per sweep interval (nonblocking) and once plain. */
export function idleScenarios(grid: GridShape): Scenario[] {
  return grid.idleConns.flatMap((conns) => [
    { id: `idle-${conns}`, axis: 'idle' as const, conns, size: 0, depth: 0 },
    ...grid.sweepIntervalsMs.map((ms) => ({
      id: `idle-${conns}-sweep-${ms}`,
      axis: 'idle' as const,
      conns,
      size: 0,
      depth: 0,
      sweepIntervalMs: ms,
    })),
  ]);
}

/** True where a scenario belongs to the conns chart and the size chart both. */
export function inBothSweeps(scenario: Scenario, grid: GridShape): boolean {
  return scenario.axis === 'conns' && scenario.conns === grid.sizeConns && grid.sizes.includes(64);
}

/** Rough seconds one loaded cell takes: start, connect, warm-up, window, drain and stop. */
export function loadCellSeconds(scenario: Scenario, grid: GridShape): number {
  return grid.warmupSec + grid.durationSec + 0.8 + scenario.conns / 2000;
}

/** Rough seconds one idle cell takes: start, connect, settle, window, stop. */
export function idleCellSeconds(scenario: Scenario, grid: GridShape): number {
  return grid.idleSec + 1.3 + scenario.conns / 2000;
}

export function clock(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
