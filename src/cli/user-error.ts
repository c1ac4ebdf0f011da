/**
 * Errors the user can fix (a bad flag, a port in use, nothing listening).
 *
 * The CLI prints these as one line, `overlapped: <message>`, and exits with
 * `exitCode`; anything else is a bug and keeps its stack trace.
 */
export class UserError extends Error {
  override readonly name = 'UserError';

  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

/** Parses a whole number in `[min, max]` for flag `flag`, or throws a UserError naming the fix. */
export function parseIntegerFlag(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\s*-?\d+\s*$/.test(value) || !Number.isSafeInteger(n)) {
    throw new UserError(`${flag} must be a whole number, got '${value}'`);
  }
  if (n < min || n > max) {
    throw new UserError(`${flag} ${n} is out of range: use a value from ${min} to ${max}`);
  }
  return n;
}

/** Parses a TCP port (0 to 65535; `allowZero: false` for ports that must be known in advance). */
export function parsePortFlag(value: string, allowZero = true): number {
  return parseIntegerFlag('--port', value, allowZero ? 0 : 1, 65535);
}
