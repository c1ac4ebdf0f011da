/**
 * What `echo --threads` and `chat --threads` share: starting the session
 * threads (src/threads/) with their failures said as a user would want
 * them, the start-up line's description of what runs, and the flags that
 * cannot go with threads yet.
 */
import type { ClusteredSessionServer } from '../threads/clustered-session-server.js';
import { startSessionThreads } from '../threads/start-session-threads.js';
import type {
  ThreadedSessionServer,
  ThreadedSessionServerOptions,
} from '../threads/threaded-session-server.js';
import { explainOsError } from './os-error-hints.js';
import { UserError } from './user-error.js';

/**
 * Starts the threads; an address in use (and the like) is explained, and an
 * engine that cannot run them (OVL_ERR_NOT_SUPPORTED) is a usage error.
 */
export async function startThreadsForCli(
  options: ThreadedSessionServerOptions,
  host: string,
  port: number,
): Promise<ThreadedSessionServer | ClusteredSessionServer> {
  try {
    return await startSessionThreads(options);
  } catch (err) {
    const explained = explainOsError(err, host, port);
    if (
      explained instanceof Error &&
      'code' in explained &&
      explained.code === 'OVL_ERR_NOT_SUPPORTED'
    ) {
      throw new UserError(explained.message, 2);
    }
    throw explained;
  }
}

/** What runs, for the start-up line: threads behind an acceptor (uring) or a cluster (node). */
export function describeThreads(
  server: ThreadedSessionServer | ClusteredSessionServer,
  threads: number,
): string {
  return 'assigned' in server
    ? `an acceptor and ${threads} worker threads`
    : `a cluster of ${threads} worker processes sharing the listener (node engine)`;
}

/**
 * The acceptor thread hands raw descriptors to the workers, and the client a
 * PROXY header names does not travel with them yet: refused rather than
 * served with the balancer's address in every log line.
 */
export function refuseProxyWithThreads(proxyProtocol: string | undefined, metrics?: unknown): void {
  if (metrics !== undefined) {
    throw new UserError(
      '--metrics is not available with --threads yet (each thread counts on its own): run one process per core instead (docs/deploy.md)',
      2,
    );
  }
  if (proxyProtocol !== undefined) {
    throw new UserError(
      '--proxy-protocol is not available with --threads yet: run one process per core behind the balancer instead (docs/deploy.md)',
      2,
    );
  }
}
