/**
 * Options every command that takes them shares, so each flag means the same
 * and is checked the same way on every command.
 */
import { isIP } from 'node:net';
import { Option } from 'commander';
import { hostProblem, isValidHost } from '../core/host-address.js';
import { ENGINE_NAMES } from '../engines/select.js';
import { parseIntegerFlag, UserError } from './user-error.js';

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

/** `--quiet`: the per-connection info lines off; start, stop and warnings stay. */
export function quietOption(): Option {
  return new Option(
    '--quiet',
    'no log line per connect and disconnect; start, stop and warnings still show',
  );
}
