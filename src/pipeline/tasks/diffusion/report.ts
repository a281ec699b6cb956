// SPDX-License-Identifier: MIT
// The diffusion experiment's report: the pipeline's numbers (buildReport: front, MORL's point, both
// hypervolumes, LMC gaps, λ selection), the diffusion-specific checks (each expert against the
// initialisation and the control fine-tune, the size of the fine-tuned set) and the image grid
// (captions × models, paper Fig. 13), as report.json, PNG/SVG figures and report.html.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pairedContrast } from '../../../pareto/index.js';
import { frontPlot, rewardVsLambdaPlot } from '../../../report/index.js';
import type { UNetInfo } from '../../../train/index.js';
import { buildReport, type RunCost } from '../../report.js';
import { labelledGrid } from './grid.js';
import type { DiffusionSettings, EvalResult, FineTuned } from './run.js';

export interface DiffusionReportInput {
  settings: DiffusionSettings;
  rewardNames: string[];
  entries: EvalResult[];
  tuned: FineTuned[];
  info: UNetInfo;
  pretrainLosses: number[];
  sampleScores: Float64Array[];
  evalCaptions: string[];
  timings: Record<string, number>;
  load: { start: number; end: number };
}

const f = (v: number, d = 3) => (Math.abs(v) >= 1000 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toFixed(d));
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const vec = (v: number[], d = 2) => `[${v.map((x) => +x.toFixed(d)).join(', ')}]`;

/** Expert k against the initialisation and the control on its own reward (differences in standard errors). */
export function expertChecks(rewardNames: string[], entries: EvalResult[]) {
  const init = entries.find((e) => e.kind === 'init')!;
  const control = entries.find((e) => (e.kind as string) === 'control');
  return entries
    .filter((e) => e.kind === 'expert')
    .map((e, k) => {
      const z = (o: EvalResult) => {
        const se = Math.hypot(e.stderr[k], o.stderr[k]);
        return se > 0 ? (e.rewards[k] - o.rewards[k]) / se : e.rewards[k] > o.rewards[k] ? Infinity : 0;
      };
      // Paired: every model sees the same captions with the same seeds, so per-caption differences cancel
      // the caption-to-caption spread (mean difference over its standard error).
      const paired = (o: EvalResult) => {
        const p = pairedContrast([
          [1, e.scores[k]],
          [-1, o.scores[k]],
        ]);
        return p.se > 0 ? p.z : p.mean > 0 ? Infinity : 0;
      };
      const aboveInit = e.rewards[k] > init.rewards[k];
      const aboveControl = control ? e.rewards[k] > control.rewards[k] : undefined;
      return {
        expert: e.name,
        reward: rewardNames[k],
        expert_value: e.rewards[k],
        init: init.rewards[k],
        control: control?.rewards[k],
        z_vs_init: z(init),
        z_vs_control: control ? z(control) : undefined,
        paired_z_vs_init: paired(init),
        paired_z_vs_control: control ? paired(control) : undefined,
        above_init: aboveInit,
        above_control: aboveControl,
        holds: aboveInit && aboveControl !== false,
      };
    });
}

export async function writeDiffusionReport(
  dir: string,
  r: DiffusionReportInput,
): Promise<{ reportPath: string; htmlPath: string; report: ReturnType<typeof buildReport> & { diffusion: unknown } }> {
  const s = r.settings;
  const known = r.entries.filter((e) => (e.kind as string) !== 'control');
  const runs: RunCost[] = r.tuned
    .filter((t) => t.kind !== 'control')
    .map((t) => ({ name: t.name, kind: t.kind as 'expert' | 'morl', reward: t.reward, mu: t.mu, steps: s.finetune.steps, seconds: t.seconds }));
  const base = buildReport({
    name: s.name,
    seed: s.seed,
    rewardNames: r.rewardNames,
    entries: known,
    runs,
    histories: {},
    evalPrompts: s.eval.captions,
    maxNewTokens: s.eval.ddim_steps,
  });
  const checks = expertChecks(r.rewardNames, r.entries);
  const control = r.entries.find((e) => (e.kind as string) === 'control');
  const fraction = r.info.finetuneNumel / r.info.numel;
  const reading = [
    ...checks.map(
      (c) =>
        `${c.expert}: ${c.reward} ${f(c.init)} at the initialisation, ${c.control !== undefined ? `${f(c.control)} for the control, ` : ''}${f(c.expert_value)} for the expert (paired over the same captions and seeds: ${c.paired_z_vs_init.toFixed(1)} s.e. above the initialisation${c.paired_z_vs_control !== undefined ? `, ${c.paired_z_vs_control.toFixed(1)} above the control` : ''}; unpaired ${c.z_vs_init.toFixed(1)}${c.z_vs_control !== undefined ? ` and ${c.z_vs_control.toFixed(1)}` : ''}): ${c.holds ? 'raised above both' : 'NOT raised above both'}.`,
    ),
    ...base.reading.filter((l) => !/learned:|did not clearly learn/.test(l)).map((l) => l.replace(/PPO (runs?|steps)/g, 'fine-tuning $1')),
    `Fine-tuned set: cross-attention + biases + norm scales, ${r.info.finetuneNumel} of ${r.info.numel} parameters (${(100 * fraction).toFixed(1)}%; the paper's ~10%).`,
  ];
  const diffusion = {
    settings: s,
    finetune_set: {
      parameters: r.info.finetuneNumel,
      total: r.info.numel,
      fraction,
      tensors: r.info.finetune.length,
      rule: 'names containing ".cross.", every ".bias", every normalisation ".weight"',
    },
    expert_checks: checks,
    control: control ? { rewards: control.rewards, stderr: control.stderr } : undefined,
    pretrain: { steps: s.pretrain.steps, first_loss: r.pretrainLosses[0], last_loss: r.pretrainLosses.at(-1), cached: r.pretrainLosses.length === 0 },
    samples: { count: r.sampleScores[0]?.length ?? 0, mean: r.sampleScores.map((x) => x.reduce((a, b) => a + b, 0) / x.length) },
    finetune_losses: Object.fromEntries(r.tuned.map((t) => [t.name, { first: t.losses[0], last: t.losses.at(-1), seconds: t.seconds }])),
    eval: { captions: r.evalCaptions, note: 'one fixed noise seed per caption, shared by every model; DDIM without guidance' },
    machine: { load_average_1min: r.load, cpus: (await import('node:os')).cpus().length },
    timings: r.timings,
  };
  const report = { ...base, reading, diffusion };
  const reportPath = join(dir, 'report.json');
  writeFileSync(reportPath, `${JSON.stringify({ ...report, samples: undefined }, null, 2)}\n`);
  writeFileSync(join(dir, 'timings.json'), `${JSON.stringify(r.timings, null, 2)}\n`);

  // Figures
  const experts = known.filter((e) => e.kind === 'expert');
  const morl = known.filter((e) => e.kind === 'morl');
  const soups = known.filter((e) => e.kind === 'soup');
  const init = known.find((e) => e.kind === 'init')!;
  const figs: Array<[string, { svg: string; png?: Uint8Array }, string]> = [];
  figs.push([
    'front',
    await frontPlot(
      {
        objectives: r.rewardNames,
        soups: soups.map((e) => ({ lambda: e.lambda![1], rewards: e.rewards })),
        morl: morl.map((e) => ({ mu: e.mu![1], rewards: e.rewards })),
        experts: experts.map((e) => ({ rewards: e.rewards, name: e.name })),
        init: { rewards: init.rewards, name: 'init' },
      },
      { png: true, title: `Text-to-image soups vs MORL: ${r.rewardNames[0]} vs ${r.rewardNames[1]}` },
    ),
    `The front (paper Fig. 5a analogue): soups θ(λ) labelled by λ (weight of the ${experts[1]?.name ?? 'second expert'}), MORL labelled by μ, experts, initialisation.${control ? ` The control fine-tune is at ${vec(control.rewards)}.` : ''}`,
  ]);
  figs.push([
    'rewards-vs-lambda',
    await rewardVsLambdaPlot(
      { objectives: r.rewardNames, soups: soups.map((e) => ({ lambda: e.lambda![1], rewards: e.rewards })) },
      { png: true, normalize: true },
    ),
    'Each reward against λ (min-max normalised over the soups).',
  ]);
  const rows = Math.min(s.eval.grid_captions, r.evalCaptions.length);
  const cols: Array<[string, EvalResult]> = [
    ['init', init],
    ...soups.map((e): [string, EvalResult] => [`λ=${+e.lambda![1].toFixed(2)}`, e]),
    ...morl.map((e): [string, EvalResult] => ['MORL', e]),
    ...(control ? [['control', control] as [string, EvalResult]] : []),
  ];
  const grid = labelledGrid(
    Array.from({ length: rows }, (_, i) => cols.map(([, e]) => e.images[i])),
    r.evalCaptions.slice(0, rows),
    cols.map(([l]) => l),
    `Captions × models: λ = weight of ${experts[1]?.name ?? 'expert 2'} (λ=0: ${experts[0]?.name ?? 'expert 1'})`,
  );
  figs.push([
    'grid',
    grid,
    `Generated images (paper Fig. 13): rows are evaluation captions, columns the initialisation, the soups from λ = 0 (${experts[0]?.name}) to λ = 1 (${experts[1]?.name}), MORL${control ? ' and the control' : ''}; every column uses the same noise seed per caption.`,
  ]);
  for (const [name, p] of figs) {
    writeFileSync(join(dir, `${name}.svg`), p.svg);
    if (p.png) writeFileSync(join(dir, `${name}.png`), p.png);
  }

  const all = r.entries;
  const table = `<table><tr><th>model</th><th>λ</th><th>μ</th>${r.rewardNames.map((n) => `<th>${esc(n)} (± s.e.)</th>`).join('')}</tr>${all.map((m) => `<tr><td>${esc(m.name)}</td><td>${m.lambda ? vec(m.lambda) : ''}</td><td>${m.mu ? vec(m.mu) : ''}</td>${m.rewards.map((v, k) => `<td>${f(v, 3)} ± ${f(m.stderr[k], 3)}</td>`).join('')}</tr>`).join('')}</table>`;
  const lmcRows = base.lmc.rows
    .map((x) => `<tr><td>${vec(x.lambda)}</td>${x.gaps.map((g, k) => `<td>${f(g, 3)} ± ${f(x.se[k], 3)}</td>`).join('')}</tr>`)
    .join('');
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${esc(s.name)}: text-to-image rewarded soups</title>
<style>body{font-family:'DejaVu Sans',sans-serif;max-width:1150px;margin:2em auto;padding:0 1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}figure{margin:1.5em 0}img{max-width:100%}</style></head><body>
<h1>${esc(s.name)}: text-to-image rewarded soups vs MORL (paper App. E in miniature)</h1>
<h2>Reading</h2><ul>${reading.map((l) => `<li>${esc(l)}</li>`).join('')}</ul>
<h2>Numbers</h2><ul>
<li>Hypervolume (higher is better, reference ${vec(base.hypervolume.ref, 3)}): soups ${f(base.hypervolume.soups, 4)}, MORL ${f(base.hypervolume.morl, 4)}, ratio ${Number.isFinite(base.hypervolume.ratio) ? base.hypervolume.ratio.toFixed(3) : '∞'}.${base.hypervolume.paper ? ` Paper's convention (lower is better): soups ${f(base.hypervolume.paper.soups, 4)}, MORL ${f(base.hypervolume.paper.morl, 4)}.` : ''}</li>
<li>Soups on the front: λ = ${base.hypervolume.soups_front_lambdas.map((l) => vec(l)).join(', ')}.</li>
<li>MORL: ${morl.map((e) => `${esc(e.name)} at ${vec(e.rewards, 3)}`).join('; ')}.</li>
<li>LMC (Working Hypothesis 1): ${esc(base.lmc.verdict)}.</li></ul>
<table><tr><th>λ</th>${r.rewardNames.map((n) => `<th>LMC gap ${esc(n)} (± s.e.)</th>`).join('')}</tr>${lmcRows}</table>
${figs.map(([name, p, cap]) => `<figure><img src="${name}.png" alt="${name}"><figcaption>${esc(cap)} (<a href="${name}.svg">SVG</a>)</figcaption></figure>`).join('\n')}
<h2>Every evaluated model</h2><p>${s.eval.captions} fixed captions, one noise seed per caption shared by every model, ${s.eval.ddim_steps}-step DDIM without guidance; the control is a fine-tune on a random half of the samples with random weights.</p>${table}
<h2>Settings and cost</h2><pre>${esc(JSON.stringify(s, null, 2))}</pre>
<ul>${Object.entries(r.timings)
    .map(([k, v]) => `<li>${esc(k)}: ${v.toFixed(1)} s</li>`)
    .join('')}<li>1-minute load average: ${r.load.start.toFixed(2)} at the start, ${r.load.end.toFixed(2)} at the end (${diffusion.machine.cpus} CPUs)</li></ul>
<p>Numbers: report.json.</p></body></html>
`;
  const htmlPath = join(dir, 'report.html');
  writeFileSync(htmlPath, html);
  return { reportPath, htmlPath, report };
}
