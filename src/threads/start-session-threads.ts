import { chooseEngine } from '../engines/select.js';
import { ClusteredSessionServer } from './clustered-session-server.js';
import {
  ThreadedSessionServer,
  type ThreadedSessionServerOptions,
} from './threaded-session-server.js';

/**
 * Every core on whichever engine runs here: worker threads fed by an
 * acceptor where the engine can hand descriptors over (`uring`), else a
 * cluster of worker processes sharing the listener (`node`). Both serve the
 * same handler module with the same `ThreadContext`.
 */
export function startSessionThreads(
  options: ThreadedSessionServerOptions,
): Promise<ThreadedSessionServer | ClusteredSessionServer> {
  const engine = chooseEngine(options.engine).engine;
  return engine.adopt !== undefined
    ? ThreadedSessionServer.start(options)
    : ClusteredSessionServer.start(options);
}
