/**
 * Warnings that a flood must not turn into a flood of log lines
 * (DESIGN.md, "Limits, deadlines and stopping"): per-client warnings
 * (refused connections, bad frames) and a listener out of descriptors.
 *
 * Each kind logs its first occurrence at once, then at most one summary line
 * per {@link SUMMARY_INTERVAL_MS} while it goes on ("N more in the last 5 s"),
 * from one unreferenced timer per kind and server (never one per client).
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { ProxyErrorHandler } from '../core/proxy/proxy-acceptor.js';

/** At most one summary line per kind in this many ms. */
export const SUMMARY_INTERVAL_MS = 5000;

/** A warning said once, then summarised at most once per interval while it repeats. */
export class RateLimitedWarning {
  readonly #logger: Logger | undefined;
  readonly #summary: string;
  #suppressed = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #last: object = {};

  /** `summary` names what was suppressed, e.g. `connections refused at maxConnections`. */
  constructor(logger: Logger | undefined, summary: string) {
    this.#logger = logger;
    this.#summary = summary;
  }

  warn(fields: object, message: string): void {
    if (this.#logger === undefined) return;
    if (this.#timer === null) {
      this.#logger.warn(fields, message);
      this.#arm();
    } else {
      this.#suppressed++;
      this.#last = fields;
    }
  }

  /** Counts one toward the next summary without a line of its own (the caller said it already). */
  count(fields: object): void {
    if (this.#logger === undefined) return;
    this.#suppressed++;
    this.#last = fields;
    if (this.#timer === null) this.#arm();
  }

  /** Forgets what was suppressed (a line that sums it all up was logged instead). */
  reset(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#suppressed = 0;
  }

  #arm(): void {
    this.#timer = setTimeout(this.#flush, SUMMARY_INTERVAL_MS);
    this.#timer.unref();
  }

  readonly #flush = (): void => {
    this.#timer = null;
    if (this.#suppressed === 0) return;
    const count = this.#suppressed;
    this.#suppressed = 0;
    this.#logger?.warn(
      { ...this.#last, count, intervalMs: SUMMARY_INTERVAL_MS },
      `${count} more ${this.#summary} in the last ${SUMMARY_INTERVAL_MS / 1000} s`,
    );
    // Still going on: the next one waits for the next interval's summary.
    this.#arm();
  };
}

/**
 * The soft limit on open descriptors (`ulimit -n`), or null where it cannot
 * be read. Read once: out of descriptors, /proc/self/limits cannot be opened.
 */
export function descriptorLimit(): number | null {
  if (cachedLimit === undefined) cachedLimit = readDescriptorLimit();
  return cachedLimit;
}

let cachedLimit: number | null | undefined;

function readDescriptorLimit(): number | null {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    if (m === null || m[1] === 'unlimited') return null;
    return Number(m[1]);
  } catch {
    return null;
  }
}

/** Descriptors this process has open now (Linux), or null where it cannot tell. */
export function openDescriptors(): number | null {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return null;
  }
}

/**
 * The start-up line of a server whose connection limit the descriptor limit
 * cannot hold (each connection is a descriptor), or null when it can.
 */
export function descriptorHeadroom(
  maxConnections: number,
): { fields: object; message: string } | null {
  const limit = descriptorLimit();
  if (limit === null) return null;
  // The process's own descriptors, and a margin for the ones it opens later (logs, pipes).
  const own = (openDescriptors() ?? 32) + 16;
  if (maxConnections + own <= limit) return null;
  const room = Math.max(0, limit - own);
  return {
    fields: { maxConnections, limit, open: own - 16 },
    message: `--max-connections ${maxConnections} is more than this process's descriptor limit allows (ulimit -n ${limit}): ${room === 0 ? 'accepting fails with EMFILE from the first connection' : `past about ${room} connections accepting fails with EMFILE`}; raise ulimit -n or lower --max-connections`,
  };
}

/**
 * The `onProxyError` of a server's listener: one warning per connection
 * closed for its PROXY header, rate-limited (a scan of the port, or a
 * balancer configured for the wrong version, is a flood).
 */
export function proxyErrorLog(logger: Logger | undefined): ProxyErrorHandler {
  const warning = new RateLimitedWarning(logger, 'connections closed for their PROXY header');
  return (error, peer) =>
    warning.warn({ peer, code: error.code }, `connection closed: ${error.message}`);
}

const RESOURCE_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

/**
 * Accepting has resumed once a connection is accepted this long after the
 * last failure: at the limit, retries succeed and fail by turns whenever a
 * client leaves, and that is still the same storm.
 */
export const RESUMED_AFTER_MS = 1000;

/**
 * A listener's accept failures: one warning naming the cause and the fix
 * when they start, one summary per interval while they last, and one line
 * when accepting works again.
 */
export class AcceptStorm {
  readonly #logger: Logger | undefined;
  #failing = false;
  #failures = 0;
  #since = 0;
  /** Armed by an accept during a storm, cleared by a failure: fires once accepting has held. */
  #resumeTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #summaries: RateLimitedWarning;

  constructor(logger: Logger | undefined) {
    this.#logger = logger;
    this.#summaries = new RateLimitedWarning(logger, 'failed accepts');
    descriptorLimit();
  }

  /** Whether accepting is failing now. */
  get failing(): boolean {
    return this.#failing;
  }

  /** An accept failed; the engine retries in `retryMs` (0: at once). */
  failed(error: Error, retryMs: number): void {
    const code = (error as { code?: string }).code ?? 'EIO';
    this.#failures++;
    if (this.#resumeTimer !== null) {
      clearTimeout(this.#resumeTimer);
      this.#resumeTimer = null;
    }
    if (this.#failing) {
      this.#summaries.count({ code, retryMs });
      return;
    }
    this.#failing = true;
    this.#since = performance.now();
    const schedule =
      retryMs > 0
        ? `retrying in ${retryMs} ms, backing off to 1 s; waiting clients stay in the listen backlog`
        : 'the OS drops each connection it cannot take (node engine) and retries at once';
    const fix = RESOURCE_ERRORS.has(code)
      ? code === 'EMFILE'
        ? `EMFILE: this process is out of file descriptors: raise \`ulimit -n\` (now ${descriptorLimit() ?? 'unknown'}) or lower --max-connections`
        : `${code}: the system is out of descriptors or buffers: raise fs.file-max or free memory`
      : `${code}: ${error.message}`;
    this.#logger?.warn(
      { code, retryMs, limit: descriptorLimit() },
      `cannot accept connections: ${fix}; ${schedule}; existing connections are still served`,
    );
  }

  /**
   * A connection was accepted. During a storm, accepting has resumed once
   * no failure follows for {@link RESUMED_AFTER_MS}: then one line says so.
   */
  accepted(): void {
    if (!this.#failing || this.#resumeTimer !== null) return;
    this.#resumeTimer = setTimeout(this.#resumed, RESUMED_AFTER_MS);
    this.#resumeTimer.unref();
  }

  readonly #resumed = (): void => {
    this.#resumeTimer = null;
    this.#failing = false;
    this.#summaries.reset();
    const failures = this.#failures;
    this.#failures = 0;
    this.#logger?.warn(
      { failures, ms: Math.round(performance.now() - this.#since) },
      `accepting connections again after ${failures} failed attempts`,
    );
  };
}
