/**
 * Progress of a report run: on a terminal a cli-progress bar with an ETA, weighted
 * by each cell's expected seconds (cells range from 2 s to 10 s); otherwise (CI
 * logs, pipes) one line per finished cell.
 */
import { SingleBar } from 'cli-progress';

export interface Progress {
  /** A cell finished: `weight` is its expected seconds, `line` what it measured. */
  done(weight: number, line: string): void;
  stop(): void;
}

export function createProgress(
  totalCells: number,
  totalSeconds: number,
  stream: NodeJS.WriteStream = process.stderr,
): Progress {
  let cells = 0;
  if (!stream.isTTY) {
    return {
      done: (_weight, line) => {
        cells++;
        stream.write(`  [${cells}/${totalCells}] ${line}\n`);
      },
      stop: () => {},
    };
  }
  const bar = new SingleBar({
    stream,
    format:
      'report [{bar}] {percentage}% | ETA {eta_formatted} | {cells}/{totalCells} cells | {last}',
    barsize: 24,
    fps: 2,
    hideCursor: true,
    clearOnComplete: true,
    etaBuffer: 20,
  });
  let seconds = 0;
  bar.start(Math.max(1, Math.round(totalSeconds)), 0, { cells, totalCells, last: 'starting' });
  return {
    done: (weight, line) => {
      cells++;
      seconds += weight;
      bar.update(Math.round(seconds), { cells, totalCells, last: line.slice(0, 60) });
    },
    stop: () => bar.stop(),
  };
}
