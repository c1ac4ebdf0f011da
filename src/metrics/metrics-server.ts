/**
 * The metrics endpoint of a server (`--metrics host:port`): `/metrics` in
 * the Prometheus text format (prom-client), `/healthz` (the process is live:
 * always 200 while it answers) and `/readyz` (200 while the server takes new
 * connections, 503 from the moment it starts draining, so a balancer's
 * health check takes it out of rotation before its listener closes).
 *
 * Loaded only when `--metrics` is given, so servers without it never load
 * prom-client. Listens on 127.0.0.1 unless told otherwise.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { createMetricsRegistry } from './completion-metrics.js';

export interface MetricsEndpoint {
  readonly host: string;
  readonly port: number;
}

export class MetricsServer {
  readonly #server: ReturnType<typeof createServer>;
  readonly registry: Registry;
  #ready = true;

  private constructor(server: ReturnType<typeof createServer>, registry: Registry) {
    this.#server = server;
    this.registry = registry;
  }

  /** Listens on `host:port` (port 0 picks one). Rejects with the listen error (EADDRINUSE, …). */
  static async start(endpoint: MetricsEndpoint): Promise<MetricsServer> {
    const registry = createMetricsRegistry();
    let self: MetricsServer | null = null;
    const server = createServer((req, res) => {
      (self as MetricsServer).#answer(req, res);
    });
    // Scrapers keep their connection open between scrapes; a handful of them is expected.
    server.maxConnections = 64;
    server.headersTimeout = 5000;
    server.requestTimeout = 10_000;
    self = new MetricsServer(server, registry);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(endpoint.port, endpoint.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return self;
  }

  /** The bound address (the real port when 0 was asked for). */
  get address(): { address: string; port: number } {
    const { address, port } = this.#server.address() as AddressInfo;
    return { address, port };
  }

  /** Whether `/readyz` answers 200. */
  get ready(): boolean {
    return this.#ready;
  }

  /** The server is draining: `/readyz` answers 503 from now on. */
  setDraining(): void {
    this.#ready = false;
  }

  /** Stops answering; open scrape connections are closed. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #answer(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('GET only\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (err: Error) =>
          res
            .writeHead(500, { 'content-type': 'text/plain' })
            .end(`metrics failed: ${err.message}\n`),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      res
        .writeHead(this.#ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(this.#ready ? 'ready\n' : 'draining\n');
    } else {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('not found: /metrics, /healthz and /readyz are served here\n');
    }
  }
}
