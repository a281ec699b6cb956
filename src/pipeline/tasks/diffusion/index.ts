// SPDX-License-Identifier: MIT
// The text-to-image experiment (paper App. E) in miniature: `rsoup demo --task diffusion`.
import { DIFFUSION_DEMO, checkSettings, runDiffusionExperiment, type DiffusionEvent, type DiffusionSettings } from './run.js';
import { formatDuration } from '../../../util/duration.js';

export {
  DIFFUSION_DEMO,
  runDiffusionExperiment,
  checkSettings,
  scoreImages,
  type DiffusionSettings,
  type DiffusionEvent,
  type DiffusionRunOptions,
  type FineTuned,
  type EvalResult,
} from './run.js';
export { writeDiffusionReport, expertChecks, type DiffusionReportInput } from './report.js';
export { gridPng, labelledGrid } from './grid.js';

export interface DiffusionDemoOptions {
  /** Run dir (default runs/demo-diffusion). */
  out?: string;
  /** JSON events on stdout instead of human lines on stderr. */
  json?: boolean;
  signal?: AbortSignal;
  /** Print the plan and its cost; train nothing. */
  dryRun?: boolean;
  /** Overrides of the demo settings (tests use tiny ones). */
  settings?: Partial<DiffusionSettings>;
  onEvent?: (e: DiffusionEvent) => void;
}

const fmt = formatDuration;

/** Runs the diffusion demo, printing progress; returns the report. */
export async function runDiffusionDemo(opts: DiffusionDemoOptions = {}) {
  const settings: DiffusionSettings = { ...structuredClone(DIFFUSION_DEMO), ...(opts.settings ?? {}), ...(opts.out ? { output: opts.out } : {}) };
  const t0 = performance.now();
  const print = (e: DiffusionEvent) => {
    opts.onEvent?.(e);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(e)}\n`);
      return;
    }
    const el = fmt((performance.now() - t0) / 1000);
    let line: string;
    if (e.event === 'stage') line = `${e.stage}: ${e.status === 'done' ? `done in ${fmt(e.seconds ?? 0)}` : e.status}${e.detail ? ` (${e.detail})` : ''}`;
    else if (e.event === 'progress') line = `${e.stage}: ${e.done}/${e.total}${e.detail ? ` (${e.detail})` : ''}`;
    else line = `finished in ${fmt(e.seconds)}`;
    process.stderr.write(`[${el}] ${line}\n`);
  };
  if (opts.dryRun) {
    checkSettings(settings);
    const s = settings,
      fts = s.rewards.length + s.morl.mu.length + (s.control ? 1 : 0);
    const plan = {
      event: 'plan',
      name: s.name,
      output: s.output,
      rewards: s.rewards,
      stages: [
        { stage: 'base', what: `DDPM pre-training ${s.pretrain.steps} steps × ${s.pretrain.batch_size} images (cached in ${s.output}/base)` },
        { stage: 'samples', what: `${s.samples.count} images, ${s.samples.ddim_steps}-step DDIM, scored by ${s.rewards.join(', ')}` },
        { stage: 'experts', what: `${fts} reward-weighted fine-tunes × ${s.finetune.steps} steps × ${s.finetune.batch_size} images` },
        { stage: 'sweep', what: `${1 + fts + s.eval.lambdas - 2} models × ${s.eval.captions} captions` },
      ],
    };
    if (opts.json) process.stdout.write(`${JSON.stringify(plan)}\n`);
    else process.stderr.write(`${plan.stages.map((x) => `  ${x.stage.padEnd(8)} ${x.what}`).join('\n')}\n`);
    return undefined;
  }
  if (!opts.json) process.stderr.write(`rsoup demo --task diffusion: ${settings.name} → ${settings.output}\n`);
  const res = await runDiffusionExperiment(settings, { signal: opts.signal, onEvent: print });
  if (!opts.json) {
    process.stderr.write(`\n${res.report.reading.map((l) => `  - ${l}`).join('\n')}\n\n`);
    process.stderr.write(`report: ${res.htmlPath} (numbers: ${res.reportPath}; image grid: ${res.reportPath.replace(/report\.json$/, 'grid.png')})\n`);
  }
  return res;
}
