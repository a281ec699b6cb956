// SPDX-License-Identifier: MIT
// rsoup demo (npm run demo): the paper's LLaMA RLHF experiment in miniature, from nothing: pre-train a
// tiny LLaMA on Debian's fortunes, two PPO experts (VADER positivity, topic words), MORL at μ = 0.5,
// 11 soups, report in runs/demo/. The last lines say where the report is and what it found.
import type { Command } from 'commander';
import { demoExperiment } from '../../pipeline/index.js';
import { runLocomotionDemo } from '../../pipeline/tasks/locomotion/index.js';
import { runDiffusionDemo } from '../../pipeline/tasks/diffusion/index.js';
import { UsageError } from '../output.js';
import { runAndPrint } from './run.js';

const TASKS = ['text', 'locomotion', 'diffusion'] as const;
const LATER: string[] = [];

export function register(program: Command): void {
  program
    .command('demo')
    .description('the rewarded-soup experiment in miniature on this machine (outputs in runs/demo)')
    .option('--task <task>', `which experiment: ${TASKS.join(', ')}`, 'text')
    .option('--out <dir>', 'run dir', 'runs/demo')
    .option('--full', 'N = 3: adds a third reward (politics) and its expert; the uniform soup, λ drawn on the simplex and the spider map')
    .option('--dry-run', 'print the plan and its cost; train nothing')
    .option('--json', 'JSON events on stdout')
    .action(async (o: { task: string; out: string; full?: boolean; dryRun?: boolean; json?: boolean }) => {
      if (LATER.includes(o.task)) throw new UsageError(`--task ${o.task}: the ${o.task} demo is not available yet (available: ${TASKS.join(', ')})`);
      if (!(TASKS as readonly string[]).includes(o.task)) throw new UsageError(`--task ${o.task}: unknown task (available: ${TASKS.join(', ')})`);
      if (o.task === 'locomotion') return void (await runLocomotionDemo({ out: o.out === 'runs/demo' ? undefined : o.out, dryRun: o.dryRun, onEvent: o.json ? (e) => process.stdout.write(`${JSON.stringify(e)}\n`) : undefined }));
      if (o.task === 'diffusion') return void (await runDiffusionDemo({ out: o.out === 'runs/demo' ? undefined : o.out, dryRun: o.dryRun, json: o.json }));
      await runAndPrint(demoExperiment({ full: o.full }), { json: o.json, out: o.out, dryRun: o.dryRun, label: 'rsoup demo' });
    });
}
