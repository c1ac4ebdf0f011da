/**
 * Every echo model on every engine behind the PROXY protocol: the connect
 * line names the client of the header, the bytes after the header (in the
 * header's last segment and later ones) are echoed exactly, and a
 * connection without a header is refused with one warning while another
 * client is being served.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, test } from 'node:test';
import { ECHO_MODELS, startEchoServer } from '../../src/servers/echo/echo-models.js';
import { delay, enginesUnderTest } from '../support/engines.js';
import { capturingLogger } from '../support/log-capture.js';
import { v1Header, v2Header } from '../support/proxy-headers.js';

/** Sends `pieces` with a pause between each and resolves with `expected` bytes of echo. */
function exchange(port: number, pieces: Buffer[], expected: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const got: Buffer[] = [];
    let n = 0;
    const timer = setTimeout(() => reject(new Error(`${n} of ${expected} bytes echoed`)), 10_000);
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      got.push(chunk);
      n += chunk.length;
      if (n >= expected) {
        clearTimeout(timer);
        socket.end();
        resolve(Buffer.concat(got));
      }
    });
    socket.once('connect', async () => {
      for (const piece of pieces) {
        socket.write(piece);
        await delay(10);
      }
    });
  });
}

for (const { name, engine, skip } of enginesUnderTest()) {
  describe(`echo models behind the PROXY protocol: ${name}`, { skip: skip ?? false }, () => {
    for (const model of ECHO_MODELS) {
      test(model, async () => {
        const { logger, lines } = capturingLogger();
        const server = await startEchoServer({
          model,
          engine,
          port: 0,
          proxyProtocol: 'any',
          logger,
        });
        try {
          const port = server.address.port;
          const refused = new Promise<void>((resolve) => {
            const bare = net.connect({ host: '127.0.0.1', port }, () => bare.write('hello\r\n'));
            bare.on('error', () => {});
            bare.on('close', () => resolve());
          });
          const v1 = v1Header('TCP4', '127.0.0.7', '127.0.0.1', 40007, port);
          const data1 = randomBytes(20_000);
          const first = Buffer.concat([v1, data1.subarray(0, 5)]);
          const echo1 = await exchange(
            port,
            [first.subarray(0, 9), first.subarray(9), data1.subarray(5)],
            data1.length,
          );
          assert.ok(echo1.equals(data1), 'v1: the echo differs');
          const v2 = v2Header({
            command: 'proxy',
            source: [127, 0, 0, 8],
            destination: [127, 0, 0, 1],
            sourcePort: 40008,
            destinationPort: port,
          });
          const data2 = randomBytes(3000);
          const echo2 = await exchange(port, [Buffer.concat([v2, data2])], data2.length);
          assert.ok(echo2.equals(data2), 'v2: the echo differs');
          await refused;
          const peers = lines.filter((l) => l.msg === 'connected').map((l) => l.peer);
          assert.deepEqual(peers, ['127.0.0.7:40007', '127.0.0.8:40008']);
          const warnings = lines.filter((l) => l.code === 'OVL_ERR_PROXY_HEADER');
          assert.equal(warnings.length, 1);
        } finally {
          await server.stop({ deadlineMs: 1000 });
        }
      });
    }
  });
}
