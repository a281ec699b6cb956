// SPDX-License-Identifier: MIT
// rsoup doctor: what was built, SIMD level, libtorch, CUDA, thread-pool environment.
import type { Command } from 'commander';
import { coreAddon, torchAddon } from '../../native/index.js';
import { jsonLine } from '../output.js';

export function register(program: Command): void {
  program
    .command('doctor')
    .description('report the native builds, SIMD level, libtorch, CUDA and thread settings')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }) => {
      const report: Record<string, unknown> = { node: process.version };
      let problems = 0;
      try {
        report.core = coreAddon().info();
      } catch (e) {
        problems++;
        report.core = { error: (e as Error).message };
      }
      try {
        const info = torchAddon().info();
        report.torch = info;
        report.cudaStatus = info.cuda.compiled
          ? info.cuda.available ? `CUDA compiled, ${info.cuda.devices} device(s)` : 'CUDA compiled, no device'
          : 'CUDA not compiled';
      } catch (e) {
        problems++;
        report.torch = { error: (e as Error).message };
      }
      report.env = {
        OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY,
        OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS,
        note: 'OMP_WAIT_POLICY=PASSIVE and OPENBLAS_NUM_THREADS are set before libtorch loads (libgomp and OpenBLAS read them once)',
      };
      if (opts.json) jsonLine(report);
      else process.stderr.write(`${JSON.stringify(report, null, 2)}\n`);
      process.exitCode = problems ? 1 : 0;
    });
}
