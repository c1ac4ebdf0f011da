import { OsError, OverlappedError } from '../core/errors.js';
import { hostPort } from '../core/host-address.js';
import { UserError } from './user-error.js';

/**
 * Turns the OS errors a user can fix (address in use, nothing listening, …)
 * into a one-line {@link UserError} that names the cause and the fix.
 * Anything else is returned unchanged.
 */
export function explainOsError(err: unknown, host: string, port: number): unknown {
  const where = hostPort(host, port);
  if (err instanceof OverlappedError && err.code === 'OVL_ERR_ENGINE_UNAVAILABLE') {
    return new UserError(err.message, 2);
  }
  if (!(err instanceof OsError)) return err;
  switch (err.code) {
    case 'EADDRINUSE':
      return new UserError(
        `${where} is already in use (EADDRINUSE): stop the other server or choose another --port`,
        1,
      );
    case 'EACCES':
      return new UserError(
        `no permission to listen on ${where} (EACCES): use a port above 1023 or run with the needed privilege`,
        1,
      );
    case 'EADDRNOTAVAIL':
      return new UserError(
        `${host} is not an address of this machine (EADDRNOTAVAIL): check --host`,
        1,
      );
    case 'ECONNREFUSED':
      return new UserError(
        `nothing is listening on ${where} (ECONNREFUSED): start \`overlapped echo\` first or check --host/--port`,
        1,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new UserError(`cannot resolve host '${host}' (${err.code}): check --host`, 1);
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new UserError(`cannot reach ${where} (${err.code}): check --host and the network`, 1);
    default:
      return err;
  }
}
