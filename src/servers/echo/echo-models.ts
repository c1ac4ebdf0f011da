/**
 * The echo server's models by name, for the CLI and the benchmark: the same
 * echo, learning of completions through a completion port, event objects,
 * or completion routines.
 */
import { UsageError } from '../../core/errors.js';
import { AsyncSelectEchoServer } from './async-select-echo-server.js';
import { BlockingEchoServer } from './blocking-echo-server.js';
import type { EchoServerOptions, EchoService } from './echo-base.js';
import { EchoServer } from './echo-server.js';
import { EventSelectEchoServer } from './event-select-echo-server.js';
import { EventsEchoServer } from './events-echo-server.js';
import { NonBlockingEchoServer } from './nonblocking-echo-server.js';
import { RoutinesEchoServer } from './routines-echo-server.js';
import { SelectEchoServer } from './select-echo-server.js';
import { SessionsEchoServer } from './sessions-echo-server.js';

/**
 * The eight models of the seeds' table, in its order: the three overlapped
 * ones (completion port, event objects, completion routines), then blocking
 * sockets with a thread each, non-blocking polling, select, WSAAsyncSelect
 * and WSAEventSelect; and the same echo on the session framework
 * (`sessions`, the seeds' KIocp/KSocket on a completion port).
 */
export const ECHO_MODELS = [
  'completion-port',
  'events',
  'routines',
  'blocking',
  'nonblocking',
  'select',
  'async-select',
  'event-select',
  'sessions',
] as const;
export type EchoModel = (typeof ECHO_MODELS)[number];

/** Options of every model, and those of one model only (ignored by the others). */
export interface EchoModelOptions extends EchoServerOptions {
  model?: EchoModel;
  /** blocking: threads, and so clients served, at once (default 64). */
  maxThreads?: number;
  /** nonblocking: sleep after a sweep that found nothing, in ms (default 1). */
  sweepIntervalMs?: number;
}

/** Starts the echo server of `model` (default: completion port). */
export function startEchoServer(options: EchoModelOptions): Promise<EchoService> {
  const { model = 'completion-port', maxThreads, sweepIntervalMs, ...rest } = options;
  switch (model) {
    case 'completion-port':
      return EchoServer.start(rest);
    case 'events':
      return EventsEchoServer.start(rest);
    case 'routines':
      return RoutinesEchoServer.start(rest);
    case 'blocking':
      return BlockingEchoServer.start(maxThreads === undefined ? rest : { ...rest, maxThreads });
    case 'nonblocking':
      return NonBlockingEchoServer.start(
        sweepIntervalMs === undefined ? rest : { ...rest, sweepIntervalMs },
      );
    case 'select':
      return SelectEchoServer.start(rest);
    case 'async-select':
      return AsyncSelectEchoServer.start(rest);
    case 'event-select':
      return EventSelectEchoServer.start(rest);
    case 'sessions':
      return SessionsEchoServer.start(rest);
    default:
      throw new UsageError(
        'OVL_ERR_INVALID_ARGUMENT',
        `unknown echo model '${String(model)}': use one of ${ECHO_MODELS.join(', ')}`,
      );
  }
}
