/**
 * An `overlapped echo` child process as the hostile-network tests drive it:
 * its JSON log lines collected as they come, its exit awaited, its port read
 * from the listening line.
 */
import type { ChildProcess } from 'node:child_process';
import { waitFor } from './echo-fixture.js';

export interface EchoChild {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  exited: Promise<number | null>;
}

/** Collects `child`'s stdout as JSON log lines (pino writes one object per line). */
export function watchEchoChild(child: ChildProcess): EchoChild {
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    const parts = (partial + s).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts)
      if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return { child, lines, exited };
}

/** The port the server logged it listens on (waiting up to 10 s for that line). */
export async function portOf(server: EchoChild): Promise<number> {
  await waitFor(
    () => server.lines.some((l) => typeof l.port === 'number'),
    'the listening line',
    10_000,
  );
  return server.lines.find((l) => typeof l.port === 'number')?.port as number;
}
