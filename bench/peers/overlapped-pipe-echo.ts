/**
 * The overlapped PipeServer (message mode, unlimited instances) with a
 * handler that answers each request with its own bytes, so the benchmark
 * moves the same sizes both ways as the node:net peer's `--echo`.
 *
 * Usage: node dist/bench/peers/overlapped-pipe-echo.js --path <socket path>
 */
import { defaultEngine } from '../../src/engines/select.js';
import { PipeServer } from '../../src/servers/pipe/pipe-server.js';

const i = process.argv.indexOf('--path');
const path = i >= 0 ? process.argv[i + 1] : undefined;
if (path === undefined) {
  console.error('overlapped-pipe-echo: --path <socket path> is required');
  process.exit(2);
}
const server = await PipeServer.start({
  engine: defaultEngine().engine,
  name: path,
  handler: (request) => request,
});
process.stdout.write(`listening ${server.path}\n`);
process.on('SIGTERM', () => {
  server.stop().then(() => process.exit(0));
});
