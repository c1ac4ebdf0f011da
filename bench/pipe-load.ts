/**
 * Closed-loop request/reply load on a framed pipe (docs/pipes.md), in its own
 * process so it can be pinned to its own core: `clients` connections, one
 * request in flight each; every reply is checked for its framing.
 *
 * Usage: node dist/bench/pipe-load.js '<{"path","clients","size","durationSec","warmupSec","serverPid"}>'
 * Prints one JSON report on stdout.
 */
import { connect, type Socket } from 'node:net';
import { LatencyRecorder } from '../src/load/latency-recorder.js';
import { readProcessCpuUs } from '../src/load/server-cpu.js';

interface Options {
  path: string;
  clients: number;
  size: number;
  durationSec: number;
  warmupSec: number;
  serverPid: number;
}

export interface PipeLoadReport {
  roundTrips: number;
  roundTripsPerSec: number;
  p50Us: number;
  p99Us: number;
  serverCpuUsPerRoundTrip: number;
  errors: number;
  durationSec: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const recorder = await LatencyRecorder.create();
let measuring = false;
let stopping = false;
let roundTrips = 0;
let errors = 0;

function client(): Promise<void> {
  return new Promise((resolve) => {
    const payload = Buffer.alloc(options.size, 0x61);
    const request = Buffer.allocUnsafe(4 + payload.length);
    request.writeUInt32BE(payload.length, 0);
    payload.copy(request, 4);
    const socket: Socket = connect(options.path);
    let pending: Buffer = Buffer.alloc(0);
    let ready = false;
    let sentAt = 0;
    const send = () => {
      if (stopping) {
        socket.end();
        resolve();
        return;
      }
      sentAt = performance.now();
      socket.write(request);
    };
    socket.on('error', () => {
      errors++;
      resolve();
    });
    socket.on('close', () => resolve());
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 4) {
        const header = pending.readUInt32BE(0);
        const length = header & 0x7fffffff;
        if (pending.length < 4 + length) return;
        pending = pending.subarray(4 + length);
        if (header & 0x80000000) {
          if (!ready) {
            ready = true;
            send();
          } else {
            errors++;
          }
          continue;
        }
        if (measuring) {
          roundTrips++;
          recorder.record((performance.now() - sentAt) * 1000, 1);
        }
        send();
      }
    });
  });
}

const running = Array.from({ length: options.clients }, client);
await new Promise((r) => setTimeout(r, options.warmupSec * 1000));
measuring = true;
const cpu0 = readProcessCpuUs(options.serverPid);
const t0 = performance.now();
await new Promise((r) => setTimeout(r, options.durationSec * 1000));
const cpu1 = readProcessCpuUs(options.serverPid);
const seconds = (performance.now() - t0) / 1000;
measuring = false;
const measured = roundTrips;
stopping = true;
await Promise.race([Promise.all(running), new Promise((r) => setTimeout(r, 3000))]);
const latency = recorder.summary();
const report: PipeLoadReport = {
  roundTrips: measured,
  roundTripsPerSec: measured / seconds,
  p50Us: latency.p50,
  p99Us: latency.p99,
  serverCpuUsPerRoundTrip: measured === 0 ? 0 : (cpu1 - cpu0) / measured,
  errors,
  durationSec: seconds,
};
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);
