// SPDX-License-Identifier: MIT
// The Slurm submission plan of an experiment (docs/slurm.md): the base as one job; every expert and MORL
// run still to do as one task of one job array that depends on it; the sweep + report as one job that
// depends on the array. Each job runs `rsoup run CONFIG --out RUNDIR --executor local --stage …`, the
// same pieces under the same locks and stage markers as a local run, so what is done is never redone.
// Pure: nothing here writes a file or calls Slurm (--dry-run prints this plan as it is).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SoupError } from '../../errors.js';
import type { Experiment } from '../config.js';
import { planExperiment, plannedRuns } from '../run.js';

export type SlurmJobKey = 'base' | 'runs' | 'sweep';

export interface SlurmJobPlan {
  key: SlurmJobKey;
  /** The job script (under <runDir>/slurm/) and its text. */
  script: string;
  text: string;
  /** The log file pattern (sbatch --output); with --open-mode=append a requeued task appends to its log. */
  output: string;
  /** The array job: the indices into plannedRuns still to do, and their names. */
  tasks?: Array<{ index: number; run: string }>;
  /** The job it waits for (afterok, --kill-on-invalid-dep=yes). */
  after?: SlurmJobKey;
}

export interface SlurmPlan {
  runDir: string;
  /** <runDir>/slurm: job scripts, logs, the submission record. */
  dir: string;
  jobs: SlurmJobPlan[];
  /** Why nothing is submitted (every stage is done), when `jobs` is empty. */
  nothing?: string;
}

/** How a job script starts rsoup: the submitting process's node, its loader flags and its CLI entry. */
export interface RsoupCommand {
  node: string;
  execArgv: string[];
  main: string;
  cwd: string;
}

export const thisRsoup = (): RsoupCommand => ({ node: process.execPath, execArgv: process.execArgv, main: process.argv[1], cwd: process.cwd() });

/** POSIX shell quoting: a word as it is, or in single quotes. */
export function shq(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** "0-2,4,6-7" for sbatch --array. */
export function arraySpec(indices: number[]): string {
  const out: string[] = [];
  const s = [...indices].sort((a, b) => a - b);
  for (let i = 0; i < s.length; ) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j] + 1) j++;
    out.push(i === j ? `${s[i]}` : `${s[i]}-${s[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

/** CPUs of an array task: cpus_per_task, or worker_threads (the threads each PPO worker runs with under either executor). */
export function taskCpus(x: Experiment): number {
  const where = x.path || 'experiment';
  const c = x.executor.cpus_per_task ?? x.worker_threads;
  // each task's worker uses worker_threads threads, as a local worker does: fewer CPUs would oversubscribe them
  if (c < x.worker_threads)
    throw new SoupError(
      'ERR_SOUP_CONFIG',
      `${where}: executor.cpus_per_task ${c} is below worker_threads ${x.worker_threads}: each PPO run uses worker_threads libtorch threads under either executor (raise cpus_per_task or lower worker_threads)`,
    );
  return c;
}

/** The #SBATCH lines every job shares (resources from the `executor` block). */
function resourceLines(x: Experiment, cpus: number): string[] {
  const e = x.executor;
  const where = x.path || 'experiment';
  e.extra_args.forEach((a, i) => {
    if (!a.startsWith('-'))
      throw new SoupError(
        'ERR_SOUP_CONFIG',
        `${where}: executor.extra_args[${i}] '${a}' is not an sbatch option: give each option whole, as '--constraint=a100'`,
      );
  });
  return [
    `--cpus-per-task=${cpus}`,
    ...(e.partition ? [`--partition=${e.partition}`] : []),
    ...(e.account ? [`--account=${e.account}`] : []),
    ...(e.time ? [`--time=${e.time}`] : []),
    ...(e.mem ? [`--mem=${e.mem}`] : []),
    ...(e.gres ? [`--gres=${e.gres}`] : []),
    ...e.extra_args,
  ];
}

/**
 * The jobs to submit for what is not done yet: no base job when the base is done, an array over the
 * runs not done, the sweep job unless the sweep is done and the report written. The stage hashes decide,
 * as for a local run; the executor block is in none of them.
 */
export function planSlurm(x: Experiment, cmd: RsoupCommand = thisRsoup()): SlurmPlan {
  if (!x.path)
    throw new SoupError('ERR_SOUP_CONFIG', 'the Slurm executor runs a config file (`rsoup run EXPERIMENT.yml --executor slurm`): its jobs read it again');
  const dir = join(x.runDir, 'slurm');
  const plan = planExperiment(x);
  const runs = plannedRuns(x);
  const stageOf = (i: number) => plan.stages[1 + i];
  const baseDone = plan.stages[0].cached;
  const todo = runs.map((r, i) => ({ index: i, run: r.name })).filter((t) => !stageOf(t.index).cached);
  const sweepDone = plan.stages[1 + runs.length].cached;
  const cpus = taskCpus(x);
  const rsoup = [cmd.node, ...cmd.execArgv, cmd.main].map(shq).join(' ');
  const tag = x.name.replace(/[^\w.-]+/g, '_');
  const job = (key: SlurmJobKey, what: string[], output: string, jobCpus: number, stageArgs: string): SlurmJobPlan => {
    const text = [
      '#!/bin/bash',
      ...what.map((l) => `# ${l}`),
      `# Written by \`rsoup run --executor slurm\`, which submits it again for what is missing (finished stages are kept).`,
      `#SBATCH --job-name=rsoup-${tag}-${key}`,
      `#SBATCH --output=${output}`,
      // a requeued task appends to its log and resumes from its last checkpoint
      '#SBATCH --open-mode=append',
      '#SBATCH --requeue',
      `#SBATCH --chdir=${cmd.cwd}`,
      ...resourceLines(x, jobCpus).map((l) => `#SBATCH ${l}`),
      // exec: scancel's SIGTERM reaches rsoup itself, which stops cleanly and keeps its checkpoint (a shell
      // between them would die and leave rsoup running, out of reach of proctrack/linuxproc)
      `exec ${rsoup} run ${shq(x.path)} --out ${shq(x.runDir)} --executor local ${stageArgs}`,
      '',
    ].join('\n');
    return { key, script: join(dir, `${key}.sh`), text, output };
  };
  const jobs: SlurmJobPlan[] = [];
  if (!baseDone)
    jobs.push(
      job(
        'base',
        [`rsoup: the base stage of experiment '${x.name}' (${plan.stages[0].what})`],
        join(dir, 'base_%j.out'),
        Math.max(cpus, x.base.pretrain?.threads ?? 0),
        '--stage base',
      ),
    );
  if (todo.length) {
    const j = job(
      'runs',
      [
        `rsoup: the PPO runs of experiment '${x.name}', one per array task (index: run):`,
        ...runs.map((r, i) => `  ${i}: ${r.name}${stageOf(i).cached ? ' (done)' : ''}`),
      ],
      join(dir, 'runs_%A_%a.out'),
      cpus,
      '--stage runs --index "$SLURM_ARRAY_TASK_ID"',
    );
    j.tasks = todo;
    if (!baseDone) j.after = 'base';
    jobs.push(j);
  }
  if (!(sweepDone && existsSync(join(x.runDir, 'report.json')))) {
    const j = job(
      'sweep',
      [`rsoup: the sweep and report of experiment '${x.name}' (${plan.stages[1 + runs.length].what})`],
      join(dir, 'sweep_%j.out'),
      Math.max(cpus, x.sweep.threads ?? 0),
      '--stage sweep',
    );
    if (todo.length) j.after = 'runs';
    else if (!baseDone) j.after = 'base';
    jobs.push(j);
  }
  return { runDir: x.runDir, dir, jobs, ...(jobs.length ? {} : { nothing: `every stage of ${x.runDir} is done and its report written: nothing to submit` }) };
}

/** The sbatch arguments of one job; dependencies by job id (placeholders such as $BASE_JOB in --dry-run). */
export function sbatchArgs(j: SlurmJobPlan, x: Experiment, deps: Partial<Record<SlurmJobKey, string>>): string[] {
  const args = ['--parsable'];
  if (j.tasks) args.push(`--array=${arraySpec(j.tasks.map((t) => t.index))}${x.executor.array_parallelism ? `%${x.executor.array_parallelism}` : ''}`);
  // a failed dependency cancels the dependant instead of leaving it pending forever
  if (j.after) args.push(`--dependency=afterok:${deps[j.after]}`, '--kill-on-invalid-dep=yes');
  args.push(j.script);
  return args;
}
