// SPDX-License-Identifier: MIT
// rsoup status RUN_DIR [--json]: each stage and PPO run of a run dir, from its stage markers, and the
// Slurm job or array task of its last submission (state, exit code, log), from scontrol.
import type { Command } from 'commander';
import { relative } from 'node:path';
import { runStatus } from '../../pipeline/executor/slurm.js';
import { jsonLine } from '../output.js';

export function register(program: Command): void {
  program
    .command('status')
    .description('show each stage and task of a run dir: its stage marker and its Slurm job (state, exit code, log)')
    .argument('<run-dir>', "the run dir of `rsoup run` (the config's `output`, or --out)")
    .option('--json', 'one JSON object on stdout')
    .action(async (dir: string, o: { json?: boolean }) => {
      const s = await runStatus(dir);
      if (o.json) {
        jsonLine({ runDir: dir, experiment: s.experiment, submission: s.submission, stages: s.rows });
        return;
      }
      const w = process.stdout;
      const sub = s.submission;
      w.write(
        `run dir ${dir}: experiment ${s.experiment}; ${
          sub
            ? `last Slurm submission ${sub.at}: ${Object.entries(sub.jobs)
                .map(([k, v]) => `${k} ${v.id}`)
                .join(', ')}`
            : 'never submitted to Slurm'
        }\n`,
      );
      if (s.slurmError) process.stderr.write(`rsoup status: the jobs' states are unknown: ${s.slurmError}\n`);
      const rows = s.rows.map((r) => [
        r.stage,
        r.piece,
        r.progress,
        r.job ?? '-',
        r.state ? `${r.state}${r.reason && r.state !== 'RUNNING' && r.state !== 'COMPLETED' ? ` (${r.reason})` : ''}` : '-',
        r.exitCode ?? '-',
        r.log ? relative(dir, r.log) : '-',
      ]);
      const head = ['stage', 'piece', 'marker', 'job', 'state', 'exit', 'log'];
      const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
      for (const r of [head, ...rows]) w.write(`${r.map((c, i) => (i < r.length - 1 ? c.padEnd(width[i]) : c)).join('  ')}\n`);
      const bad = s.rows.filter(
        (r) => !r.done && r.state && !['COMPLETED', 'PENDING', 'RUNNING', 'REQUEUED', 'CONFIGURING'].includes(r.state) && !/Dependency/.test(r.reason ?? ''),
      );
      if (bad.length && sub)
        w.write(
          `failed: ${bad.map((r) => `${r.stage} ${r.piece} (job ${r.job}, ${r.state}, exit code ${r.exitCode}, log ${r.log})`).join('; ')}\nresubmit what is missing: ${sub.resubmit}\n`,
        );
    });
}
