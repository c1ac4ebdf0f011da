/**
 * What a `host` may be, checked before any engine sees it.
 *
 * The engines disagree on bad hosts, and neither says so usefully: node:net
 * treats an empty host as "unspecified" and listens on every interface (the
 * opposite of the loopback default), while the io_uring engine's lookup
 * resolves '' to null and fails with `EINVAL null:port`. Checking here makes
 * both engines refuse the same hosts with the same one-line error.
 */
import { isIP } from 'node:net';
import { check } from './errors.js';

/** One DNS label: letters, digits, '-' inside, '_' (seen in real names), at most 63 bytes. */
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** True if `host` is an IPv4 or IPv6 address, or a syntactically valid host name. */
export function isValidHost(host: unknown): host is string {
  if (typeof host !== 'string' || host.length === 0) return false;
  if (isIP(host) !== 0) return true;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((label) => LABEL.test(label));
}

/** Why `host` is refused, as the end of an error message. */
export function hostProblem(host: string): string {
  if (host.length === 0) return 'an empty host is not an address';
  if (/^\[.*\]$/.test(host)) return 'write an IPv6 address without brackets';
  return 'it is neither an IP address nor a host name';
}

/** Throws `OVL_ERR_INVALID_ARGUMENT` unless `host` is valid (see {@link isValidHost}). */
export function checkHost(host: unknown): asserts host is string {
  check(
    isValidHost(host),
    'OVL_ERR_INVALID_ARGUMENT',
    `host ${JSON.stringify(host)} is invalid: ${typeof host === 'string' ? hostProblem(host) : 'it must be a string'}; use an address such as 127.0.0.1, ::1 or 0.0.0.0 (every interface), or a host name`,
  );
}

/** `host:port`, with an IPv6 address in brackets (`[::1]:5150`) as in a URL, so the port reads apart. */
export function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
