/**
 * A worker_threads worker running an echo server on its own uring engine
 * (one engine per thread). Tells the parent its port; stops on 'stop', or
 * (with `hold`) keeps operations pending until it is terminated.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { chooseEngine } from '../../src/engines/select.js';
import { EchoServer } from '../../src/servers/echo/echo-server.js';

const port = parentPort;
if (port === null) throw new Error('run me in a worker');
const { engine } = chooseEngine('uring');
const server = await EchoServer.start({ engine, host: '127.0.0.1', port: 0, workers: 2 });
port.postMessage({
  port: server.address.port,
  engine: engine.name,
  hold: workerData?.hold === true,
});
port.on('message', async (message) => {
  if (message === 'stop') {
    await server.stop();
    port.close();
  }
});
