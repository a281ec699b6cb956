// SPDX-License-Identifier: MIT
// The report stage: report.json (every evaluated model, both hypervolumes with their reference points,
// LMC gaps, λ selection, training cost), the plots (front as Fig. 1b, rewards against λ, spider map for
// N >= 3, training curves) as SVG + PNG, and report.html with a short reading that says what was found,
// whichever way it came out.
import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { hypervolume, lmcGaps, nadirRef, paperBox, paperHypervolume, paretoFront, selectLambda } from '../pareto/index.js';
import { frontPlot, renderSpec, rewardVsLambdaPlot, spiderPlot, PLOT_CONFIG, type Plot, type TopLevelSpec } from '../report/index.js';
import type { EvalEntry } from './sweep.js';

export interface RunCost {
  name: string;
  kind: 'expert' | 'morl';
  reward?: string;
  mu?: number[];
  steps: number;
  seconds: number;
  /** CPU seconds of the run's process (absent for runs logged before it was recorded). */
  cpuSeconds?: number;
}

export interface ReportInput {
  name: string;
  seed: number;
  rewardNames: string[];
  entries: EvalEntry[];
  runs: RunCost[];
  /** Per-run training history: step -> per-reward means. */
  histories: Record<string, Array<{ step: number; rewards: Record<string, number>; kl: number }>>;
  ref?: number[];
  preferences?: number[][];
  evalPrompts: number;
  maxNewTokens: number;
}

const f = (v: number, d = 3) => (Math.abs(v) >= 1000 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toFixed(d));
const vec = (v: number[], d = 2) => `[${v.map((x) => +x.toFixed(d)).join(', ')}]`;

export function buildReport(r: ReportInput) {
  const N = r.rewardNames.length;
  const init = r.entries.find((e) => e.kind === 'init')!;
  const experts = r.entries.filter((e) => e.kind === 'expert');
  const morl = r.entries.filter((e) => e.kind === 'morl');
  const soupsAll = r.entries.filter((e) => e.kind === 'soup');
  const soups = soupsAll.filter((e) => e.lambda!.every((v) => v >= 0 && v <= 1));

  // Learned: each expert's own reward against the initialisation's (difference in standard errors).
  const learned = experts.map((e, i) => {
    const d = e.rewards[i] - init.rewards[i];
    const se = Math.hypot(e.stderr[i], init.stderr[i]);
    return { expert: e.name, reward: r.rewardNames[i], init: init.rewards[i], expert_value: e.rewards[i], gain: d, z: se > 0 ? d / se : d > 0 ? Infinity : 0, clear: se > 0 ? d / se >= 2 : d > 0 };
  });
  // Conflict: every expert beats every other expert on its own reward.
  const conflict = experts.every((e, i) => experts.every((o, j) => i === j || e.rewards[i] > o.rewards[i]));

  // Hypervolumes: the soups' set (experts are λ = eᵢ) vs MORL's set (experts are μ = eᵢ, plus the MORL runs).
  const soupPts = soups.map((e) => e.rewards);
  const morlPts = [...experts.map((e) => e.rewards), ...morl.map((e) => e.rewards)];
  const all = [...soupPts, ...morlPts, init.rewards];
  const ref = r.ref ?? nadirRef(all, { margin: 0.1 });
  const hvSoups = hypervolume(soupPts, { ref, allowZero: true });
  const hvMorl = hypervolume(morlPts, { ref, allowZero: true });
  let paper: { utopia: number[]; lower: number[]; soups: number; morl: number } | undefined;
  try {
    const box = paperBox([soupPts, morlPts]);
    paper = { ...box, soups: paperHypervolume(soupPts, box), morl: paperHypervolume(morlPts, box) };
  } catch {
    paper = undefined;
  }
  const front = paretoFront(soupPts).indices.map((i) => soups[i].lambda!);

  // LMC (Working Hypothesis 1): R_k(θ(λ)) − Σ λᵢ R_k(θᵢ), strictly and against 2 standard errors.
  const lmc = lmcGaps(soups.map((e) => ({ lambda: e.lambda!, rewards: e.rewards, name: e.name })), experts.map((e) => e.rewards));
  const rows = lmc.rows.map((row, j) => {
    const s = soups[j];
    const se = row.gaps.map((_, k) => Math.sqrt(s.stderr[k] ** 2 + experts.reduce((a, e, i) => a + (row.lambda[i] * e.stderr[k]) ** 2, 0)));
    return { lambda: row.lambda, rewards: row.rewards, baseline: row.baseline, gaps: row.gaps, se, holds: row.holds, significantViolation: row.gaps.map((g, k) => g < -2 * se[k]) };
  });
  const interior = rows.filter((x) => x.lambda.every((v) => v > 1e-9));
  const interiorPairs = interior.length * N;
  const interiorHold = interior.reduce((a, x) => a + x.gaps.filter((g) => g >= 0).length, 0);
  const significant = interior.reduce((a, x) => a + x.significantViolation.filter(Boolean).length, 0);
  const meanGap = r.rewardNames.map((_, k) => interior.reduce((a, x) => a + x.gaps[k], 0) / Math.max(1, interior.length));

  const prefs = r.preferences ?? (N === 2 ? [[0.75, 0.25], [0.5, 0.5], [0.25, 0.75]] : [Array(N).fill(1 / N)]);
  const selection = prefs.map((mu) => {
    const s = selectLambda(soups.map((e) => ({ lambda: e.lambda!, rewards: e.rewards })), mu);
    return { preference: mu, best: { lambda: s.best.lambda, rewards: s.best.rewards, utility: s.best.utility }, lambdaEqualsMu: s.muRule ? { lambda: s.muRule.lambda, utility: s.muRule.utility, regret: s.muRule.regret } : undefined };
  });

  const costOf = (kind: 'expert' | 'morl') => {
    const rs = r.runs.filter((x) => x.kind === kind);
    const cpu = rs.every((x) => x.cpuSeconds !== undefined) ? rs.reduce((a, x) => a + x.cpuSeconds!, 0) : undefined;
    return { runs: rs.length, ppo_steps: rs.reduce((a, x) => a + x.steps, 0), seconds: rs.reduce((a, x) => a + x.seconds, 0), ...(cpu !== undefined ? { cpu_seconds: cpu } : {}) };
  };
  const cost = { soups: { ...costOf('expert'), note: 'N experts; every λ afterwards is inference only' }, morl: { ...costOf('morl'), note: 'the MORL runs listed (plus the experts, its μ = eᵢ endpoints)' } };

  const verdictH1 = interiorPairs === 0
    ? 'not tested (no interior λ)'
    : significant === 0 && interiorHold === interiorPairs
      ? 'holds: every interior soup is at least as good as the experts\' linear interpolation on every reward'
      : significant === 0
        ? `holds within noise: ${interiorHold}/${interiorPairs} (λ, reward) gaps are ≥ 0 and no negative gap exceeds 2 standard errors`
        : `does not hold: ${significant}/${interiorPairs} (λ, reward) gaps are negative by more than 2 standard errors (${interiorHold}/${interiorPairs} are ≥ 0)`;
  const ratio = hvMorl > 0 ? hvSoups / hvMorl : Infinity;
  const reading = [
    ...learned.map((l) => `${l.expert} ${l.clear ? 'learned' : 'did not clearly learn'}: ${l.reward} ${f(l.init)} at the initialisation → ${f(l.expert_value)} (${l.gain >= 0 ? '+' : ''}${f(l.gain)}, ${Number.isFinite(l.z) ? l.z.toFixed(1) : '∞'} standard errors).`),
    conflict ? `The rewards conflict: each expert beats the other expert${N > 2 ? 's' : ''} on its own reward.` : 'The rewards do not clearly conflict: some expert does not beat the others on its own reward.',
    `Working Hypothesis 1 (LMC) ${verdictH1}; mean gap per reward ${r.rewardNames.map((n, k) => `${n} ${f(meanGap[k])}`).join(', ')}.`,
    `Hypervolume (higher is better, reference point ${vec(ref, 4)}): soups ${f(hvSoups, 4)}, MORL ${f(hvMorl, 4)}; ratio soups/MORL = ${Number.isFinite(ratio) ? ratio.toFixed(3) : '∞'} (${ratio >= 1 ? 'the soups\' front covers at least as much' : 'MORL\'s front covers more'}).` + (paper ? ` Paper's convention (lower is better, box utopia ${vec(paper.utopia, 4)}, lower ${vec(paper.lower, 4)}): soups ${f(paper.soups, 4)}, MORL ${f(paper.morl, 4)}.` : ''),
    ...selection.map((s) => `For μ̂ = ${vec(s.preference)}: best evaluated λ = ${vec(s.best.lambda)}${s.lambdaEqualsMu ? `; λ = μ̂ gives regret ${f(s.lambdaEqualsMu.regret)}` : ''}.`),
    `Training cost: soups ${cost.soups.runs} PPO runs (${cost.soups.ppo_steps} steps, ${cost.soups.seconds.toFixed(0)} s) for ${soups.length} points; MORL ${cost.morl.runs} extra run${cost.morl.runs === 1 ? '' : 's'} (${cost.morl.ppo_steps} steps, ${cost.morl.seconds.toFixed(0)} s) for ${morl.length} point${morl.length === 1 ? '' : 's'}.`,
  ];
  return {
    format: 'rewarded-soups/report@1',
    name: r.name,
    seed: r.seed,
    rewards: r.rewardNames,
    evaluation: { prompts: r.evalPrompts, max_new_tokens: r.maxNewTokens, note: 'fixed-length sampling, one seed shared by every model' },
    models: r.entries.map((e) => ({ kind: e.kind, name: e.name, lambda: e.lambda, mu: e.mu, rewards: e.rewards, stderr: e.stderr })),
    learned,
    conflict,
    hypervolume: {
      ref, ref_rule: r.ref ? 'given in the config' : 'nadir of every evaluated model minus 10% of the range',
      soups: hvSoups, morl: hvMorl, ratio,
      sets: { soups: 'soups with λ on the simplex (λ = eᵢ are the experts)', morl: 'experts (μ = eᵢ) and the MORL runs' },
      paper,
      soups_front_lambdas: front,
    },
    lmc: { holds: verdictH1.startsWith('holds'), verdict: verdictH1, strict_holds: lmc.holds, fraction_holds: lmc.fractionHolds, min_gap: lmc.minGap, mean_interior_gap: meanGap, significant_violations: significant, rows },
    selection,
    cost,
    extrapolation: soupsAll.filter((e) => !soups.includes(e)).map((e) => ({ lambda: e.lambda, rewards: e.rewards })),
    reading,
    samples: r.entries.map((e) => ({ name: e.name, samples: e.samples })),
  };
}

export type Report = ReturnType<typeof buildReport>;

function movingAverage(x: number[], w: number): number[] {
  return x.map((_, i) => {
    const a = x.slice(Math.max(0, i - w + 1), i + 1);
    return a.reduce((s, v) => s + v, 0) / a.length;
  });
}

async function trainingPlot(r: ReportInput): Promise<Plot> {
  const rows: Array<{ run: string; step: number; reward: string; value: number }> = [];
  for (const [run, h] of Object.entries(r.histories)) {
    for (const name of r.rewardNames) {
      const ma = movingAverage(h.map((x) => x.rewards[name] ?? NaN), 10);
      h.forEach((x, i) => Number.isFinite(ma[i]) && rows.push({ run, step: x.step, reward: name, value: ma[i] }));
    }
  }
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Training: each reward during PPO (10-step moving average)',
    config: PLOT_CONFIG,
    data: { values: rows },
    facet: { column: { field: 'reward', type: 'nominal', title: null, sort: r.rewardNames } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 300, height: 220,
      mark: { type: 'line', strokeWidth: 2 },
      encoding: { x: { field: 'step', type: 'quantitative' }, y: { field: 'value', type: 'quantitative', title: 'mean reward', scale: { zero: false } }, color: { field: 'run', type: 'nominal' } },
    },
  } as unknown as TopLevelSpec;
  return renderSpec(spec, { png: true });
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** Writes report.json, the plots (SVG + PNG) and report.html into `dir`; returns the report. */
export async function writeReport(dir: string, r: ReportInput, timings: Record<string, number>, computed: Record<string, number> = {}): Promise<{ report: Report; files: string[] }> {
  const report = buildReport(r);
  const files: string[] = [];
  const N = r.rewardNames.length;
  const put = (name: string, data: string | Uint8Array) => {
    writeFileSync(join(dir, name), data);
    files.push(join(dir, name));
  };
  put('report.json', `${JSON.stringify(report, null, 2)}\n`);
  const experts = r.entries.filter((e) => e.kind === 'expert');
  const morl = r.entries.filter((e) => e.kind === 'morl');
  const soups = r.entries.filter((e) => e.kind === 'soup');
  const init = r.entries.find((e) => e.kind === 'init')!;
  const two = (v: number[]) => [v[0], v[1]];
  const plots: Array<[string, Plot, string]> = [];
  plots.push(['front', await frontPlot({
    objectives: r.rewardNames.slice(0, 2),
    soups: soups.map((e) => ({ lambda: N === 2 ? e.lambda![1] : e.lambda!, rewards: two(e.rewards) })),
    morl: morl.map((e) => ({ mu: N === 2 ? e.mu![1] : e.mu!, rewards: two(e.rewards) })),
    experts: experts.map((e) => ({ rewards: two(e.rewards), name: e.name })),
    init: { rewards: two(init.rewards), name: 'init' },
  }, { png: true, title: `Rewarded soups vs MORL: ${r.rewardNames[0]} vs ${r.rewardNames[1]}` }), 'The front (paper Fig. 1b): soups θ(λ) labelled by λ (weight of the second expert), MORL labelled by μ, the experts and the initialisation; the dashed segment is the LMC lower bound.']);
  if (N === 2) plots.push(['rewards-vs-lambda', await rewardVsLambdaPlot({ objectives: r.rewardNames, soups: soups.map((e) => ({ lambda: e.lambda![1], rewards: e.rewards })) }, { png: true, normalize: true }), 'Each reward against λ (min-max normalised over the soups, paper Fig. 4b).']);
  if (N >= 3) plots.push(['spider', await spiderPlot({ objectives: r.rewardNames, series: [...experts, ...morl, ...soups.filter((e) => e.lambda!.every((v) => Math.abs(v - 1 / N) < 1e-6))].map((e) => ({ name: e.name, rewards: e.rewards })) }, { png: true }), 'Spider map (paper Fig. 2f).']);
  if (Object.keys(r.histories).length) plots.push(['training', await trainingPlot(r), 'Rewards during PPO.']);
  for (const [name, p] of plots) {
    put(`${name}.svg`, p.svg);
    if (p.png) put(`${name}.png`, p.png);
  }
  const table = `<table><tr><th>model</th><th>λ</th><th>μ</th>${r.rewardNames.map((n) => `<th>${esc(n)} (± s.e.)</th>`).join('')}</tr>${report.models.map((m) => `<tr><td>${esc(m.name)}</td><td>${m.lambda ? vec(m.lambda) : ''}</td><td>${m.mu ? vec(m.mu) : ''}</td>${m.rewards.map((v, k) => `<td>${f(v, 4)} ± ${f(m.stderr[k], 4)}</td>`).join('')}</tr>`).join('')}</table>`;
  const samples = report.samples.filter((s) => !s.name.startsWith('soup') || /λ=\[0\.5, 0\.5\]/.test(s.name)).map((s) => `<h4>${esc(s.name)}</h4><ul>${s.samples.map((x) => `<li><b>${esc(x.prompt)}</b>${esc(x.response)}</li>`).join('')}</ul>`).join('');
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${esc(r.name)}: rewarded soups report</title>
<style>body{font-family:'DejaVu Sans',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}figure{margin:1.5em 0}</style></head><body>
<h1>${esc(r.name)}: rewarded soups vs MORL</h1>
<h2>Reading</h2><ul>${report.reading.map((l) => `<li>${esc(l)}</li>`).join('')}</ul>
${plots.map(([name, p, cap]) => `<figure>${p.svg}<figcaption>${esc(cap)} (<a href="${name}.png">PNG</a>, <a href="${name}.svg">SVG</a>)</figcaption></figure>`).join('\n')}
<h2>Every evaluated model</h2><p>${r.evalPrompts} held-out prompts, ${r.maxNewTokens} generated tokens each, sampled with one seed shared by every model.</p>${table}
<h2>Samples</h2>${samples}
<h2>Stage times</h2><p>This run (cached stages take 0 s): ${Object.entries(timings).map(([k, v]) => `${esc(k)} ${v.toFixed(1)} s`).join(', ')}.</p><p>When computed (the PPO runs ran side by side): ${Object.entries(computed).map(([k, v]) => `${esc(k)} ${v.toFixed(1)} s`).join(', ')}.</p>
<p>Numbers: report.json. Timings: timings.json.</p></body></html>
`;
  put('report.html', html);
  return { report, files };
}

export function readReport(dir: string): Report | undefined {
  const p = join(dir, 'report.json');
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Report) : undefined;
}
