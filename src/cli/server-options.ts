/**
 * Options every command that takes them shares, so each flag means the same
 * and is checked the same way on every command.
 */
import { isIP } from 'node:net';
import { Option } from 'commander';
import { hostProblem, isValidHost } from '../core/host-address.js';
import { DEFAULT_PROXY_TIMEOUT_MS } from '../core/proxy/proxy-acceptor.js';
import { PROXY_PROTOCOLS, type ProxyProtocol } from '../core/proxy/proxy-header.js';
import { SourceAllowList } from '../core/proxy/source-allow-list.js';
import type { ProxyListenOptions } from '../core/tcp-listener.js';
import { ENGINE_NAMES } from '../engines/select.js';
import { parseIntegerFlag, parsePortFlag, UserError } from './user-error.js';

/** `--engine <name>`, shared by every command that runs on an engine. */
export function engineOption(): Option {
  return new Option(
    '--engine <name>',
    'I/O engine (default: OVERLAPPED_ENGINE, else the fastest here)',
  ).choices(ENGINE_NAMES);
}

/**
 * Parses `--host`: an IP address or a host name. An empty or malformed host
 * is a usage error here, before anything listens or connects (node:net would
 * take '' as "every interface"). `[::1]`, as the start lines print IPv6
 * addresses, is taken as `::1`.
 */
export function parseHostFlag(value: string): string {
  const bare = /^\[(.*)\]$/.exec(value)?.[1];
  const host = bare !== undefined && isIP(bare) === 6 ? bare : value;
  if (!isValidHost(host)) {
    throw new UserError(
      `--host ${JSON.stringify(value)} is invalid: ${hostProblem(host)}; use an address such as 127.0.0.1, ::1 or 0.0.0.0, or a host name`,
    );
  }
  return host;
}

/** `--host <host>` with `fallback` as its default, checked by {@link parseHostFlag}. */
export function hostOption(description: string, fallback: string): Option {
  return new Option('--host <host>', description).default(fallback).argParser(parseHostFlag);
}

/**
 * A deadline flag in milliseconds (`--idle-timeout`, `--read-timeout`,
 * `--write-timeout`): a whole number from 0 (off) to 2^31 - 1, the longest
 * delay a timer takes.
 */
export function timeoutOption(flag: string, description: string, fallback: number): Option {
  return new Option(`${flag} <ms>`, description)
    .default(fallback)
    .argParser((v: string) => parseIntegerFlag(flag, v, 0, 2_147_483_647));
}

/** A server's `--port <port>` with `fallback` as its default (0 picks a free one). */
export function portOption(fallback: number): Option {
  return new Option('--port <port>', 'TCP port (0 picks a free one)')
    .default(fallback)
    .argParser((v: string) => parsePortFlag(v));
}

/** `--quiet`: the per-connection info lines off; start, stop and warnings stay. */
export function quietOption(): Option {
  return new Option(
    '--quiet',
    'no log line per connect and disconnect; start, stop and warnings still show',
  );
}

/** The flags {@link proxyOptions} adds. */
export interface ProxyFlags {
  proxyProtocol?: ProxyProtocol;
  proxyTimeout?: number;
  proxyFrom?: string[];
}

/**
 * `--proxy-protocol v1|v2|any`, `--proxy-timeout <ms>`, `--proxy-from
 * CIDR,…`: the PROXY protocol on a TCP server's listener (docs/deploy.md).
 */
export function proxyOptions(): Option[] {
  return [
    new Option(
      '--proxy-protocol <version>',
      'every connection begins with a PROXY protocol header from a load balancer (HAProxy send-proxy: v1, send-proxy-v2: v2, or any); logs and remoteAddress name the client it gives',
    ).choices(PROXY_PROTOCOLS),
    new Option(
      '--proxy-timeout <ms>',
      `with --proxy-protocol: reset a connection whose header is not complete this long after the accept (default: ${DEFAULT_PROXY_TIMEOUT_MS})`,
    ).argParser((v: string) => parseIntegerFlag('--proxy-timeout', v, 1, 600_000)),
    new Option(
      '--proxy-from <cidrs>',
      'with --proxy-protocol: only these networks may connect (the balancers), e.g. 10.0.0.0/8,192.0.2.7 (default: any)',
    ).argParser(parseProxyFrom),
  ];
}

function parseProxyFrom(value: string): string[] {
  const networks = value.split(',').map((s) => s.trim());
  try {
    new SourceAllowList(networks);
  } catch (err) {
    throw new UserError(`--proxy-from: ${(err as Error).message}`);
  }
  return networks;
}

/** The ListenOptions of the proxy flags; refuses the timeout or allow-list without the protocol. */
export function proxyListenOptions(flags: ProxyFlags): ProxyListenOptions {
  if (flags.proxyProtocol === undefined) {
    if (flags.proxyTimeout !== undefined || flags.proxyFrom !== undefined) {
      throw new UserError(
        '--proxy-timeout and --proxy-from apply only with --proxy-protocol v1|v2|any',
      );
    }
    return {};
  }
  return {
    proxyProtocol: flags.proxyProtocol,
    ...(flags.proxyTimeout === undefined ? {} : { proxyTimeoutMs: flags.proxyTimeout }),
    ...(flags.proxyFrom === undefined ? {} : { proxyFrom: flags.proxyFrom }),
  };
}

/** Where `--metrics` serves. */
export interface MetricsFlag {
  host: string;
  port: number;
}

/**
 * `--metrics [host:]port`: serve /metrics, /healthz and /readyz there
 * (default off; a bare port listens on 127.0.0.1, `[::1]:9100` for IPv6).
 */
export function metricsOption(): Option {
  return new Option(
    '--metrics <[host:]port>',
    'serve Prometheus /metrics, /healthz and /readyz (503 while draining) on this address (a bare port: 127.0.0.1)',
  ).argParser(parseMetricsFlag);
}

export function parseMetricsFlag(value: string): MetricsFlag {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value);
  const rawHost = m?.[1] ?? m?.[2] ?? '';
  if (m === null || m[3] === undefined) {
    throw new UserError(
      `--metrics ${JSON.stringify(value)} is invalid: give a port (9100) or host:port (127.0.0.1:9100, [::1]:9100)`,
    );
  }
  const port = parseIntegerFlag('--metrics port', m[3], 0, 65535);
  const host = rawHost === '' ? '127.0.0.1' : parseHostFlag(rawHost);
  return { host, port };
}
