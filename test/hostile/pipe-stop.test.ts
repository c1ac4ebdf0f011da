/**
 * The pipe server's graceful stop loses no request: clients pipeline 200
 * requests each and the server is stopped at once, while most of them are
 * still unread in the kernel; every request gets its reply, then the
 * connection ends cleanly (no reset), and the server counted every request.
 * A client that never reads is reset at the deadline. Every engine.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import type { Engine } from '../../src/engines/contract.js';
import { PipeServer } from '../../src/servers/pipe/pipe-server.js';
import { closed, delay } from '../support/echo-fixture.js';
import { enginesUnderTest } from '../support/engines.js';
import { frame, tempPipeDir, unixOnly } from '../support/pipe-fixture.js';

const REQUESTS = 200;
const CLIENTS = 10;

/** Splits a stream of frames; counts data frames and checks each is the reply to request `i`. */
function replies(socket: net.Socket, id: number) {
  const state = {
    data: 0,
    wrong: null as string | null,
    ended: false,
    error: null as Error | null,
  };
  let buf = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4) {
      const header = buf.readUInt32BE(0);
      const length = header & 0x7fff_ffff;
      if (buf.length < 4 + length) break;
      const body = buf.subarray(4, 4 + length).toString();
      buf = buf.subarray(4 + length);
      if ((header & 0x8000_0000) !== 0) continue; // READY
      const expected = `client ${id} request ${state.data} `.padEnd(1024, '.');
      if (body !== expected && state.wrong === null)
        state.wrong = `reply ${state.data}: ${body.slice(0, 40)}`;
      state.data++;
    }
  });
  socket.on('end', () => {
    state.ended = true;
  });
  socket.on('error', (err) => {
    state.error = err;
  });
  return state;
}

describe('pipe server: a graceful stop answers every request already sent', {
  skip: unixOnly,
}, () => {
  for (const e of enginesUnderTest()) {
    const engine = e.engine as Engine;
    const skip = e.skip ?? false;

    test(`${e.name}: ${CLIENTS} clients x ${REQUESTS} pipelined requests, stop at once: every reply, then a clean end`, {
      skip,
    }, async () => {
      const tmp = tempPipeDir();
      const server = await PipeServer.start({
        engine,
        name: tmp.path(),
        handler: (request) => Buffer.from(request),
      });
      const sockets: net.Socket[] = [];
      try {
        const states = [];
        for (let c = 0; c < CLIENTS; c++) {
          const socket = net.connect({ path: server.path });
          sockets.push(socket);
          states.push(replies(socket, c));
          await new Promise((r) => socket.once('connect', r));
          const all = [];
          for (let i = 0; i < REQUESTS; i++) {
            all.push(frame(Buffer.from(`client ${c} request ${i} `.padEnd(1024, '.'))));
          }
          socket.write(Buffer.concat(all));
        }
        await delay(5);
        await server.stop({ deadlineMs: 5000 });
        await Promise.all(sockets.map((s) => closed(s, 5000)));
        for (const [c, st] of states.entries()) {
          assert.equal(st.wrong, null);
          assert.equal(st.error, null, `client ${c}: ${st.error?.message}`);
          assert.equal(st.data, REQUESTS, `client ${c}: ${st.data} of ${REQUESTS} replies`);
          assert.ok(st.ended, `client ${c}: no clean end of stream`);
        }
        assert.equal(server.transactions, CLIENTS * REQUESTS);
        assert.equal(server.resetAtStop, 0);
      } finally {
        for (const s of sockets) s.destroy();
        tmp.remove();
      }
    });

    test(`${e.name}: a client that never reads is reset at the deadline; the stop ends within it + 1 s`, {
      skip,
    }, async () => {
      const tmp = tempPipeDir();
      const server = await PipeServer.start({
        engine,
        name: tmp.path(),
        handler: (request) => Buffer.from(request),
        writeTimeoutMs: 0,
      });
      const socket = net.connect({ path: server.path });
      socket.on('error', () => {});
      try {
        socket.pause();
        const request = frame(Buffer.alloc(60_000, 1));
        for (let i = 0; i < 300; i++) socket.write(request);
        await delay(300);
        const t0 = performance.now();
        await server.stop({ deadlineMs: 1000 });
        const took = performance.now() - t0;
        assert.ok(took >= 900 && took < 2000, `the stop took ${took.toFixed(0)} ms`);
        assert.equal(server.resetAtStop, 1);
      } finally {
        socket.destroy();
        tmp.remove();
      }
    });
  }
});
