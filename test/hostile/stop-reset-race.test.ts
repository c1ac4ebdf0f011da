/**
 * A stop whose deadline finds every connection busy: 30 clients stream and
 * never stop, so each one is reset when the 200 ms deadline passes. The
 * completions already queued when the reset happens (a send that finished, a
 * recv that brought bytes) still come out of the port afterwards; the server
 * must end those connections rather than post on a closed socket (it used to
 * throw `OVL_ERR_HANDLE_CLOSED` out of its worker loop). The overlapped
 * models, whose next operation is posted from the completion, on every engine.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type EchoModel, startEchoServer } from '../../src/servers/echo/echo-models.js';
import { closed, connectClient, delay, destroyAll } from '../support/echo-fixture.js';
import { enginesUnderTest } from '../support/engines.js';
import { type StreamingClient, stream } from '../support/streaming-client.js';

const MODELS: EchoModel[] = ['completion-port', 'events', 'routines'];

for (const e of enginesUnderTest()) {
  describe(`stop deadline resets busy connections on ${e.name}`, { skip: e.skip ?? false }, () => {
    for (const model of MODELS) {
      test(`${model}: 30 clients still streaming at the deadline are all reset, and the server survives`, async () => {
        const server = await startEchoServer({
          model,
          engine: e.engine as NonNullable<typeof e.engine>,
          host: '127.0.0.1',
          port: 0,
        });
        const clients: StreamingClient[] = [];
        try {
          for (let i = 0; i < 30; i++) {
            clients.push(stream(await connectClient(server.address.port), i));
          }
          await delay(200);
          await server.stop({ deadlineMs: 200 });
          assert.equal(server.connections, 0);
          assert.equal(server.resetAtStop, 30);
          await Promise.all(clients.map((c) => closed(c.socket, 5000)));
          for (const c of clients) assert.equal(c.wrong, null);
        } finally {
          await destroyAll(clients.map((c) => c.socket));
        }
      });
    }
  });
}
