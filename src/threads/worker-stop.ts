/**
 * The stop both kinds of session worker share (threads with an acceptor on
 * uring, cluster processes on node): each live worker is asked to stop and
 * drain, its `stopped` report is taken (or the one it sent before it was
 * asked, when it failed), it gets a grace to exit by itself and is ended
 * after, and the reports are summed.
 */
import type { ThreadedStopReport, ThreadReport } from './threaded-session-server.js';

/** A worker's last word: what it served and how its sessions ended. */
export interface StoppedMessage {
  kind: 'stopped';
  drained: number;
  reset: number;
  accepted: number;
  cpuMicros: number;
}

/** What the stop needs of a worker's record. */
export interface StoppableWorker {
  readonly report: ThreadReport;
  /** Resolves once the worker has exited. */
  readonly exited: Promise<void>;
  stopped: ((message: StoppedMessage) => void) | null;
  /** The worker's `stopped` report when it came before the stop asked (a failed worker's). */
  early: StoppedMessage | null;
  alive: boolean;
}

/** How long a stopped worker gets to end by itself before it is ended. */
export const EXIT_GRACE_MS = 2000;

export async function stopWorkers<W extends StoppableWorker>(
  workers: readonly W[],
  ask: (worker: W) => void,
  end: (worker: W) => unknown,
): Promise<ThreadedStopReport> {
  await Promise.all(
    workers.map(async (state) => {
      if (state.alive) {
        await new Promise<void>((resolve) => {
          state.stopped = (m) => {
            Object.assign(state.report, {
              accepted: m.accepted,
              drained: m.drained,
              reset: m.reset,
              cpuMicros: m.cpuMicros,
            });
            resolve();
          };
          state.exited.then(() => resolve());
          if (state.early !== null) state.stopped(state.early);
          else ask(state);
        });
      }
      // A worker that does not end within the grace (a handler's stray timer) is ended.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), EXIT_GRACE_MS);
      });
      if ((await Promise.race([state.exited, grace])) === 'late') await end(state);
      clearTimeout(timer);
      await state.exited;
      state.alive = false;
    }),
  );
  const threads = workers.map((w) => w.report);
  return {
    drained: threads.reduce((n, t) => n + t.drained, 0),
    reset: threads.reduce((n, t) => n + t.reset, 0),
    threads,
  };
}
