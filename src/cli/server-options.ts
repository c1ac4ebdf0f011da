import { Option } from 'commander';
import { ENGINE_NAMES } from '../engines/select.js';

/** `--engine <name>`, shared by the server commands. */
export function engineOption(): Option {
  return new Option(
    '--engine <name>',
    'I/O engine (default: OVERLAPPED_ENGINE, else the fastest here)',
  ).choices(ENGINE_NAMES);
}

/** `--quiet`: the per-connection info lines off; start, stop and warnings stay. */
export function quietOption(): Option {
  return new Option(
    '--quiet',
    'no log line per connect and disconnect; start, stop and warnings still show',
  );
}
