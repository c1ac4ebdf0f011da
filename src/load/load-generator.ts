/**
 * Closed-loop echo load generator behind `overlapped load`.
 *
 * It measures the toolkit, so it is built on plain `node:net` client sockets and
 * never on the toolkit's own core. Each connection keeps `depth` messages of `size`
 * bytes in flight; a message counts once all of its bytes have come back identical
 * to what was sent, and only then is the next one sent in its place.
 *
 * The generator must not be the bottleneck, so the hot path does per-chunk work,
 * not per-byte or per-message work where it can: one clock read per received
 * chunk, one native range comparison per contiguous stretch of the ring, and one
 * write (two when the ring wraps) per chunk for all the messages it completed.
 */
import { randomFillSync } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { LatencyRecorder, type LatencySummary } from './latency-recorder.js';
import { readProcessCpuUs } from './server-cpu.js';
import { countProcessFds, readProcessRssBytes } from './server-memory.js';

export interface LoadOptions {
  /** Server address; default '127.0.0.1'. */
  host?: string;
  port: number;
  /** Concurrent connections, all opened before any message is sent. */
  conns: number;
  /** Bytes per message, at least 1. */
  size: number;
  /** Messages in flight per connection, at least 1. */
  depth: number;
  /** Length of the measured window in seconds (fractions allowed). */
  durationSec: number;
  /** Seconds of load before the measured window whose messages are not counted; default 0. */
  warmupSec?: number;
  /** Per-connection connect timeout; default 5000 ms. */
  connectTimeoutMs?: number;
  /**
   * Process whose CPU time (from /proc) is reported across the measured window, and
   * whose resident memory is sampled idle, with every connection open, and at the
   * end of the window (see {@link ServerRssSamples}).
   */
  serverPid?: number;
}

/**
 * Resident memory (VmRSS) of `serverPid` at three points of a run, so that a benchmark
 * can tell what each open connection costs the server: (connectedBytes - idleBytes) / conns.
 */
export interface ServerRssSamples {
  /** Before the first connection was opened: the server idle. */
  idleBytes: number;
  /** With every connection open (see `allAccepted`), before any message was sent. */
  connectedBytes: number;
  /** At the end of the measured window; absent if the run ended before the window. */
  endBytes?: number;
  /**
   * True if, before `connectedBytes` was read, the server was seen holding `conns` more
   * file descriptors than when idle, i.e. it had accepted every connection and not
   * merely let the kernel complete them into its listen backlog. False if that was not
   * seen within a short wait: then `connectedBytes` may miss some connections (a server
   * using io_uring direct descriptors, for one, has sockets that /proc does not list).
   */
  allAccepted: boolean;
}

export type LoadPhase = 'connecting' | 'warmup' | 'measuring' | 'draining';

export interface LoadProgress {
  phase: LoadPhase;
  /** Seconds since the first message was sent (0 while connecting). */
  elapsedSec: number;
  /** Messages counted so far in the measured window. */
  messages: number;
  /** Messages completed per second since the previous snapshot, warm-up included. */
  messagesPerSec: number;
}

export interface LoadHooks {
  /** Called about once per second. */
  onProgress?(snapshot: LoadProgress): void;
  /** Ends the run early; the promise still resolves with the report so far. */
  signal?: AbortSignal;
}

export interface LoadReport {
  host: string;
  port: number;
  conns: number;
  size: number;
  depth: number;
  /** Actual length of the measured window in seconds (shorter if aborted). */
  durationSec: number;
  /** Messages echoed back intact within the measured window. */
  messages: number;
  messagesPerSec: number;
  /** Payload bytes echoed per second, in units of 1e6 bytes. */
  mbPerSec: number;
  /** Round trip from the write of a message to the arrival of its last byte. */
  latencyUs: LatencySummary;
  /** Connections lost to a socket error or an unexpected close. */
  errors: number;
  /** Connections closed because echoed data differed from what was sent. */
  mismatches: number;
  /** Where the first mismatch of the run was, when there was one. */
  firstMismatch?: MismatchDetail;
  /** Bytes that came back over the whole run (warm-up and drain included): tells "no echo" from "partial echoes". */
  bytesReceived: number;
  /** True if the run was stopped (the abort signal) before its measured window was over. */
  stoppedEarly: boolean;
  /** The phase the early stop came in; with 'connecting' or 'warmup' nothing was measured. */
  stoppedIn?: LoadPhase;
  /** User+system CPU of `serverPid` across the measured window, when it was given and readable. */
  serverCpuUs?: number;
  serverCpuUsPerMessage?: number;
  /** User+system CPU of the generator itself across the measured window. */
  generatorCpuUs?: number;
  /** Resident memory of `serverPid`, when it was given and readable. */
  serverRss?: ServerRssSamples;
}

/**
 * The first byte that came back wrong. `expected` is undefined when the byte
 * came back beyond what had been sent (the server duplicated or invented data).
 */
export interface MismatchDetail {
  /** Connection number, from 1, in connect order. */
  connection: number;
  /** Message number on that connection, from 1. */
  message: number;
  /** Offset of the wrong byte within that message, from 0. */
  offset: number;
  expected?: number;
  actual: number;
}

/** A connection could not be opened; the run was aborted before any load was sent. */
export class LoadConnectError extends Error {
  override readonly name = 'LoadConnectError';

  constructor(
    message: string,
    /** The system error code, e.g. ECONNREFUSED, or ETIMEDOUT for the connect timeout. */
    readonly code: string,
    readonly host: string,
    readonly port: number,
  ) {
    super(message);
  }
}

/** Upper bound on conns × depth × size: every message in flight has its own buffer. */
export const MAX_MESSAGE_BUFFER_BYTES = 1024 * 1024 * 1024;

/** Connections opened concurrently, so that thousands do not overrun the listen backlog. */
const CONNECT_BATCH = 100;
/** How long in-flight messages may take to come back once the measured window ends. */
const DRAIN_MS = 2000;
/** How long a graceful close may take before the socket is destroyed. */
const CLOSE_MS = 1000;
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
/**
 * How long to wait, once connected, for the server to have accepted every connection.
 * A burst of connects can overflow the listen queue; the kernel then drops the final
 * ACK and the server retransmits its SYN-ACK after 1 s and again 2 s later, so a
 * connection the client already counts as open may reach accept() 3 s or more later.
 */
const ACCEPT_WAIT_MS = 8000;
const ACCEPT_POLL_MS = 10;
/**
 * Then RSS is read once the server used no CPU for this long (at most SETTLE_MAX_MS):
 * with io_uring the kernel installs accepted descriptors before the server's code has
 * seen them, so a full descriptor count can come before the per-connection state.
 */
const SETTLE_QUIET_MS = 100;
const SETTLE_MAX_MS = 3000;

interface Settings {
  host: string;
  port: number;
  conns: number;
  size: number;
  depth: number;
  durationSec: number;
  warmupSec: number;
  connectTimeoutMs: number;
  serverPid: number | undefined;
}

/**
 * Runs the load described by `options`. Rejects with a RangeError for invalid options
 * (or a serverPid whose CPU time cannot be read), and with a LoadConnectError if any
 * connection fails to open; once the load has started it always resolves.
 */
export async function runLoad(options: LoadOptions, hooks: LoadHooks = {}): Promise<LoadReport> {
  const settings = validate(options);
  if (settings.serverPid !== undefined) {
    try {
      readProcessCpuUs(settings.serverPid);
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new RangeError(
        `cannot read the CPU time of server process ${settings.serverPid} from /proc (${reason}): is it running?`,
      );
    }
  }
  const latency = await LatencyRecorder.create();
  try {
    return await new LoadRun(settings, latency, hooks).execute();
  } finally {
    latency.destroy();
  }
}

function validate(options: LoadOptions): Settings {
  const host = options.host ?? '127.0.0.1';
  const warmupSec = options.warmupSec ?? 0;
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const wholeAtLeast = (
    name: string,
    value: number,
    min: number,
    max = Number.MAX_SAFE_INTEGER,
  ) => {
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new RangeError(`${name} must be a whole number from ${min} to ${max}, got ${value}`);
    }
  };
  wholeAtLeast('port', options.port, 1, 65535);
  wholeAtLeast('conns', options.conns, 1);
  wholeAtLeast('size', options.size, 1);
  wholeAtLeast('depth', options.depth, 1);
  if (!(Number.isFinite(options.durationSec) && options.durationSec > 0)) {
    throw new RangeError(`durationSec must be a positive number, got ${options.durationSec}`);
  }
  if (!(Number.isFinite(warmupSec) && warmupSec >= 0)) {
    throw new RangeError(`warmupSec must be zero or a positive number, got ${warmupSec}`);
  }
  if (!(Number.isFinite(connectTimeoutMs) && connectTimeoutMs > 0)) {
    throw new RangeError(`connectTimeoutMs must be a positive number, got ${connectTimeoutMs}`);
  }
  if (options.serverPid !== undefined) wholeAtLeast('serverPid', options.serverPid, 1);
  const bufferBytes = options.conns * options.depth * options.size;
  if (bufferBytes > MAX_MESSAGE_BUFFER_BYTES) {
    throw new RangeError(
      `conns × depth × size is ${Math.ceil(bufferBytes / 2 ** 20)} MiB of message buffers, ` +
        `more than the ${MAX_MESSAGE_BUFFER_BYTES / 2 ** 20} MiB allowed: lower conns, depth or size`,
    );
  }
  return {
    host,
    port: options.port,
    conns: options.conns,
    size: options.size,
    depth: options.depth,
    durationSec: options.durationSec,
    warmupSec,
    connectTimeoutMs,
    serverPid: options.serverPid,
  };
}

class LoadRun {
  readonly connections: EchoConnection[] = [];
  /** Completed messages count (and their latency is recorded) only while this is set. */
  measuring = false;
  /** Completed messages are replaced by new ones only while this is set. */
  sending = false;
  phase: LoadPhase = 'connecting';
  messages = 0;
  /** Every completed message, warm-up and drain included; drives the progress rate. */
  completedTotal = 0;
  errors = 0;
  mismatches = 0;
  firstMismatch: MismatchDetail | undefined;
  bytesReceived = 0;
  alive = 0;
  /** While draining: live connections that still have bytes in flight. */
  draining = 0;
  /** Filled in as the run goes; dropped if the server's memory cannot be read. */
  private rss: Partial<ServerRssSamples> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    readonly settings: Settings,
    readonly latency: LatencyRecorder,
    private readonly hooks: LoadHooks,
  ) {}

  async execute(): Promise<LoadReport> {
    const { signal } = this.hooks;
    const onAbort = () => this.wake?.();
    signal?.addEventListener('abort', onAbort);
    let startedAt = 0;
    let lastProgressAt = 0;
    let lastCompleted = 0;
    const progress = setInterval(() => {
      const now = performance.now();
      const seconds = (now - lastProgressAt) / 1000;
      this.hooks.onProgress?.({
        phase: this.phase,
        elapsedSec: startedAt === 0 ? 0 : (now - startedAt) / 1000,
        messages: this.messages,
        messagesPerSec: seconds > 0 ? (this.completedTotal - lastCompleted) / seconds : 0,
      });
      lastProgressAt = now;
      lastCompleted = this.completedTotal;
    }, 1000);
    try {
      const idleFds = this.sampleIdleServer();
      await this.connectAll();
      if (signal?.aborted) return this.report(0, 0, undefined, undefined, 'connecting');
      await this.sampleConnectedServer(idleFds);

      startedAt = performance.now();
      lastProgressAt = startedAt;
      this.sending = true;
      for (const conn of this.connections) conn.start(startedAt);
      if (this.settings.warmupSec > 0) {
        this.phase = 'warmup';
        await this.sleep(this.settings.warmupSec * 1000);
      }

      let windowStart = 0;
      let windowEnd = 0;
      let serverCpuUs: number | undefined;
      let generatorCpuUs: number | undefined;
      let stoppedIn: LoadPhase | undefined = signal?.aborted ? this.phase : undefined;
      if (!signal?.aborted && this.alive > 0) {
        const serverCpuStart = this.serverCpuUs();
        const ownCpuStart = process.cpuUsage();
        windowStart = performance.now();
        this.phase = 'measuring';
        this.measuring = true;
        await this.sleep(this.settings.durationSec * 1000);
        this.measuring = false;
        windowEnd = performance.now();
        if (signal?.aborted) stoppedIn = 'measuring';
        const serverCpuEnd = this.serverCpuUs();
        const ownCpu = process.cpuUsage(ownCpuStart);
        if (this.rss !== undefined) this.rss.endBytes = this.serverRssBytes();
        if (serverCpuStart !== undefined && serverCpuEnd !== undefined) {
          serverCpuUs = serverCpuEnd - serverCpuStart;
        }
        generatorCpuUs = ownCpu.user + ownCpu.system;
      }

      this.phase = 'draining';
      this.sending = false;
      await this.drain();
      return this.report(windowStart, windowEnd, serverCpuUs, generatorCpuUs, stoppedIn);
    } finally {
      clearInterval(progress);
      signal?.removeEventListener('abort', onAbort);
      await this.closeAll();
    }
  }

  /** Opens every connection, CONNECT_BATCH at a time; the first failure aborts the run. */
  private async connectAll(): Promise<void> {
    const { conns, connectTimeoutMs } = this.settings;
    const pending: Socket[] = [];
    try {
      for (let first = 0; first < conns; first += CONNECT_BATCH) {
        if (this.hooks.signal?.aborted) return;
        const batch: Promise<void>[] = [];
        for (let i = first; i < Math.min(first + CONNECT_BATCH, conns); i++) {
          batch.push(this.connectOne(i, connectTimeoutMs, pending));
        }
        await Promise.all(batch);
      }
    } catch (err) {
      for (const socket of pending) socket.destroy();
      throw err;
    }
  }

  private connectOne(index: number, timeoutMs: number, pending: Socket[]): Promise<void> {
    const { host, port, conns } = this.settings;
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      pending.push(socket);
      let settled = false;
      const fail = (code: string, detail: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        const message = connectFailureMessage(code, detail, host, port, index, conns, timeoutMs);
        reject(new LoadConnectError(message, code, host, port));
      };
      const onError = (err: NodeJS.ErrnoException) => fail(err.code ?? 'EIO', err.message);
      // Also settles the sockets destroyed because another connection failed first.
      const onClose = () => fail('ECONNABORTED', 'closed before it was connected');
      const timer = setTimeout(() => fail('ETIMEDOUT', 'timed out'), timeoutMs);
      socket.once('error', onError);
      socket.once('close', onClose);
      socket.once('connect', () => {
        settled = true;
        clearTimeout(timer);
        socket.off('error', onError);
        socket.off('close', onClose);
        socket.setNoDelay(true);
        this.connections.push(new EchoConnection(this, socket, index + 1));
        this.alive++;
        resolve();
      });
    });
  }

  /** Sleeps for `ms`, waking early on abort or when no connection is left. */
  private sleep(ms: number): Promise<void> {
    if (this.hooks.signal?.aborted || this.alive === 0) return Promise.resolve();
    return this.wakeableDelay(ms);
  }

  /** Resolves after `ms`, or earlier when `wake()` is called. */
  private wakeableDelay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.wake = undefined;
        resolve();
      }
      this.wake = done;
    });
  }

  /** Waits (bounded by DRAIN_MS) for the messages still in flight, which are not counted. */
  private async drain(): Promise<void> {
    this.draining = 0;
    for (const conn of this.connections) if (conn.alive && conn.inflightBytes > 0) this.draining++;
    if (this.draining === 0) return;
    await this.wakeableDelay(DRAIN_MS);
  }

  /** A connection stopped having bytes in flight during the drain, or died. */
  connectionSettled(): void {
    if (this.phase === 'draining' && --this.draining === 0) this.wake?.();
  }

  connectionLost(): void {
    if (--this.alive === 0) this.wake?.();
  }

  private async closeAll(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const conn of this.connections) closing.push(conn.close(CLOSE_MS));
    await Promise.all(closing);
  }

  /**
   * Reads the idle server's RSS and returns how many descriptors it has open, or
   * undefined if they cannot be counted. Leaves `rss` unset if there is no serverPid
   * or its memory cannot be read.
   */
  private sampleIdleServer(): number | undefined {
    const pid = this.settings.serverPid;
    if (pid === undefined) return undefined;
    const idleBytes = this.serverRssBytes();
    if (idleBytes === undefined) return undefined;
    this.rss = { idleBytes };
    try {
      return countProcessFds(pid);
    } catch {
      return undefined;
    }
  }

  /**
   * Waits (up to ACCEPT_WAIT_MS) until the server holds a descriptor for every
   * connection, then until it is quiet (see SETTLE_QUIET_MS), then reads its RSS. A
   * connect completes once the kernel has put the connection in the listen backlog,
   * which may be before the server accepted it.
   */
  private async sampleConnectedServer(idleFds: number | undefined): Promise<void> {
    const pid = this.settings.serverPid;
    if (this.rss === undefined || pid === undefined) return;
    let allAccepted = false;
    if (idleFds !== undefined) {
      const deadline = performance.now() + ACCEPT_WAIT_MS;
      for (;;) {
        try {
          allAccepted = countProcessFds(pid) >= idleFds + this.settings.conns;
        } catch {
          break;
        }
        if (allAccepted || performance.now() >= deadline) break;
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_POLL_MS));
      }
    }
    await this.waitUntilServerQuiet();
    const connectedBytes = this.serverRssBytes();
    if (connectedBytes === undefined) {
      this.rss = undefined;
      return;
    }
    this.rss.connectedBytes = connectedBytes;
    this.rss.allAccepted = allAccepted;
  }

  private async waitUntilServerQuiet(): Promise<void> {
    let cpu = this.serverCpuUs();
    const deadline = performance.now() + SETTLE_MAX_MS;
    while (cpu !== undefined && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, SETTLE_QUIET_MS));
      const next = this.serverCpuUs();
      if (next === cpu) break;
      cpu = next;
    }
  }

  private serverRssBytes(): number | undefined {
    const pid = this.settings.serverPid;
    if (pid === undefined) return undefined;
    try {
      return readProcessRssBytes(pid);
    } catch {
      // The server exited, or this is not Linux: report no memory figures.
      return undefined;
    }
  }

  private serverCpuUs(): number | undefined {
    const pid = this.settings.serverPid;
    if (pid === undefined) return undefined;
    try {
      return readProcessCpuUs(pid);
    } catch {
      // The server exited mid-run; the connection errors already say so.
      return undefined;
    }
  }

  private report(
    windowStart: number,
    windowEnd: number,
    serverCpuUs: number | undefined,
    generatorCpuUs: number | undefined,
    stoppedIn: LoadPhase | undefined,
  ): LoadReport {
    const { host, port, conns, size, depth } = this.settings;
    const durationSec = (windowEnd - windowStart) / 1000;
    const perSec = durationSec > 0 ? this.messages / durationSec : 0;
    const report: LoadReport = {
      host,
      port,
      conns,
      size,
      depth,
      durationSec,
      messages: this.messages,
      messagesPerSec: perSec,
      mbPerSec: (perSec * size) / 1e6,
      latencyUs: this.latency.summary(),
      errors: this.errors,
      mismatches: this.mismatches,
      bytesReceived: this.bytesReceived,
      stoppedEarly: stoppedIn !== undefined,
    };
    if (this.firstMismatch !== undefined) report.firstMismatch = this.firstMismatch;
    if (stoppedIn !== undefined) report.stoppedIn = stoppedIn;
    if (serverCpuUs !== undefined) {
      report.serverCpuUs = serverCpuUs;
      if (this.messages > 0) report.serverCpuUsPerMessage = serverCpuUs / this.messages;
    }
    if (generatorCpuUs !== undefined) report.generatorCpuUs = generatorCpuUs;
    const rss = this.rss;
    if (rss?.idleBytes !== undefined && rss.connectedBytes !== undefined) {
      report.serverRss = {
        idleBytes: rss.idleBytes,
        connectedBytes: rss.connectedBytes,
        allAccepted: rss.allAccepted === true,
      };
      if (rss.endBytes !== undefined) report.serverRss.endBytes = rss.endBytes;
    }
    return report;
  }
}

function connectFailureMessage(
  code: string,
  detail: string,
  host: string,
  port: number,
  index: number,
  conns: number,
  timeoutMs: number,
): string {
  const where = `${host}:${port}`;
  const which = conns > 1 ? ` (connection ${index + 1} of ${conns})` : '';
  switch (code) {
    case 'ECONNREFUSED':
      return `nothing is listening on ${where} (ECONNREFUSED)`;
    case 'ETIMEDOUT':
      return `connecting to ${where} timed out after ${timeoutMs} ms${which}: the server is not accepting (full listen backlog?)`;
    case 'EMFILE':
    case 'ENFILE':
      return `cannot open connection to ${where}${which}: too many open files (${code}); raise the limit with ulimit -n`;
    case 'EADDRNOTAVAIL':
      return `cannot open connection to ${where}${which}: out of local ports or address not available (${code})`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve host ${host} (${code})`;
    default:
      return `cannot connect to ${where}${which}: ${detail}`;
  }
}

/**
 * One connection of the closed loop.
 *
 * `ring` holds `depth` message slots back to back. Messages are sent and come back
 * in slot order 0, 1, …, depth-1, 0, …, so the bytes in flight are always a
 * contiguous (wrapping) stretch of the ring starting at the next expected byte; a
 * slot is rewritten only after its message fully came back, by which time the
 * kernel has long finished with the bytes handed to socket.write.
 */
class EchoConnection {
  readonly ring: Buffer;
  /** performance.now() at which the message now in each slot was written. */
  private readonly sentAt: Float64Array;
  /** Slot and offset of the next byte expected back. */
  private recvSlot = 0;
  private recvOffset = 0;
  inflightBytes = 0;
  private nextSeq = 0;
  /** Bytes this connection received, in order: the stream offset of the next byte expected. */
  private received = 0;
  alive = true;
  private closed = false;

  constructor(
    private readonly run: LoadRun,
    private readonly socket: Socket,
    /** From 1, in connect order, for mismatch reports. */
    private readonly number: number,
  ) {
    const { size, depth } = run.settings;
    // Random content per connection, so data crossing connections is caught too.
    this.ring = randomFillSync(Buffer.allocUnsafe(size * depth));
    this.sentAt = new Float64Array(depth);
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  /** Sends the first `depth` messages. */
  start(now: number): void {
    if (!this.alive) return;
    const { depth } = this.run.settings;
    for (let slot = 0; slot < depth; slot++) this.stamp(slot, this.nextSeq++);
    this.sentAt.fill(now);
    this.inflightBytes = this.ring.length;
    this.socket.write(this.ring);
  }

  /**
   * Writes the sequence number into the first (up to) 4 bytes of a slot, so that a
   * stale or replayed message differs from the one expected in the same slot.
   */
  private stamp(slot: number, seq: number): void {
    const size = this.run.settings.size;
    const at = slot * size;
    if (size >= 4) {
      this.ring.writeUInt32LE(seq >>> 0, at);
    } else {
      for (let i = 0; i < size; i++) this.ring[at + i] = (seq >>> (8 * i)) & 0xff;
    }
  }

  private readonly onData = (chunk: Buffer): void => {
    if (!this.alive) return;
    const run = this.run;
    const { size, depth } = run.settings;
    const ring = this.ring;
    const ringLength = ring.length;
    const length = chunk.length;
    run.bytesReceived += length;
    // Bytes past those in flight were never sent: the server duplicated or invented data.
    const expected = Math.min(length, this.inflightBytes);
    let ringPos = this.recvSlot * size + this.recvOffset;
    for (let pos = 0; pos < expected; ) {
      const n = Math.min(expected - pos, ringLength - ringPos);
      if (chunk.compare(ring, ringPos, ringPos + n, pos, pos + n) !== 0) {
        // Off the hot path: find the byte, once per connection at most.
        let i = 0;
        while (chunk[pos + i] === ring[ringPos + i]) i++;
        this.mismatchAt(pos + i, ring[ringPos + i], chunk[pos + i] as number);
        return;
      }
      pos += n;
      ringPos += n;
      if (ringPos === ringLength) ringPos = 0;
    }
    if (length > expected) {
      this.mismatchAt(expected, undefined, chunk[expected] as number);
      return;
    }
    this.received += length;
    this.inflightBytes -= length;
    const received = this.recvOffset + length;
    const completed = Math.floor(received / size);
    this.recvOffset = received - completed * size;
    if (completed === 0) return;

    const first = this.recvSlot;
    this.recvSlot = (first + completed) % depth;
    run.completedTotal += completed;
    const now = performance.now();
    const sentAt = this.sentAt;
    if (run.measuring) {
      run.messages += completed;
      // Messages written together share a timestamp: record them as one run.
      let runStart = sentAt[first] as number;
      let runLength = 0;
      for (let k = 0, slot = first; k < completed; k++) {
        const t = sentAt[slot] as number;
        if (t !== runStart) {
          run.latency.record((now - runStart) * 1000, runLength);
          runStart = t;
          runLength = 0;
        }
        runLength++;
        if (++slot === depth) slot = 0;
      }
      run.latency.record((now - runStart) * 1000, runLength);
    }

    if (run.sending) {
      for (let k = 0, slot = first; k < completed; k++) {
        this.stamp(slot, this.nextSeq++);
        sentAt[slot] = now;
        if (++slot === depth) slot = 0;
      }
      this.inflightBytes += completed * size;
      const end = first + completed;
      if (end <= depth) {
        this.socket.write(ring.subarray(first * size, end * size));
      } else {
        this.socket.cork();
        this.socket.write(ring.subarray(first * size));
        this.socket.write(ring.subarray(0, (end - depth) * size));
        this.socket.uncork();
      }
    } else if (this.inflightBytes === 0) {
      run.connectionSettled();
    }
  };

  /** Records the first wrong byte (at `pos` in this chunk) of the run, and closes this connection. */
  private mismatchAt(pos: number, expected: number | undefined, actual: number): void {
    const size = this.run.settings.size;
    const streamOffset = this.received + pos;
    const detail: MismatchDetail = {
      connection: this.number,
      message: Math.floor(streamOffset / size) + 1,
      offset: streamOffset % size,
      actual,
    };
    if (expected !== undefined) detail.expected = expected;
    this.run.firstMismatch ??= detail;
    this.die('mismatch');
  }

  private readonly onError = (): void => {
    this.die('error');
  };

  private readonly onClose = (): void => {
    this.closed = true;
    this.die('error');
  };

  /** Takes the connection out of the run, counting why; idempotent. */
  private die(reason: 'error' | 'mismatch'): void {
    if (!this.alive) return;
    this.alive = false;
    if (reason === 'mismatch') this.run.mismatches++;
    else this.run.errors++;
    this.socket.destroy();
    if (this.inflightBytes > 0) this.run.connectionSettled();
    this.run.connectionLost();
  }

  /** Ends the connection without counting an error; destroys it after `graceMs`. */
  close(graceMs: number): Promise<void> {
    this.alive = false;
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.socket.destroy(), graceMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.end();
    });
  }
}
