// SPDX-License-Identifier: MIT
// rsoup setup: builds the native addons an install left out: the core addon from source where no prebuilt
// loads, and the torch addon (needs cmake, g++ and libtorch). The same script npm runs at install
// (scripts/install.mjs), with --setup: it builds whatever is missing and fails when it cannot.
import type { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../native/index.js';
import { SoupError } from '../../errors.js';

/** The command that builds the native addons (named by `rsoup doctor` and by load errors). */
export const SETUP_COMMAND = 'npx rsoup setup';

export function register(program: Command): void {
  program
    .command('setup')
    .description('build the native addons that the install left out (the torch addon needs cmake, g++ and libtorch)')
    .action(() => {
      const script = join(packageRoot, 'scripts', 'install.mjs');
      if (!existsSync(script)) throw new SoupError('ERR_SOUP_IO', `rsoup setup: ${script} is missing: reinstall the package`);
      const r = spawnSync(process.execPath, [script, '--setup'], { cwd: packageRoot, stdio: 'inherit' });
      process.exitCode = r.status === 0 ? 0 : 1;
    });
}
