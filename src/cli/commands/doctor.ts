// SPDX-License-Identifier: MIT
// rsoup doctor: what was built, SIMD level, libtorch, CUDA, thread-pool environment; --clean DIR removes
// temporary files that dead processes left.
import type { Command } from 'commander';
import { hostname } from 'node:os';
import { coreAddon, packageRoot, torchAddon } from '../../native/index.js';
import { join } from 'node:path';
import { SETUP_COMMAND } from './setup.js';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { findTempFiles } from '../../io/atomic.js';
import { SoupError } from '../../errors.js';
import { jsonLine } from '../output.js';

/** rsoup doctor --clean DIR: temp files left beside outputs; removes only this host's dead processes'. */
async function clean(dir: string, json: boolean): Promise<void> {
  if (!existsSync(dir)) throw new SoupError('ERR_SOUP_IO', `--clean: '${dir}' does not exist`);
  const temps = findTempFiles(dir);
  for (const t of temps) {
    if (t.stale) await rm(t.path, { recursive: true, force: true });
    const state = t.stale
      ? 'removed'
      : t.host === hostname()
        ? `kept: pid ${t.pid} is running`
        : `kept: written on host ${t.host}, whose processes this host cannot see`;
    if (json) jsonLine({ path: t.path, target: t.target, host: t.host, pid: t.pid, removed: t.stale });
    else process.stderr.write(`${t.path}  (for ${t.target})  ${state}\n`);
  }
  if (!json) process.stderr.write(`${temps.length} temporary file(s) under ${dir}, ${temps.filter((t) => t.stale).length} removed\n`);
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('report the native builds, SIMD level, libtorch, CUDA and thread settings')
    .option('--json', 'machine-readable output')
    .option('--clean <dir>', "list the temporary files under <dir> and remove those of this host's dead processes (SIGKILL, a second Ctrl-C)")
    .action(async (opts: { json?: boolean; clean?: string }) => {
      if (opts.clean !== undefined) return clean(opts.clean, !!opts.json);
      const report: Record<string, unknown> = { node: process.version };
      let problems = 0;
      try {
        report.core = coreAddon().info();
      } catch (e) {
        problems++;
        report.core = { error: (e as Error).message };
      }
      const torchBuild = `${SETUP_COMMAND} (needs cmake, g++ and libtorch: apt-get install -y cmake g++ libtorch-dev)`;
      try {
        const info = torchAddon().info();
        report.torch = { state: 'built', ...info };
        report.cudaStatus = info.cuda.compiled
          ? info.cuda.available
            ? `CUDA compiled, ${info.cuda.devices} device(s)`
            : 'CUDA compiled, no device'
          : 'CUDA not compiled';
      } catch (e) {
        // not built is a state (merges, safetensors and rewards need only the core addon); built but
        // failing to load is a problem
        const built = existsSync(join(packageRoot, 'build-torch', 'Release', 'soup_torch.node'));
        if (built) problems++;
        report.torch = { state: built ? 'built, fails to load' : 'not built', build: torchBuild, error: (e as Error).message };
      }
      report.env = {
        OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY,
        OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS,
        note: 'OMP_WAIT_POLICY=PASSIVE and OPENBLAS_NUM_THREADS are set before libtorch loads (libgomp and OpenBLAS read them once)',
      };
      if (opts.json) jsonLine(report);
      else {
        process.stderr.write(`${JSON.stringify(report, null, 2)}\n`);
        const t = report.torch as { state: string };
        process.stderr.write(`torch addon: ${t.state}${t.state === 'built' ? '' : `; build it with: ${torchBuild}`}\n`);
      }
      process.exitCode = problems ? 1 : 0;
    });
}
