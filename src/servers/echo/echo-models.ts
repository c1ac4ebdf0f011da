/**
 * The echo server's models by name, for the CLI and the benchmark: the same
 * echo, learning of completions through a completion port, event objects,
 * or completion routines.
 */
import { UsageError } from '../../core/errors.js';
import type { EchoServerOptions, EchoService } from './echo-base.js';
import { EchoServer } from './echo-server.js';
import { EventsEchoServer } from './events-echo-server.js';
import { RoutinesEchoServer } from './routines-echo-server.js';

export const ECHO_MODELS = ['completion-port', 'events', 'routines'] as const;
export type EchoModel = (typeof ECHO_MODELS)[number];

/** Starts the echo server of `model` (default: completion port). */
export function startEchoServer(
  options: EchoServerOptions & { model?: EchoModel },
): Promise<EchoService> {
  const { model = 'completion-port', ...rest } = options;
  switch (model) {
    case 'completion-port':
      return EchoServer.start(rest);
    case 'events':
      return EventsEchoServer.start(rest);
    case 'routines':
      return RoutinesEchoServer.start(rest);
    default:
      throw new UsageError(
        'OVL_ERR_INVALID_ARGUMENT',
        `unknown echo model '${String(model)}': use one of ${ECHO_MODELS.join(', ')}`,
      );
  }
}
