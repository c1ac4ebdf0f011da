import { Command, Option } from 'commander';
import { CompletionPort } from '../core/completion-port.js';
import { OverlappedError } from '../core/errors.js';
import { hostPort } from '../core/host-address.js';
import { Overlapped } from '../core/overlapped.js';
import { TcpSocket } from '../core/tcp-socket.js';
import type { EngineName } from '../engines/select.js';
import { ECHO_DEFAULTS } from '../servers/echo/echo-server.js';
import { explainOsError } from './os-error-hints.js';
import { engineOption, hostOption } from './server-options.js';
import { parseIntegerFlag, parsePortFlag, UserError } from './user-error.js';

interface ClientFlags {
  host: string;
  port: number;
  engine?: EngineName;
  timeout: number;
}

/** Default `--timeout`: long enough for any echo on a working network, short enough to notice a server that never answers. */
const DEFAULT_TIMEOUT_MS = 5000;

/** `overlapped client`: talks to an echo server, itself written on the completion-port API. */
export function createClientCommand(): Command {
  return new Command('client')
    .description(
      'connect to an echo server: send each message and print its echo, ' +
        'or with no messages relay stdin to the server and the replies to stdout',
    )
    .argument('[message...]', 'messages to send, one after another')
    .addOption(hostOption('server address', ECHO_DEFAULTS.host))
    .option(
      '--port <port>',
      'server port',
      (v: string) => parsePortFlag(v, false),
      ECHO_DEFAULTS.port,
    )
    .addOption(
      new Option(
        '--timeout <ms>',
        'how long to wait for the server: to connect, for each echo, and for the rest of the echo once stdin ends (0 waits forever)',
      )
        .default(DEFAULT_TIMEOUT_MS)
        .argParser((v: string) => parseIntegerFlag('--timeout', v, 0, 3_600_000)),
    )
    .addOption(engineOption())
    .action(async (messages: string[], flags: ClientFlags) => {
      const client = await EchoClient.connect(flags);
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

/** OS errors that mean the server closed or reset the connection under us. */
const CLOSED_BY_PEER = new Set(['ECONNRESET', 'EPIPE', 'ENOTCONN', 'ECONNABORTED']);

function isAborted(error: Error | null): boolean {
  return error instanceof OverlappedError && error.code === 'OVL_ERR_ABORTED';
}

/**
 * One connection driven through a completion port: each step posts an
 * operation and waits for its completion, as a single worker would.
 *
 * The timeout is a cancel: when it passes, the waiting operation is
 * cancelled (CancelIoEx), completes with OVL_ERR_ABORTED, and that
 * completion is reported as the timeout.
 */
class EchoClient {
  readonly #port = new CompletionPort<'client'>({ concurrency: 1 });
  readonly #socket: TcpSocket;
  readonly #recvOv = new Overlapped();
  readonly #sendOv = new Overlapped();
  readonly #buffer = Buffer.allocUnsafe(64 * 1024);
  readonly #where: string;
  readonly #timeoutMs: number;
  /** Operations are timed only while this is set (not while stdin may still bring more). */
  #timed = false;
  readonly #timers = new Map<Overlapped, ReturnType<typeof setTimeout>>();
  #timedOut = false;

  private constructor(socket: TcpSocket, where: string, timeoutMs: number) {
    this.#socket = socket;
    this.#where = where;
    this.#timeoutMs = timeoutMs;
    this.#port.associate(socket, 'client');
  }

  static async connect(flags: ClientFlags): Promise<EchoClient> {
    const { host, port } = flags;
    const ov = new Overlapped();
    const client = new EchoClient(
      TcpSocket.connect({ engine: flags.engine, host, port }, ov),
      hostPort(host, port),
      flags.timeout,
    );
    client.#timed = true;
    try {
      await client.#next(ov);
    } catch (err) {
      client.close();
      if (err instanceof TimedOut) {
        throw new UserError(
          `could not connect to ${client.#where} within ${flags.timeout} ms (--timeout): check --host/--port and the network`,
          1,
        );
      }
      throw explainOsError((err as ConnectionError).cause ?? err, host, port);
    }
    return client;
  }

  /** Sends `message` and reads until as many bytes have come back. */
  async transact(message: Buffer): Promise<Buffer> {
    try {
      await this.#send(message);
      const reply = Buffer.allocUnsafe(message.length);
      let got = 0;
      while (got < reply.length) {
        const n = await this.#recv(reply.subarray(got));
        if (n === 0) {
          throw new UserError(
            `the server closed the connection after echoing ${got} of ${reply.length} bytes`,
            1,
          );
        }
        got += n;
      }
      return reply;
    } catch (err) {
      throw this.#explain(err);
    }
  }

  /** Copies `input` to the server and the server's bytes to `output` until both sides end. */
  async relay(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<void> {
    this.#timed = false;
    let inputEnded = false;
    const pump = (async () => {
      for await (const chunk of input) {
        await this.#send(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      }
      inputEnded = true;
      // Nothing more will come from stdin: from here on the server must answer in time.
      this.#startTiming();
      this.#socket.shutdown(this.#sendOv);
      await this.#next(this.#sendOv);
    })();
    // Its failure is reported below; the echo loop usually sees the same close first.
    pump.catch(() => {});
    try {
      for (;;) {
        const n = await this.#recv(this.#buffer);
        if (n === 0) break;
        output.write(Buffer.from(this.#buffer.subarray(0, n)));
      }
      if (!inputEnded) {
        throw new UserError('the server closed the connection before stdin ended', 1);
      }
      await pump;
    } catch (err) {
      throw this.#explain(err);
    }
  }

  close(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#socket.close();
    this.#port.close();
  }

  /** A one-line reason for a failed step. */
  #explain(err: unknown): unknown {
    if (err instanceof TimedOut) {
      return new UserError(
        `no echo from ${this.#where} within ${this.#timeoutMs} ms (--timeout): is it an echo server? (--timeout 0 waits forever)`,
        1,
      );
    }
    if (err instanceof ConnectionError) {
      const code = (err.cause as { code?: string }).code ?? 'error';
      if (CLOSED_BY_PEER.has(code)) {
        return new UserError('the server closed the connection', 1);
      }
      return new UserError(`the connection failed (${code}): ${err.cause.message}`, 1);
    }
    return err;
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

  /** Times every operation from now on, those already waiting included. */
  #startTiming(): void {
    this.#timed = true;
    for (const ov of this.#waiting.keys()) this.#arm(ov);
  }

  #arm(ov: Overlapped): void {
    if (!this.#timed || this.#timeoutMs === 0 || this.#timers.has(ov)) return;
    this.#timers.set(
      ov,
      setTimeout(() => {
        this.#timedOut = true;
        this.#socket.cancel(ov);
      }, this.#timeoutMs),
    );
  }

  /** Waits for `ov`'s completion; the relay has a send and a recv in flight at once. */
  #next(ov: Overlapped): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#waiting.set(ov, { resolve, reject });
      this.#arm(ov);
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
        let c: Awaited<ReturnType<CompletionPort<'client'>['dequeue']>>;
        try {
          c = await this.#port.dequeue();
        } catch (err) {
          // close() while operations were still waiting (a failure elsewhere ended the run).
          for (const waiter of this.#waiting.values()) waiter.reject(err as Error);
          this.#waiting.clear();
          return;
        }
        const ov = c?.overlapped as Overlapped | null;
        const waiter = ov ? this.#waiting.get(ov) : undefined;
        if (ov === null || ov === undefined || waiter === undefined) continue;
        this.#waiting.delete(ov);
        clearTimeout(this.#timers.get(ov));
        this.#timers.delete(ov);
        const error = c?.error ?? null;
        if (error === null) waiter.resolve(c?.bytes ?? 0);
        else if (isAborted(error) && this.#timedOut) waiter.reject(new TimedOut());
        else waiter.reject(new ConnectionError(error));
      }
    } finally {
      this.#pumping = false;
    }
  }
}

/** An operation was cancelled because `--timeout` passed. */
class TimedOut extends Error {}

/** An operation completed with an error; `cause` is the completion's error. */
class ConnectionError extends Error {
  override readonly cause: Error;
  constructor(cause: Error) {
    super(cause.message);
    this.cause = cause;
  }
}
