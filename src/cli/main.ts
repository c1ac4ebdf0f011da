#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { createClientCommand } from './client-command.js';
import { createEchoCommand } from './echo-command.js';
import { createLoadCommand } from './load-command.js';
import { UserError } from './user-error.js';

const { version } = JSON.parse(
  readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
) as { version: string };

const program = new Command('overlapped')
  .description(
    'I/O completion ports and the Winsock I/O models for Node.js: servers, a client and a load generator',
  )
  .version(version)
  .configureOutput({
    // Commander's own errors (unknown flag, missing value) as one line, like ours.
    outputError: (message, write) => write(`overlapped: ${message.replace(/^error: /, '')}`),
  })
  .showSuggestionAfterError()
  .addCommand(createEchoCommand())
  .addCommand(createClientCommand())
  .addCommand(createLoadCommand());

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof UserError) {
    process.stderr.write(`overlapped: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  throw err;
}
