/**
 * Runs one load for the benchmarks in its own process (so it can be pinned to its
 * own core) and prints the LoadReport as one JSON document on stdout.
 *
 * Usage: node dist/bench/run-load.js '<LoadOptions as JSON>'
 * Exit code 1 with a one-line message on stderr if the load could not run.
 */
import { type LoadOptions, runLoad } from '../src/load/load-generator.js';

const [json] = process.argv.slice(2);
if (json === undefined) {
  console.error("usage: run-load.js '<LoadOptions as JSON>'");
  process.exit(2);
}

try {
  const report = await runLoad(JSON.parse(json) as LoadOptions);
  process.stdout.write(`${JSON.stringify(report)}\n`);
} catch (err) {
  console.error(`run-load: ${(err as Error).message}`);
  process.exitCode = 1;
}
