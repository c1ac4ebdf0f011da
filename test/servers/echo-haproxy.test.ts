/**
 * The echo server behind a real HAProxy (TCP mode), one backend sending the
 * PROXY v1 line (`send-proxy`) and one the v2 header (`send-proxy-v2`, with
 * HAProxy's health checks, which send v2 LOCAL). Clients bound to distinct
 * loopback addresses must be the peers the server reports, and their bytes
 * must come back exactly.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { startEchoServer } from '../../src/servers/echo/echo-models.js';
import { freePort, missing, startDaemon, tempDir } from '../support/daemon.js';
import { enginesUnderTest } from '../support/engines.js';
import { capturingLogger } from '../support/log-capture.js';

const haproxyMissing = missing('haproxy', '-v', 'apt-get install -y haproxy');

function config(v1Port: number, v2Port: number, echoPort: number): string {
  return `global
  maxconn 256

defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s

frontend via_v1
  bind 127.0.0.1:${v1Port}
  default_backend echo_v1

frontend via_v2
  bind 127.0.0.1:${v2Port}
  default_backend echo_v2

backend echo_v1
  server echo 127.0.0.1:${echoPort} send-proxy

backend echo_v2
  server echo 127.0.0.1:${echoPort} send-proxy-v2 check inter 100ms
`;
}

/** Connects to `port` from `localAddress`, sends `data`, and resolves with the echo and the local port. */
function roundTrip(
  port: number,
  localAddress: string,
  data: Buffer,
): Promise<{ echo: Buffer; localPort: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    const parts: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`only ${got} of ${data.length} bytes came back from ${localAddress}`));
    }, 10_000);
    socket.once('error', reject);
    socket.once('connect', () => socket.write(data));
    socket.on('data', (chunk: Buffer) => {
      parts.push(chunk);
      got += chunk.length;
      if (got >= data.length) {
        clearTimeout(timer);
        const localPort = socket.localPort as number;
        socket.end();
        resolve({ echo: Buffer.concat(parts), localPort });
      }
    });
  });
}

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`echo behind HAProxy: ${name}`, { skip: skip ?? false }, () => {
    test('send-proxy and send-proxy-v2: the server names each client from its loopback address, echoes exact', async (t) => {
      if (haproxyMissing !== undefined) {
        t.skip(haproxyMissing);
        return;
      }
      const { logger, lines } = capturingLogger();
      const server = await startEchoServer({ engine, port: 0, proxyProtocol: 'any', logger });
      const dir = tempDir('ovl-haproxy-');
      const [v1Port, v2Port] = [await freePort(), await freePort()];
      const cfg = join(dir.path, 'haproxy.cfg');
      writeFileSync(cfg, config(v1Port, v2Port, server.address.port));
      const haproxy = await startDaemon('haproxy', ['-db', '-f', cfg], v2Port);
      try {
        const clients = ['127.0.0.7', '127.0.0.8', '127.0.0.9', '127.0.0.10'];
        const runs = await Promise.all(
          clients.map(async (address, i) => {
            const data = randomBytes(64 * 1024 + i);
            const via = i % 2 === 0 ? v1Port : v2Port;
            const { echo, localPort } = await roundTrip(via, address, data);
            assert.ok(echo.equals(data), `echo to ${address} differs`);
            return `${address}:${localPort}`;
          }),
        );
        const connected = new Set(
          lines.filter((l) => l.msg === 'connected').map((l) => String(l.peer)),
        );
        for (const peer of runs) {
          assert.ok(
            connected.has(peer),
            `no connect line names ${peer}: ${[...connected].join(', ')}`,
          );
        }
        // HAProxy sends its health checks through send-proxy-v2 as v2 LOCAL: accepted, and
        // named as the balancer itself.
        const deadline = performance.now() + 3000;
        while (!lines.some((l) => l.msg === 'connected' && /^127\.0\.0\.1:/.test(String(l.peer)))) {
          assert.ok(performance.now() < deadline, 'no health check reached the server');
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.deepEqual(
          lines.filter(
            (l) => typeof l.code === 'string' && String(l.code).startsWith('OVL_ERR_PROXY'),
          ),
          [],
          'no connection was refused for its header',
        );
      } catch (err) {
        throw new Error(`${(err as Error).message}\nhaproxy said:\n${haproxy.output()}`);
      } finally {
        await haproxy.stop();
        await server.stop({ deadlineMs: 1000 });
        dir.remove();
      }
    });
  });
}
