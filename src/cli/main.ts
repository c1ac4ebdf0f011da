#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { OverlappedError } from '../core/errors.js';
import { checkEngineSettings, ENGINE_NAMES, parseEngineName } from '../engines/select.js';
import { createChatCommand } from './chat-command.js';
import { createClientCommand } from './client-command.js';
import { createEchoCommand } from './echo-command.js';
import { createLoadCommand } from './load-command.js';
import { createPipeClientCommand, createPipeServerCommand } from './pipe-command.js';
import { createReportCommand } from './report-command.js';
import { UserError } from './user-error.js';

/** Exit code for a command line that could not be parsed (bad flag, missing value). */
const EXIT_USAGE = 2;

const { version } = JSON.parse(
  readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
) as { version: string };

const program = new Command('overlapped')
  .description(
    'I/O completion ports and the Winsock I/O models for Node.js: servers, a client and a load generator',
  )
  .version(version)
  .configureOutput({
    // Commander's own errors (unknown flag, missing value) as one line, like ours;
    // its "Did you mean …?" suggestion joins that line.
    outputError: (message, write) =>
      write(`overlapped: ${message.replace(/^error: /, '').replace(/\s*\n(?=.)/g, ' ')}`),
  })
  .showSuggestionAfterError()
  .exitOverride()
  // A bad OVERLAPPED_ENGINE is refused by every command alike, before it starts
  // anything, even by those that would never have asked for an engine.
  .hook('preAction', () => {
    const name = process.env.OVERLAPPED_ENGINE;
    try {
      parseEngineName(name);
    } catch {
      throw new UserError(
        `OVERLAPPED_ENGINE=${JSON.stringify(name)} is not an engine: set it to ${ENGINE_NAMES.join(' or ')}, or unset it to let overlapped choose`,
        EXIT_USAGE,
      );
    }
    try {
      checkEngineSettings();
    } catch (err) {
      throw new UserError((err as Error).message, EXIT_USAGE);
    }
  });

for (const command of [
  createEchoCommand(),
  createClientCommand(),
  createLoadCommand(),
  createPipeServerCommand(),
  createPipeClientCommand(),
  createChatCommand(),
  createReportCommand(),
]) {
  program.addCommand(command.copyInheritedSettings(program));
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof UserError) {
    process.stderr.write(`overlapped: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  // An engine that is unknown or cannot run here is a setting to change, wherever it
  // was found (OVERLAPPED_ENGINE, --engine), so it is a usage error on every command.
  if (err instanceof OverlappedError && err.code === 'OVL_ERR_ENGINE_UNAVAILABLE') {
    process.stderr.write(`overlapped: ${err.message}\n`);
    process.exit(EXIT_USAGE);
  }
  // Commander has already printed its message (or the help/version text).
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
  throw err;
}
