// SPDX-License-Identifier: MIT
// rsoup run EXPERIMENT.yml [--dry-run] [--json] [--out DIR]: the rewarded-soup experiment end to end
// (base → experts → MORL → sweep → report), each stage cached in the run dir by the hash of its inputs.
// Human progress on stderr (one line per stage, ETAs for the long ones); --json: events on stdout.
// A run dir whose remaining work is locked by other live processes: exit 75 at once, naming them.
import type { Command } from 'commander';
import { fmtTime, loadExperiment, planExperiment, runExperiment, RunDirBusyError, type Experiment, type ExperimentInput, type RunEvent } from '../../pipeline/index.js';
import { jsonLine, reportError } from '../output.js';
import { withSigint } from '../signals.js';

/** Exit status of a run whose work is all held by other live processes (sysexits' EX_TEMPFAIL: try again later). */
export const EXIT_BUSY = 75;

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
    line = `finished in ${fmtTime(e.seconds)}: ${Object.entries(e.timings).map(([k, v]) => `${k} ${fmtTime(v)}`).join(', ')}`;
  }
  process.stderr.write(`[${el}] ${line}\n`);
}

export function printPlan(x: Experiment, json: boolean): boolean {
  const plan = planExperiment(x);
  const missing = plan.files.filter((f) => !f.exists);
  if (json) {
    jsonLine({ event: 'plan', ...plan, ok: missing.length === 0 });
    return missing.length === 0;
  }
  const w = process.stderr;
  w.write(`experiment ${plan.name}: rewards ${plan.rewards.join(', ')}; run dir ${plan.runDir}\n`);
  w.write('files:\n');
  for (const f of plan.files) w.write(`  ${f.exists ? 'ok     ' : 'MISSING'} ${f.field}: ${f.path}\n`);
  w.write('plan:\n');
  for (const s of plan.stages) {
    const cost = Object.entries(s.cost).map(([k, v]) => `${k} ${v}`).join(', ');
    w.write(`  ${s.stage.padEnd(8)} ${s.cached ? '[cached] ' : ''}${s.what}${cost ? ` (${cost})` : ''}\n`);
  }
  const t = plan.total;
  w.write(`cost: ${t.ppo_runs} PPO runs, ${t.ppo_steps} PPO steps, ${t.samples} samples, ~${t.generated_tokens} generated tokens; ${t.evaluations} evaluations. The soups' front costs ${t.soups_cost_runs} runs (the experts), MORL ${t.morl_cost_runs} more.\n`);
  if (missing.length) w.write(`dry run: ${missing.length} missing file${missing.length > 1 ? 's' : ''}: ${missing.map((f) => f.field).join(', ')}\n`);
  else w.write('dry run: the config and every file it names are in order\n');
  return missing.length === 0;
}

/** Runs an experiment with progress printing; the last lines say where the report is and what it found. */
export async function runAndPrint(src: string | ExperimentInput, o: { json?: boolean; out?: string; dryRun?: boolean; label?: string }): Promise<void> {
  const x = loadExperiment(src, { output: o.out });
  if (o.dryRun) {
    if (!printPlan(x, !!o.json)) process.exitCode = 1;
    return;
  }
  const t0 = performance.now();
  process.stderr.write(`${o.label ?? 'rsoup run'}: ${x.name} → ${x.runDir}\n`);
  let res;
  try {
    res = await withSigint((signal) => runExperiment(x, { signal, onEvent: (e) => printEvent(e, !!o.json, t0) }));
  } catch (e) {
    if (!(e instanceof RunDirBusyError)) throw e;
    // not a failure: the work is in other hands (a Slurm array task or a second terminal may see this)
    if (o.json) jsonLine({ event: 'busy', runDir: e.runDir, holders: e.holders.map(({ token: _t, ...h }) => h), message: e.message });
    reportError(e);
    process.exitCode = EXIT_BUSY;
    return;
  }
  const r = res.report;
  process.stderr.write(`\n${r.reading.map((l) => `  - ${l}`).join('\n')}\n\n`);
  process.stderr.write(`report: ${res.htmlPath} (numbers: ${res.reportPath}; front plot: ${res.reportPath.replace(/report\.json$/, 'front.png')})\n`);
  process.stderr.write(`found: soups/MORL hypervolume ratio ${Number.isFinite(r.hypervolume.ratio) ? r.hypervolume.ratio.toFixed(3) : '∞'} (soups ${r.hypervolume.soups.toPrecision(4)}, MORL ${r.hypervolume.morl.toPrecision(4)}, same reference point [${r.hypervolume.ref.map((v) => +v.toFixed(4)).join(', ')}]); LMC (Hypothesis 1) ${r.lmc.verdict.split(':')[0]}\n`);
}

export function register(program: Command): void {
  program
    .command('run')
    .description('run a rewarded-soup experiment: base → experts → MORL → sweep → report (cached, resumable)')
    .argument('<experiment>', 'experiment YAML (see examples/ and docs/experiment.md)')
    .option('--dry-run', 'check the config and every file it names, print the plan and its cost; train nothing')
    .option('--json', 'JSON events on stdout')
    .option('--out <dir>', 'run dir (default: the config\'s `output`)')
    .action(async (file: string, o: { dryRun?: boolean; json?: boolean; out?: string }) => {
      await runAndPrint(file, o);
    });
}

