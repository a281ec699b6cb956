#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// rsoup: the command line. Each command lives in src/cli/commands/<name>.ts and exports `register`.
// Exit codes: 0 ok, 1 runtime error, 2 usage error, 130 cancelled (Ctrl-C / SIGTERM, ERR_SOUP_ABORTED:
// the first signal cancels cleanly and exits 130, a second one exits 130 at once; see signals.ts).
import { Command, CommanderError } from 'commander';
import { commands } from './commands/index.js';
import { reportError, UsageError } from './output.js';
import { isAbortError } from '../errors.js';

const program = new Command('rsoup')
  .description('Rewarded soups: interpolate RL-fine-tuned experts and measure their Pareto front')
  .version('0.1.0')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

for (const register of commands) register(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else if (isAbortError(err)) {
    reportError(err);
    process.exitCode = 130;
  } else if (err instanceof UsageError) {
    reportError(err);
    process.exitCode = 2;
  } else {
    reportError(err);
    process.exitCode = 1;
  }
}
