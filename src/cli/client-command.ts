import { Command } from 'commander';
import { CompletionPort } from '../core/completion-port.js';
import { Overlapped } from '../core/overlapped.js';
import { TcpSocket } from '../core/tcp-socket.js';
import { chooseEngine } from '../engines/select.js';
import { ECHO_DEFAULTS } from '../servers/echo/echo-server.js';
import { explainOsError } from './os-error-hints.js';
import { parsePortFlag, UserError } from './user-error.js';

interface ClientFlags {
  host: string;
  port: number;
}

/** `overlapped client`: talks to an echo server, itself written on the completion-port API. */
export function createClientCommand(): Command {
  return new Command('client')
    .description(
      'connect to an echo server: send each message and print its echo, ' +
        'or with no messages relay stdin to the server and the replies to stdout',
    )
    .argument('[message...]', 'messages to send, one after another')
    .option('--host <host>', 'server address', ECHO_DEFAULTS.host)
    .option(
      '--port <port>',
      'server port',
      (v: string) => parsePortFlag(v, false),
      ECHO_DEFAULTS.port,
    )
    .action(async (messages: string[], flags: ClientFlags) => {
      const client = await EchoClient.connect(flags.host, flags.port);
      try {
        if (messages.length > 0) {
          for (const message of messages) {
            process.stdout.write(`${(await client.transact(Buffer.from(message))).toString()}\n`);
          }
        } else {
          await client.relay(process.stdin, process.stdout);
        }
      } finally {
        client.close();
      }
    });
}

/**
 * One connection driven through a completion port: each step posts an
 * operation and waits for its completion, as a single worker would.
 */
class EchoClient {
  readonly #port = new CompletionPort<'client'>({ concurrency: 1 });
  readonly #socket: TcpSocket;
  readonly #recvOv = new Overlapped();
  readonly #sendOv = new Overlapped();
  readonly #buffer = Buffer.allocUnsafe(64 * 1024);

  private constructor(socket: TcpSocket) {
    this.#socket = socket;
    this.#port.associate(socket, 'client');
  }

  static async connect(host: string, port: number): Promise<EchoClient> {
    const ov = new Overlapped();
    const client = new EchoClient(
      TcpSocket.connect({ engine: chooseEngine().engine, host, port }, ov),
    );
    const c = await client.#port.dequeue();
    if (c?.error) {
      client.close();
      throw explainOsError(c.error, host, port);
    }
    return client;
  }

  /** Sends `message` and reads until as many bytes have come back. */
  async transact(message: Buffer): Promise<Buffer> {
    await this.#send(message);
    const reply = Buffer.allocUnsafe(message.length);
    let got = 0;
    while (got < reply.length) {
      const n = await this.#recv(reply.subarray(got));
      if (n === 0)
        throw new UserError('the server closed the connection before echoing everything', 1);
      got += n;
    }
    return reply;
  }

  /** Copies `input` to the server and the server's bytes to `output` until both sides end. */
  async relay(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<void> {
    const pump = (async () => {
      for await (const chunk of input) await this.#send(chunk as Buffer);
      const ov = this.#sendOv;
      this.#socket.shutdown(ov);
      await this.#next(ov);
    })();
    for (;;) {
      const n = await this.#recv(this.#buffer);
      if (n === 0) break;
      output.write(Buffer.from(this.#buffer.subarray(0, n)));
    }
    await pump;
  }

  close(): void {
    this.#socket.close();
    this.#port.close();
  }

  async #send(data: Buffer): Promise<void> {
    let sent = 0;
    while (sent < data.length) {
      this.#socket.send(data.subarray(sent), this.#sendOv);
      sent += await this.#next(this.#sendOv);
    }
  }

  async #recv(into: Buffer): Promise<number> {
    this.#socket.recv(into, this.#recvOv);
    return this.#next(this.#recvOv);
  }

  /** Waits for `ov`'s completion; the relay has a send and a recv in flight at once. */
  #next(ov: Overlapped): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#waiting.set(ov, { resolve, reject });
      this.#pump();
    });
  }

  readonly #waiting = new Map<
    Overlapped,
    { resolve: (n: number) => void; reject: (e: Error) => void }
  >();
  #pumping = false;

  /** The single worker loop: hands each completion to whoever waits for its Overlapped. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#waiting.size > 0) {
        const c = await this.#port.dequeue();
        const ov = c?.overlapped as Overlapped | null;
        const waiter = ov ? this.#waiting.get(ov) : undefined;
        if (ov === null || ov === undefined || waiter === undefined) continue;
        this.#waiting.delete(ov);
        if (c?.error) waiter.reject(explainConnectionError(c.error));
        else waiter.resolve(c?.bytes ?? 0);
      }
    } finally {
      this.#pumping = false;
    }
  }
}

function explainConnectionError(error: Error): Error {
  const code = (error as { code?: string }).code ?? 'error';
  return new UserError(`the connection failed (${code}): ${error.message}`, 1);
}
