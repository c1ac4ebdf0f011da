/**
 * What the core's counting costs per echoed message, measured on its own:
 * the calls one message makes (a recv and a send, each posted and
 * completed, and its share of a batch), in a loop, as this process's CPU
 * time per message. The echo benchmark measures the whole server; on a
 * loaded machine its runs spread by more than the few nanoseconds this
 * adds, so this bounds the counting cost directly.
 *
 *   node dist/bench/counters-cost.js [--messages 20000000] [--repeat 5]
 */
import { parseArgs } from 'node:util';
import { countBatch, countCompleted, countPosted } from '../src/core/counters.js';
import { Overlapped } from '../src/core/overlapped.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000000' },
    repeat: { type: 'string', default: '5' },
  },
});
const messages = Number(values.messages);
const repeat = Number(values.repeat);

const recv = new Overlapped();
recv.operation = 'recv';
recv.bytes = 64;
recv.requested = 8192;
const send = new Overlapped();
send.operation = 'send';
send.bytes = 64;
send.requested = 64;

/** One echoed message's counting: recv posted and completed, send posted and completed; a batch per 6. */
function run(n: number): number {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    countPosted(1, 'recv', 8192);
    countCompleted(1, recv);
    countPosted(1, 'send', 64);
    countCompleted(1, send);
    if (i % 6 === 0) countBatch(1, 6);
  }
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / n;
}

run(1_000_000);
const results: number[] = [];
for (let r = 0; r < repeat; r++) results.push(run(messages));
results.sort((a, b) => a - b);
console.log(
  `counting per echoed message: median ${(results[Math.floor(results.length / 2)] as number).toFixed(1)} ns (runs: ${results.map((x) => x.toFixed(1)).join(', ')} ns)`,
);
