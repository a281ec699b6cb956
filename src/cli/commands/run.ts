// SPDX-License-Identifier: MIT
// rsoup run EXPERIMENT.yml [--dry-run] [--json] [--out DIR]: the rewarded-soup experiment end to end
// (base → experts → MORL → sweep → report), each stage cached in the run dir by the hash of its inputs.
// Human progress on stderr (one line per stage, ETAs for the long ones); --json: events on stdout.
// A run dir whose remaining work is locked by other live processes: exit 75 at once, naming them.
// --executor slurm: submits the run as Slurm jobs (src/pipeline/executor/, docs/slurm.md) and prints their
// ids; --wait follows them. --stage/--index: one piece of the run, here (what each Slurm job runs).
import type { Command } from 'commander';
import { hostname } from 'node:os';
import { SoupError } from '../../errors.js';
import {
  checkFiles,
  fmtTime,
  loadExperiment,
  LOCK_LEASE_S,
  planExperiment,
  readReport,
  runExperiment,
  RunDirBusyError,
  type Experiment,
  type ExperimentInput,
  type RunEvent,
} from '../../pipeline/index.js';
import { planSlurm, sbatchArgs, shq, type SlurmJobKey, type SlurmPlan } from '../../pipeline/executor/plan.js';
import { failureMessage, followSlurm, submitSlurm, taskLabel } from '../../pipeline/executor/slurm.js';
import { runStage, type RunResult, type StageSelection } from '../../pipeline/run.js';
import type { Report } from '../../pipeline/report.js';
import { jsonLine, reportError, UsageError } from '../output.js';
import { withSigint } from '../signals.js';
import { TASKS, taskOf } from '../../pipeline/tasks/index.js';
import { readConfigFile } from '../../util/config.js';

/** Exit status of a run whose work is all held by other live processes (sysexits' EX_TEMPFAIL: try again later). */
export const EXIT_BUSY = 75;
/** Seconds between the tries of --stage on a piece held from another host. */
const BUSY_RETRY_S = 15;

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(new SoupError('ERR_SOUP_ABORTED', 'aborted while waiting for a lock'));
      },
      { once: true },
    );
  });
}

export function printEvent(e: RunEvent, json: boolean, t0: number): void {
  if (json) {
    jsonLine(e);
    if (e.event === 'run') return;
  }
  if (e.event === 'run' || e.event === 'lock') return;
  if (e.event === 'warning') {
    process.stderr.write(`rsoup: warning: ${e.message}\n`);
    return;
  }
  const el = fmtTime((performance.now() - t0) / 1000);
  let line = '';
  if (e.event === 'stage') {
    if (e.status === 'cached') line = `${e.stage}: cached${e.detail ? ` (${e.detail})` : ''}`;
    else if (e.status === 'start') line = `${e.stage}: start${e.detail ? `: ${e.detail}` : ''}`;
    else line = `${e.stage}: done in ${fmtTime(e.seconds ?? 0)}${e.detail ? ` (${e.detail})` : ''}`;
  } else if (e.event === 'progress') {
    line = `${e.stage}: ${e.done}/${e.total}${e.eta !== undefined ? `, ETA ${fmtTime(e.eta)}` : ''}${e.detail ? ` (${e.detail})` : ''}`;
  } else if (e.event === 'finished') {
    line = `finished in ${fmtTime(e.seconds)}: ${Object.entries(e.timings)
      .map(([k, v]) => `${k} ${fmtTime(v)}`)
      .join(', ')}`;
  }
  process.stderr.write(`[${el}] ${line}\n`);
}

/** The sbatch command lines of a Slurm plan, with $BASE_JOB / $RUNS_JOB for the ids Slurm gives at submission. */
function slurmDryRun(x: Experiment, sp: SlurmPlan) {
  const deps: Partial<Record<SlurmJobKey, string>> = { base: '$BASE_JOB', runs: '$RUNS_JOB' };
  return sp.jobs.map((j) => ({
    key: j.key,
    script: j.script,
    text: j.text,
    sbatch: ['sbatch', ...sbatchArgs(j, x, deps)].map((a) => (a.includes('$') ? a : shq(a))).join(' '),
    tasks: j.tasks,
  }));
}

export function printPlan(x: Experiment, json: boolean): boolean {
  const plan = planExperiment(x);
  const missing = plan.files.filter((f) => !f.exists);
  const slurm = x.executor.type === 'slurm' ? planSlurm(x) : undefined;
  if (json) {
    jsonLine({
      event: 'plan',
      ...plan,
      ok: missing.length === 0,
      ...(slurm ? { slurm: { dir: slurm.dir, jobs: slurmDryRun(x, slurm), nothing: slurm.nothing } } : {}),
    });
    return missing.length === 0;
  }
  const w = process.stderr;
  w.write(`experiment ${plan.name}: rewards ${plan.rewards.join(', ')}; run dir ${plan.runDir}\n`);
  w.write('files:\n');
  for (const f of plan.files) w.write(`  ${f.exists ? 'ok     ' : 'MISSING'} ${f.field}: ${f.path}\n`);
  w.write('plan:\n');
  for (const s of plan.stages) {
    const cost = Object.entries(s.cost)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    w.write(`  ${s.stage.padEnd(8)} ${s.cached ? '[cached] ' : ''}${s.what}${cost ? ` (${cost})` : ''}\n`);
  }
  const t = plan.total;
  w.write(
    `cost: ${t.ppo_runs} PPO runs, ${t.ppo_steps} PPO steps, ${t.samples} samples, ~${t.generated_tokens} generated tokens; ${t.evaluations} evaluations. The soups' front costs ${t.soups_cost_runs} runs (the experts), MORL ${t.morl_cost_runs} more.\n`,
  );
  if (slurm) {
    const jobs = slurmDryRun(x, slurm);
    w.write(
      `slurm: ${slurm.nothing ?? `${jobs.length} job${jobs.length > 1 ? 's' : ''}, scripts and logs under ${slurm.dir}/ (written at submission; nothing is submitted now)`}\n`,
    );
    for (const j of jobs)
      w.write(
        `  ${j.key === 'base' ? 'BASE_JOB=$(' : j.key === 'runs' ? 'RUNS_JOB=$(' : ''}${j.sbatch}${j.key !== 'sweep' ? ')' : ''}${j.tasks ? `    # tasks ${j.tasks.map((t) => `${t.index} ${t.run}`).join(', ')}` : ''}\n`,
      );
    for (const j of jobs) w.write(`--- ${j.script}\n${j.text}`);
  }
  if (missing.length) w.write(`dry run: ${missing.length} missing file${missing.length > 1 ? 's' : ''}: ${missing.map((f) => f.field).join(', ')}\n`);
  else w.write('dry run: the config and every file it names are in order\n');
  return missing.length === 0;
}

export interface RunCliOptions {
  json?: boolean;
  out?: string;
  dryRun?: boolean;
  label?: string;
  executor?: string;
  wait?: boolean;
  stage?: string;
  index?: string;
}

/** --stage/--index as a StageSelection (usage errors name the flag). */
function stageSelection(o: RunCliOptions): StageSelection | undefined {
  if (o.index !== undefined && o.stage !== 'runs') throw new UsageError('--index goes with --stage runs');
  if (o.stage === undefined) return undefined;
  if (o.stage === 'base' || o.stage === 'sweep') return { stage: o.stage };
  if (o.stage !== 'runs') throw new UsageError(`--stage ${o.stage}: expected base, runs (with --index) or sweep (the sweep and report)`);
  if (o.index === undefined || !/^\d+$/.test(o.index))
    throw new UsageError(
      `--stage runs needs --index K, a non-negative integer (the PPO run's place in the plan; a Slurm array task passes $SLURM_ARRAY_TASK_ID)${o.index !== undefined ? `, got '${o.index}'` : ''}`,
    );
  return { stage: 'runs', index: Number(o.index) };
}

/** Runs an experiment with progress printing; the last lines say where the report is and what it found. */
export async function runAndPrint(src: string | ExperimentInput, o: RunCliOptions): Promise<void> {
  const x = loadExperiment(src, { output: o.out });
  if (o.executor !== undefined && o.executor !== 'local' && o.executor !== 'slurm') throw new UsageError(`--executor ${o.executor}: expected local or slurm`);
  const only = stageSelection(o);
  if (only && o.executor === 'slurm') throw new UsageError('--stage runs one piece here (as each Slurm job does); it does not combine with --executor slurm');
  if (o.wait && o.executor !== 'slurm' && x.executor.type !== 'slurm')
    throw new UsageError('--wait follows Slurm jobs: it goes with --executor slurm (or `executor: { type: slurm }` in the config)');
  // the executor is in no stage hash: switching it reuses every finished stage
  if (o.executor) x.executor = { ...x.executor, type: o.executor as 'local' | 'slurm' };
  if (only) x.executor = { ...x.executor, type: 'local' };
  if (o.dryRun) {
    if (!printPlan(x, !!o.json)) process.exitCode = 1;
    return;
  }
  if (x.executor.type === 'slurm') {
    await submitAndPrint(x, o);
    return;
  }
  const t0 = performance.now();
  process.stderr.write(
    `${o.label ?? 'rsoup run'}: ${x.name} → ${x.runDir}${only ? ` (--stage ${only.stage}${only.stage === 'runs' ? ` --index ${only.index}` : ''})` : ''}\n`,
  );
  let res: RunResult | undefined;
  try {
    res = await withSigint(async (signal) => {
      if (!only) return runExperiment(x, { signal, onEvent: (e) => printEvent(e, !!o.json, t0) });
      // one piece (a Slurm job): a holder on another host counts as alive until its lease runs out, which is
      // how a requeued task finds its dead predecessor's lock: wait that out (two leases), then take it over
      for (let waited = 0; ; waited += BUSY_RETRY_S) {
        try {
          return await runStage(x, only, { signal, onEvent: (e) => printEvent(e, !!o.json, t0) });
        } catch (e) {
          if (!(e instanceof RunDirBusyError) || e.holders.some((h) => h.host === hostname()) || waited >= 2 * LOCK_LEASE_S) throw e;
          process.stderr.write(`rsoup run: ${e.message}; trying again in ${BUSY_RETRY_S} s\n`);
          await abortableSleep(BUSY_RETRY_S * 1000, signal);
        }
      }
    });
  } catch (e) {
    if (!(e instanceof RunDirBusyError)) throw e;
    // not a failure: the work is in other hands (a Slurm array task or a second terminal may see this)
    if (o.json) jsonLine({ event: 'busy', runDir: e.runDir, holders: e.holders.map(({ token: _t, ...h }) => h), message: e.message });
    reportError(e);
    process.exitCode = EXIT_BUSY;
    return;
  }
  if (res) printFound(res.report, res.reportPath, res.htmlPath);
}

function printFound(r: Report, reportPath: string, htmlPath: string, reading = true): void {
  if (reading) process.stderr.write(`\n${r.reading.map((l) => `  - ${l}`).join('\n')}\n\n`);
  process.stderr.write(`report: ${htmlPath} (numbers: ${reportPath}; front plot: ${reportPath.replace(/report\.json$/, 'front.png')})\n`);
  process.stderr.write(
    `found: soups/MORL hypervolume ratio ${Number.isFinite(r.hypervolume.ratio) ? r.hypervolume.ratio.toFixed(3) : '∞'} (soups ${r.hypervolume.soups.toPrecision(4)}, MORL ${r.hypervolume.morl.toPrecision(4)}, same reference point [${r.hypervolume.ref.map((v) => +v.toFixed(4)).join(', ')}]); LMC (Hypothesis 1) ${r.lmc.verdict.split(':')[0]}\n`,
  );
}

/**
 * --executor slurm: submits what is missing and prints the job ids (stdout: `KEY ID` lines, or a JSON
 * event); --wait follows the jobs (their log lines, prefixed) and exits with the run's status.
 */
async function submitAndPrint(x: Experiment, o: RunCliOptions): Promise<void> {
  checkFiles(x);
  const plan = planSlurm(x);
  const resubmit = `rsoup run ${shq(x.path)} --out ${shq(x.runDir)} --executor slurm${o.wait ? ' --wait' : ''}`;
  const t0 = performance.now();
  let sub;
  try {
    sub = await submitSlurm(x, plan, { resubmit });
  } catch (e) {
    if (!(e instanceof SoupError && e.code === 'ERR_SOUP_BUSY')) throw e;
    if (o.json) jsonLine({ event: 'busy', runDir: x.runDir, message: e.message });
    reportError(e);
    process.exitCode = EXIT_BUSY;
    return;
  }
  if (!sub) {
    process.stderr.write(`rsoup run: ${plan.nothing}\n`);
    if (o.json) jsonLine({ event: 'submitted', runDir: x.runDir, jobs: {} });
    const r = readReport(x.runDir);
    if (o.wait && r) printFound(r, `${x.runDir}/report.json`, `${x.runDir}/report.html`);
    return;
  }
  const j = sub.jobs;
  if (o.json) jsonLine({ event: 'submitted', runDir: x.runDir, jobs: j });
  else for (const [k, v] of Object.entries(j)) process.stdout.write(`${k} ${v.id}\n`);
  const parts = [
    j.base && `base job ${j.base.id}`,
    j.runs && `runs array ${j.runs.id} (${j.runs.tasks.map((t) => `${t.index} ${t.run}`).join(', ')})`,
    j.sweep && `sweep + report job ${j.sweep.id}`,
  ].filter(Boolean);
  process.stderr.write(
    `rsoup run: ${x.name} → ${x.runDir}: submitted to Slurm: ${parts.join(', ')}; scripts and logs in ${x.runDir}/slurm/; \`rsoup status ${shq(x.runDir)}\` shows each task\n`,
  );
  if (!o.wait) return;
  const el = () => fmtTime((performance.now() - t0) / 1000);
  const res = await withSigint((signal) =>
    followSlurm(sub, {
      signal,
      onState: (t) => {
        if (o.json)
          jsonLine({ event: 'slurm', job: t.id, key: t.key, index: t.index, run: t.run, state: t.state, reason: t.reason, exitCode: t.exitCode, log: t.log });
        else
          process.stderr.write(
            `[${el()}] slurm: ${taskLabel(t)}, job ${t.id}: ${t.state}${t.reason && t.state !== 'RUNNING' ? ` (${t.reason})` : ''}${isEnded(t.state) && t.exitCode ? `, exit code ${t.exitCode}` : ''}\n`,
          );
      },
      onLog: (t, line) => {
        if (!o.json) process.stderr.write(`  ${t.key === 'runs' ? `${t.run}` : t.key} | ${line}\n`);
      },
    }),
  );
  if (!res.ok) throw new SoupError('ERR_SOUP_TRAIN', failureMessage(sub, res.tasks));
  const r = readReport(x.runDir);
  if (!r) throw new SoupError('ERR_SOUP_INTERNAL', `the sweep job completed but ${x.runDir}/report.json is missing`);
  if (o.json) jsonLine({ event: 'finished', report: `${x.runDir}/report.json`, html: `${x.runDir}/report.html`, seconds: (performance.now() - t0) / 1000 });
  // the reading came with the sweep job's log lines
  printFound(r, `${x.runDir}/report.json`, `${x.runDir}/report.html`, false);
}

const isEnded = (s: string) => s !== 'PENDING' && s !== 'RUNNING' && s !== 'REQUEUED' && s !== 'CONFIGURING';

export function register(program: Command): void {
  program
    .command('run')
    .description('run a rewarded-soup experiment: base → experts → MORL → sweep → report (cached, resumable)')
    .argument(
      '<experiment>',
      'experiment YAML (see examples/ and docs/experiment.md); `task: locomotion` or `task: diffusion` at its top runs those experiments',
    )
    .option('--dry-run', 'check the config and every file it names, print the plan and its cost; train nothing')
    .option('--json', 'JSON events on stdout')
    .option('--out <dir>', "run dir (default: the config's `output`)")
    .option(
      '--executor <type>',
      "local (child processes here) or slurm (a job for the base, an array for the PPO runs, a job for the sweep + report); default: the config's executor.type",
    )
    .option('--wait', "with --executor slurm: follow the jobs, print their progress, exit with the run's status (Ctrl-C cancels them)")
    .option('--stage <stage>', 'run one piece here: base, runs (with --index) or sweep (the sweep and report); what each Slurm job runs')
    .option('--index <k>', 'with --stage runs: the PPO run to train (its place in the plan: experts, then MORL)')
    .action(async (file: string, o: RunCliOptions) => {
      const { task, config } = taskOf(readConfigFile(file, 'experiment'), file);
      if (task === 'text') return void (await runAndPrint(file, o));
      // locomotion and diffusion run here, in one process, through the task table
      for (const [flag, set] of [
        ['--executor', o.executor !== undefined && o.executor !== 'local'],
        ['--wait', o.wait],
        ['--stage', o.stage !== undefined],
        ['--index', o.index !== undefined],
      ] as const) {
        if (set) throw new UsageError(`${flag}: a ${task} experiment runs here, in one process; Slurm and single pieces take text experiments`);
      }
      await TASKS[task].run(config, file, { out: o.out, dryRun: o.dryRun, json: o.json });
    });
}
