/**
 * The echo server rewritten on the session framework (src/servers/session/,
 * the seeds' KIocp/KSocket): `onReceive` sends the bytes back, and the
 * framework does the rest (coalesced sends, one in flight per session).
 * Policy `'backpressure'` keeps it bounded: a client that sends without
 * reading makes its session unwritable, and the server stops receiving from
 * it until the echo drains, as the completion-port model does by not
 * posting its next recv.
 */
import { resolveEngine } from '../../core/engine-option.js';
import { pickProxyOptions } from '../../core/tcp-listener.js';
import type { Endpoint } from '../../engines/contract.js';
import type { Session } from '../../servers/session/session.js';
import { SessionServer } from '../../servers/session/session-server.js';
import { proxyErrorLog } from '../rate-limited-log.js';
import {
  describeEndpoint,
  ECHO_DEFAULTS,
  type EchoServerOptions,
  type EchoService,
} from './echo-base.js';

/** What a session may have queued before the server stops reading from it (two receive buffers). */
const HIGH_WATER = 16 * 1024;

export class SessionsEchoServer implements EchoService {
  readonly #server: SessionServer<string>;
  #stopping: Promise<void> | null = null;

  private constructor(server: SessionServer<string>) {
    this.#server = server;
  }

  static async start(options: EchoServerOptions): Promise<SessionsEchoServer> {
    const logger = options.logger;
    const logPeers = logger?.isLevelEnabled('info') ?? false;
    let server: SessionServer<string> | null = null;
    const count = () => server?.size ?? 0;
    server = await SessionServer.start<string>({
      engine: resolveEngine(options.engine),
      host: options.host ?? ECHO_DEFAULTS.host,
      port: options.port ?? ECHO_DEFAULTS.port,
      ...(options.backlog === undefined ? {} : { backlog: options.backlog }),
      maxSessions: options.maxConnections ?? ECHO_DEFAULTS.maxConnections,
      ...pickProxyOptions(options),
      onProxyError: proxyErrorLog(logger),
      noDelay: options.noDelay ?? true,
      queuePolicy: 'backpressure',
      highWaterMark: HIGH_WATER,
      lowWaterMark: HIGH_WATER / 2,
      idleTimeoutMs: options.idleTimeoutMs ?? 0,
      writeTimeoutMs: options.writeTimeoutMs ?? 0,
      handlers: {
        onAccept(session: Session<string>) {
          session.data = logPeers ? describeEndpoint(session.remoteAddress) : '';
          logger?.info({ peer: session.data, connections: count() }, 'connected');
        },
        onReceive(session: Session<string>, bytes: Buffer) {
          session.send(bytes);
        },
        onClose(session: Session<string>, reason) {
          if (reason.code === 'idle-timeout' || reason.code === 'write-timeout') {
            logger?.info(
              { peer: session.data, reason: reason.code === 'idle-timeout' ? 'idle' : 'write' },
              `deadline passed: closing the connection: ${reason.error?.message}`,
            );
          } else if (reason.error !== null) {
            logger?.info({ peer: session.data, err: reason.error.message }, 'connection error');
          }
          logger?.info({ peer: session.data, connections: count() }, 'disconnected');
        },
      },
      onError: (err) => logger?.warn({ err }, err.message),
    });
    return new SessionsEchoServer(server);
  }

  get address(): Endpoint {
    return this.#server.address;
  }

  get connections(): number {
    return this.#server.size;
  }

  get refused(): number {
    return this.#server.stats.rejected;
  }

  /** Drains every session (graceful), resetting what is left at the deadline. Idempotent. */
  stop(options: { deadlineMs?: number } = {}): Promise<void> {
    this.#stopping ??= this.#server
      .stop({ deadlineMs: options.deadlineMs ?? ECHO_DEFAULTS.stopDeadlineMs })
      .then(() => {});
    return this.#stopping;
  }
}
