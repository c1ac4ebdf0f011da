/**
 * The echo server on the session framework: every byte that arrives is
 * sent back (`session.send` copies the receive view, which is valid only
 * during the hook). The handler module of `overlapped echo --threads N`: each
 * worker thread imports it (src/threads/).
 */
import type { SessionHandlers } from '../session/session-server.js';

export default function echoHandlers(): SessionHandlers {
  return {
    onReceive(session, bytes) {
      session.send(bytes);
    },
  };
}
