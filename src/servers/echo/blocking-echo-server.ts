/**
 * The echo server on blocking sockets with a thread per connection, as the
 * seeds' blocking server: the acceptor hands each client to a
 * `worker_threads` thread running ./blocking-echo-handler.ts. At most
 * `maxThreads` clients are served at once; more wait in the listen backlog.
 */
import type { Endpoint } from '../../engines/contract.js';
import {
  type BlockingMode,
  DEFAULT_MAX_THREADS,
  ThreadPerConnectionServer,
} from '../../models/blocking.js';
import { type EchoServerOptions, type EchoService, listenForEcho } from './echo-base.js';

export interface BlockingEchoServerOptions extends EchoServerOptions {
  /** Threads, and so clients served, at once. Default 64. */
  maxThreads?: number;
}

const HANDLER = new URL('./blocking-echo-handler.js', import.meta.url);

export class BlockingEchoServer implements EchoService {
  readonly #server: ThreadPerConnectionServer;

  private constructor(server: ThreadPerConnectionServer) {
    this.#server = server;
  }

  static async start(options: BlockingEchoServerOptions): Promise<BlockingEchoServer> {
    const { maxThreads = DEFAULT_MAX_THREADS, ...rest } = options;
    const { listener, settings } = await listenForEcho(rest);
    const serverOptions = {
      listener,
      handler: HANDLER,
      handlerOptions: { bufferSize: settings.bufferSize },
      maxThreads,
      maxConnections: settings.maxConnections,
      idleTimeoutMs: settings.idleTimeoutMs,
      writeTimeoutMs: settings.writeTimeoutMs,
      ...(settings.logger === undefined ? {} : { logger: settings.logger }),
    };
    try {
      return new BlockingEchoServer(ThreadPerConnectionServer.start(serverOptions));
    } catch (err) {
      listener.close();
      throw err;
    }
  }

  get address(): Endpoint {
    return this.#server.address;
  }

  get connections(): number {
    return this.#server.connections;
  }

  get refused(): number {
    return this.#server.refused;
  }

  get bytesReceived(): number {
    return this.#server.bytesReceived;
  }

  get bytesEchoed(): number {
    return this.#server.bytesSent;
  }

  get resetAtStop(): number {
    return this.#server.resetAtStop;
  }

  /** Threads alive (serving, or waiting to be reused). */
  get threads(): number {
    return this.#server.threads;
  }

  /** `descriptor` (real blocking sockets, uring) or `proxied` (node: Atomics.wait, I/O on the main thread). */
  get mode(): BlockingMode {
    return this.#server.mode;
  }

  stop(options: { deadlineMs?: number } = {}): Promise<void> {
    return this.#server.stop(options);
  }
}
