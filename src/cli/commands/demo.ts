// SPDX-License-Identifier: MIT
// rsoup demo (npm run demo): the paper's LLaMA RLHF experiment in miniature, from nothing: pre-train a
// tiny LLaMA on Debian's fortunes, two PPO experts on learned topic rewards (love, computers), MORL at
// three μ, 11 soups, report in runs/demo/. The last lines say where the report is and what it found.
// --task locomotion|diffusion: the other experiments' demos, through the task table.
import type { Command } from 'commander';
import { demoExperiment } from '../../pipeline/index.js';
import { TASK_NAMES, TASKS } from '../../pipeline/tasks/index.js';
import { UsageError } from '../output.js';
import { runAndPrint } from './run.js';

export function register(program: Command): void {
  program
    .command('demo')
    .description('the rewarded-soup experiment in miniature on this machine (outputs in runs/demo)')
    .option('--task <task>', `which experiment: ${TASK_NAMES.join(', ')}`, 'text')
    .option('--out <dir>', 'run dir', 'runs/demo')
    .option('--full', 'N = 3: adds a third reward (politics) and its expert; the uniform soup, λ drawn on the simplex and the spider map')
    .option('--dry-run', 'print the plan and its cost; train nothing')
    .option('--json', 'JSON events on stdout')
    .action(async (o: { task: string; out: string; full?: boolean; dryRun?: boolean; json?: boolean }) => {
      if (!(TASK_NAMES as readonly string[]).includes(o.task)) throw new UsageError(`--task ${o.task}: unknown task (available: ${TASK_NAMES.join(', ')})`);
      const out = o.out === 'runs/demo' ? undefined : o.out; // each task's demo has its own default run dir
      if (o.task === 'locomotion' || o.task === 'diffusion')
        return void (await TASKS[o.task].run({}, `the ${o.task} demo`, { out, dryRun: o.dryRun, json: o.json }));
      await runAndPrint(demoExperiment({ full: o.full }), { json: o.json, out: o.out, dryRun: o.dryRun, label: 'rsoup demo' });
    });
}
