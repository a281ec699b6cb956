// SPDX-License-Identifier: MIT
// The report stage: report.json (every evaluated model, both hypervolumes with their reference points,
// LMC gaps, λ selection, training cost), the plots (front as Fig. 1b, rewards against λ, spider map for
// N >= 3, training curves) as SVG + PNG, and report.html with a short reading that says what was found,
// whichever way it came out.
import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  analyse,
  contrasts,
  hypervolumeRatio,
  pairedContrast,
  sampleSd,
  selectLambda,
  validationTestSplit,
  type Paired,
  type Scored,
} from '../pareto/index.js';
import { frontPlot, lambdaNotation, modelColor, renderSpec, rewardVsLambdaPlot, spiderPlot, PLOT_CONFIG, type Plot } from '../report/index.js';
import type { EvalEntry, Fluency } from './sweep.js';

/** An expert learned when its own reward rose by this many paired standard errors and this many
 *  standard deviations of that reward over the initialisation's responses. */
export const LEARN_Z = 4;
export const LEARN_EFFECT = 0.25;
/** Reward hacking: KL to the initialisation above this (nats per response; trl's adaptive target is 6),
 *  or distinct-2 below this fraction of the initialisation's. */
export const HACK_KL = 8;
export const HACK_DISTINCT = 0.8;

const dist = (a: number[], b: number[]) => Math.hypot(...a.map((v, i) => v - b[i]));

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
  /** How the evaluation decoded (for the report). */
  evalNote?: string;
  /** The run's settings shown at the top of report.html (model, corpus, rewards, PPO/LoRA, seed, date). */
  settings?: Record<string, string>;
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

  // Paired statistics where the evaluations kept per-prompt scores (every sweep since they do); older
  // evals.json files fall back to the independence bound (src/pareto/analysis.ts).
  const scored = new Map<EvalEntry, Scored>(r.entries.map((e) => [e, { rewards: e.rewards, stderr: e.stderr, perSample: e.perPrompt }]));
  const stats = contrasts([...scored.values()], { samples: r.evalPrompts });
  const paired = stats.paired;
  const P = paired ? init.perPrompt![0].length : 0;
  const contrast = (k: number, terms: Array<[number, EvalEntry]>, idx?: number[]): Paired =>
    stats.contrast(
      k,
      terms.map(([c, e]) => [c, scored.get(e)!]),
      idx,
    );
  const se_rule = stats.rule;

  // Learned: each expert's own reward against the initialisation's, in paired standard errors and in
  // standard deviations of that reward over the initialisation's responses (an effect, not only a small s.e.).
  const learned = experts.map((e, i) => {
    const d = contrast(i, [
      [1, e],
      [-1, init],
    ]);
    const sd = paired ? sampleSd(init.perPrompt![i]) : init.stderr[i] * Math.sqrt(r.evalPrompts);
    const effect = sd > 0 ? d.mean / sd : d.mean > 0 ? Infinity : 0;
    return {
      expert: e.name,
      reward: r.rewardNames[i],
      init: init.rewards[i],
      expert_value: e.rewards[i],
      gain: d.mean,
      se: d.se,
      z: d.z,
      effect_sd: effect,
      clear: d.z >= LEARN_Z && effect >= LEARN_EFFECT,
    };
  });
  // Conflict: every expert beats every other expert on its own reward by at least 2 paired s.e.
  const pairs = experts.flatMap((e, i) =>
    experts
      .map((o, j) => ({ i, j, o }))
      .filter((x) => x.j !== i)
      .map(({ j, o }) => {
        const d = contrast(i, [
          [1, e],
          [-1, o],
        ]);
        return { expert: e.name, other: o.name, reward: r.rewardNames[i], diff: d.mean, se: d.se, z: d.z, beats: d.z >= 2 };
      }),
  );
  const conflict = pairs.every((x) => x.beats);
  // Distance and fluency: KL to the initialisation on sampled responses, distinct-2 against the init's.
  const fluency = r.entries.map((e) => {
    const fl = e.fluency;
    if (!fl) return { name: e.name, kind: e.kind };
    const hacking = (e.kind === 'expert' || e.kind === 'morl') && (fl.klPerResponse > HACK_KL || fl.distinct2 < HACK_DISTINCT * (init.fluency?.distinct2 ?? 0));
    return { name: e.name, kind: e.kind, ...fl, reward_hacking: hacking };
  });
  const hacked = fluency.filter((x) => 'reward_hacking' in x && x.reward_hacking).map((x) => x.name);
  const allLearned = learned.every((l) => l.clear);

  // Hypervolumes: the soups' set (experts are λ = eᵢ) vs MORL's set (experts are μ = eᵢ, plus the MORL runs),
  // one reference point (given, or the nadir of every evaluated model minus 10% of the range); the front;
  // LMC (Working Hypothesis 1): R_k(θ(λ)) − Σ λᵢ R_k(θᵢ), strictly and against 2 (paired) standard errors.
  const soupPts = soups.map((e) => e.rewards);
  const morlPts = [...experts.map((e) => e.rewards), ...morl.map((e) => e.rewards)];
  const a = analyse({
    sets: { soups: soupPts, morl: morlPts },
    ref: r.ref,
    refPoints: [...soupPts, ...morlPts, init.rewards],
    soups: soups.map((e) => ({ ...scored.get(e)!, lambda: e.lambda!, name: e.name })),
    experts: experts.map((e) => scored.get(e)!),
    contrasts: stats,
  });
  const ref = a.ref;
  const hvSoups = a.sets.soups.hypervolume;
  const hvMorl = a.sets.morl.hypervolume;
  const paper = a.box ? { ...a.box, soups: a.sets.soups.paperHypervolume!, morl: a.sets.morl.paperHypervolume! } : undefined;
  const front = a.sets.soups.front.map((i) => soups[i].lambda!);
  const lmc = a.lmc!;
  const rows = lmc.rows.map((row) => {
    const se = row.contrast.map((c) => c.se);
    return {
      lambda: row.lambda,
      rewards: row.rewards,
      baseline: row.baseline,
      gaps: row.gaps,
      se,
      holds: row.holds,
      significantViolation: row.gaps.map((g, k) => g < -2 * se[k]),
    };
  });
  const interior = rows.filter((x) => x.lambda.every((v) => v > 1e-9));
  const interiorPairs = interior.length * N;
  const interiorHold = interior.reduce((a, x) => a + x.gaps.filter((g) => g >= 0).length, 0);
  const withinNoise = interior.reduce((a, x) => a + x.significantViolation.filter((v) => !v).length, 0);
  const significant = interiorPairs - withinNoise;
  const meanGap = r.rewardNames.map((_, k) => interior.reduce((a, x) => a + x.gaps[k], 0) / Math.max(1, interior.length));

  // Soups against MORL at the same weighting: θ(λ = μ) − MORL(μ), per reward (nearest grid λ when μ is not on it).
  const nearestSoup = (mu: number[]) => soups.reduce((b, e) => (dist(e.lambda!, mu) < dist(b.lambda!, mu) ? e : b), soups[0]);
  const versusMorl = soups.length
    ? morl.map((m) => {
        const s = nearestSoup(m.mu!);
        return {
          morl: m.name,
          mu: m.mu,
          soup_lambda: s.lambda,
          exact: dist(s.lambda!, m.mu!) < 1e-9,
          diff: r.rewardNames.map((name, k) => ({
            reward: name,
            ...contrast(k, [
              [1, s],
              [-1, m],
            ]),
          })),
        };
      })
    : [];

  // Prediction ensembling (Fig. 4c): the λ-weighted ensemble of the experts against the soup at the same λ.
  const ensembles = r.entries
    .filter((e) => e.kind === 'ensemble')
    .map((en) => {
      const s = soups.find((x) => dist(x.lambda!, en.lambda!) < 1e-9);
      return {
        lambda: en.lambda,
        rewards: en.rewards,
        stderr: en.stderr,
        soup_minus_ensemble: s
          ? r.rewardNames.map((name, k) => ({
              reward: name,
              ...contrast(k, [
                [1, s],
                [-1, en],
              ]),
            }))
          : undefined,
      };
    });

  // λ selection as the paper's Fig. 4a: rewards normalised per reward on the validation prompts
  // (initialisation → best expert = 0 → 1), λ chosen on validation, scored on the test prompts beside λ = μ̂.
  const prefs =
    r.preferences ??
    (N === 2
      ? [
          [0.75, 0.25],
          [0.5, 0.5],
          [0.25, 0.75],
        ]
      : [Array(N).fill(1 / N)]);
  let selection;
  if (paired && P >= 4 && soups.length) {
    const { validation, test } = validationTestSplit(P);
    const meanOn = (e: EvalEntry, k: number, idx: number[]) => idx.reduce((a, p) => a + e.perPrompt![k][p], 0) / idx.length;
    const zero = r.rewardNames.map((_, k) => meanOn(init, k, validation));
    const scale = r.rewardNames.map((_, k) => Math.max(...experts.map((e) => meanOn(e, k, validation))) - zero[k]);
    const ok = scale.every((x) => x > 0);
    // utility Σₖ μ̂ₖ (R_k − zero_k) / scale_k is linear in the per-prompt rewards: its contrasts are paired too
    const utilityTerms = (mu: number[], e: EvalEntry, sign = 1) =>
      r.rewardNames.map((_, k) => [(sign * mu[k]) / scale[k], e.perPrompt![k]] as [number, number[]]);
    const utility = (mu: number[], e: EvalEntry, idx: number[]) => r.rewardNames.reduce((a, _, k) => a + (mu[k] * (meanOn(e, k, idx) - zero[k])) / scale[k], 0);
    selection = prefs.map((mu) => {
      if (!ok)
        return { preference: mu, error: 'an expert does not beat the initialisation on its reward on the validation prompts: the normalisation is undefined' };
      const chosen = soups.reduce((b, e) => (utility(mu, e, validation) > utility(mu, b, validation) ? e : b), soups[0]);
      const muSoup = nearestSoup(mu);
      const diff = pairedContrast([...utilityTerms(mu, chosen), ...utilityTerms(mu, muSoup, -1)], test);
      return {
        preference: mu,
        validation_choice: { lambda: chosen.lambda, validation_utility: utility(mu, chosen, validation), test_utility: utility(mu, chosen, test) },
        lambda_equals_mu: { lambda: muSoup.lambda, exact: dist(muSoup.lambda!, mu) < 1e-9, test_utility: utility(mu, muSoup, test) },
        test_difference: diff,
      };
    });
    selection = {
      split: `${validation.length} validation / ${test.length} test prompts (even / odd positions)`,
      normalisation: { zero, scale, rule: 'validation means: initialisation = 0, best expert on that reward = 1' },
      rows: selection,
    };
  } else {
    selection = {
      split: 'none (no per-prompt scores): λ chosen and scored on the same prompts',
      rows: prefs.map((mu) => {
        const sel = selectLambda(
          soups.map((e) => ({ lambda: e.lambda!, rewards: e.rewards })),
          mu,
        );
        return {
          preference: mu,
          best: { lambda: sel.best.lambda, rewards: sel.best.rewards, utility: sel.best.utility },
          lambdaEqualsMu: sel.muRule ? { lambda: sel.muRule.lambda, utility: sel.muRule.utility, regret: sel.muRule.regret } : undefined,
        };
      }),
    };
  }

  const costOf = (kind: 'expert' | 'morl') => {
    const rs = r.runs.filter((x) => x.kind === kind);
    const cpu = rs.every((x) => x.cpuSeconds !== undefined) ? rs.reduce((a, x) => a + x.cpuSeconds!, 0) : undefined;
    return {
      runs: rs.length,
      ppo_steps: rs.reduce((a, x) => a + x.steps, 0),
      seconds: rs.reduce((a, x) => a + x.seconds, 0),
      ...(cpu !== undefined ? { cpu_seconds: cpu } : {}),
    };
  };
  const cost = {
    soups: { ...costOf('expert'), note: 'N experts; every λ afterwards is inference only' },
    morl: { ...costOf('morl'), note: 'the MORL runs listed (plus the experts, its μ = eᵢ endpoints)' },
  };

  const h1Counts = allLearned;
  const verdictH1 =
    interiorPairs === 0
      ? 'not tested (no interior λ)'
      : significant === 0 && interiorHold === interiorPairs
        ? "holds: every interior soup is at least as good as the experts' linear interpolation on every reward"
        : significant === 0
          ? `holds within noise: ${interiorHold}/${interiorPairs} (λ, reward) gaps are ≥ 0 and no negative gap exceeds 2 standard errors`
          : `does not hold: ${significant}/${interiorPairs} (λ, reward) gaps are negative by more than 2 standard errors (${withinNoise}/${interiorPairs} within noise, ${interiorHold}/${interiorPairs} ≥ 0)`;
  const ratio = hypervolumeRatio(hvSoups, hvMorl);
  const fmtZ = (z: number) => (Number.isFinite(z) ? z.toFixed(1) : z > 0 ? '∞' : '−∞');
  const reading = [
    ...learned.map(
      (l) =>
        `${l.expert} ${l.clear ? 'learned' : 'did not clearly learn'}: ${l.reward} ${f(l.init)} at the initialisation → ${f(l.expert_value)} (${l.gain >= 0 ? '+' : ''}${f(l.gain)}, ${fmtZ(l.z)} ${paired ? 'paired ' : ''}standard errors, ${Number.isFinite(l.effect_sd) ? l.effect_sd.toFixed(2) : '∞'} standard deviations; learned means ≥ ${LEARN_Z} s.e. and ≥ ${LEARN_EFFECT} s.d.).`,
    ),
    conflict
      ? `The rewards conflict: each expert beats the other expert${N > 2 ? 's' : ''} on its own reward by ≥ 2 standard errors.`
      : `The rewards do not clearly conflict: ${pairs
          .filter((x) => !x.beats)
          .map((x) => `${x.expert} vs ${x.other} on ${x.reward} ${fmtZ(x.z)} s.e.`)
          .join('; ')}.`,
    ...fluency
      .filter((x) => 'klPerResponse' in x && (x.kind === 'expert' || x.kind === 'morl' || x.kind === 'init'))
      .map((x) => {
        const fl = x as Fluency & { name: string; reward_hacking?: boolean };
        return `${fl.name}: KL to the initialisation ${f(fl.klPerResponse, 2)} nats per response (${f(fl.klPerToken, 3)} per token, ${fl.meanLength.toFixed(1)} tokens), distinct-2 ${fl.distinct2.toFixed(3)}, base NLL ${fl.baseNllPerToken.toFixed(2)} nats/token${fl.reward_hacking ? " — REWARD HACKING (KL > 8 nats or distinct-2 < 0.8 × the initialisation's)" : ''}.`;
      }),
    `Working Hypothesis 1 (LMC): ${verdictH1}; mean gap per reward ${r.rewardNames.map((n, k) => `${n} ${f(meanGap[k])}`).join(', ')}${h1Counts ? '.' : " — not counted as evidence: not every expert learned, and when nothing moves the soups trivially sit on the experts' segment."}`,
    `Hypervolume (higher is better, reference point ${vec(ref, 4)}): soups ${f(hvSoups, 4)}, MORL ${f(hvMorl, 4)}; ratio soups/MORL = ${Number.isFinite(ratio) ? ratio.toFixed(3) : '∞'} (${ratio >= 1 ? "the soups' front covers at least as much" : "MORL's front covers more"}).` +
      (paper
        ? ` Paper's convention (lower is better, box utopia ${vec(paper.utopia, 4)}, lower ${vec(paper.lower, 4)}): soups ${f(paper.soups, 4)}, MORL ${f(paper.morl, 4)}.`
        : ''),
    ...ensembles
      .filter((x) => x.soup_minus_ensemble && x.lambda!.every((v) => Math.abs(v - 1 / N) < 1e-9))
      .map(
        (x) =>
          `Soup minus the prediction ensemble at λ = ${vec(x.lambda!)}: ${x.soup_minus_ensemble!.map((d) => `${d.reward} ${d.mean >= 0 ? '+' : ''}${f(d.mean)} (${fmtZ(d.z)} s.e.)`).join(', ')} (the ensemble costs N forward passes per token).`,
      ),
    ...versusMorl.map(
      (v) =>
        `Soup at ${v.exact ? 'λ = μ' : 'the nearest grid λ'} ${vec(v.soup_lambda!)} minus ${v.morl}: ${v.diff.map((d) => `${d.reward} ${d.mean >= 0 ? '+' : ''}${f(d.mean)} (${fmtZ(d.z)} s.e.)`).join(', ')}.`,
    ),
    ...('rows' in selection ? (selection.rows as Array<Record<string, unknown>>) : []).map((s) => {
      const x = s as {
        preference: number[];
        error?: string;
        validation_choice?: { lambda: number[]; test_utility: number };
        lambda_equals_mu?: { lambda: number[]; exact: boolean; test_utility: number };
        test_difference?: Paired;
        best?: { lambda: number[] };
      };
      if (x.error) return `For μ̂ = ${vec(x.preference)}: ${x.error}.`;
      if (x.validation_choice)
        return `For μ̂ = ${vec(x.preference)}: validation chose λ = ${vec(x.validation_choice.lambda)}, normalised test utility ${f(x.validation_choice.test_utility)}; ${x.lambda_equals_mu!.exact ? 'λ = μ̂' : `the nearest grid λ ${vec(x.lambda_equals_mu!.lambda)}`} ${f(x.lambda_equals_mu!.test_utility)}; difference ${f(x.test_difference!.mean)} ± ${f(x.test_difference!.se)} (paired s.e. on the test prompts).`;
      return `For μ̂ = ${vec(x.preference)}: best evaluated λ = ${vec(x.best!.lambda)}.`;
    }),
    `Training cost: soups ${cost.soups.runs} PPO runs (${cost.soups.ppo_steps} steps, ${cost.soups.seconds.toFixed(0)} s) for ${soups.length} points; MORL ${cost.morl.runs} extra run${cost.morl.runs === 1 ? '' : 's'} (${cost.morl.ppo_steps} steps, ${cost.morl.seconds.toFixed(0)} s) for ${morl.length} point${morl.length === 1 ? '' : 's'}.`,
  ];
  const verdict = {
    experts_learned: allLearned,
    reward_hacking: hacked,
    conflict,
    h1: h1Counts ? verdictH1 : `not counted (not every expert learned): ${verdictH1}`,
    h1_within_noise: `${withinNoise}/${interiorPairs}`,
    hypervolume_ratio: ratio,
  };
  return {
    format: 'rewarded-soups/report@1',
    name: r.name,
    seed: r.seed,
    rewards: r.rewardNames,
    evaluation: { prompts: r.evalPrompts, max_new_tokens: r.maxNewTokens, note: r.evalNote ?? 'one seed shared by every model', standard_errors: se_rule },
    verdict,
    models: r.entries.map((e) => ({ kind: e.kind, name: e.name, lambda: e.lambda, mu: e.mu, rewards: e.rewards, stderr: e.stderr })),
    learned,
    conflict,
    conflict_pairs: pairs,
    fluency,
    versus_morl: versusMorl,
    ensembles,
    hypervolume: {
      ref,
      ref_rule: r.ref ? 'given in the config' : 'nadir of every evaluated model minus 10% of the range',
      soups: hvSoups,
      morl: hvMorl,
      ratio,
      sets: { soups: 'soups with λ on the simplex (λ = eᵢ are the experts)', morl: 'experts (μ = eᵢ) and the MORL runs' },
      paper,
      soups_front_lambdas: front,
    },
    lmc: {
      holds: verdictH1.startsWith('holds'),
      verdict: verdictH1,
      strict_holds: lmc.holds,
      fraction_holds: lmc.fractionHolds,
      min_gap: lmc.minGap,
      mean_interior_gap: meanGap,
      significant_violations: significant,
      rows,
    },
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

/** A run's colour, the same in every plot (src/report/plots.ts modelColor). */
function colorOf(r: ReportInput, name: string): string {
  const i = r.entries.filter((e) => e.kind === 'expert').findIndex((e) => e.name === name);
  if (i >= 0) return modelColor('expert', i);
  const j = r.entries.filter((e) => e.kind === 'morl').findIndex((e) => e.name === name);
  if (j >= 0) return modelColor('morl', j);
  const e = r.entries.find((x) => x.name === name);
  return modelColor(e?.kind ?? 'soup');
}

async function trainingPlot(r: ReportInput): Promise<Plot> {
  const runs = Object.keys(r.histories);
  const runColor = (name: string) => colorOf(r, name);
  const rows: Array<{ run: string; step: number; reward: string; value: number }> = [];
  for (const [run, h] of Object.entries(r.histories)) {
    for (const name of r.rewardNames) {
      const ma = movingAverage(
        h.map((x) => x.rewards[name] ?? NaN),
        10,
      );
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
      width: 300,
      height: 220,
      mark: { type: 'line', strokeWidth: 2 },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'PPO step' },
        y: { field: 'value', type: 'quantitative', title: 'mean rollout reward', scale: { zero: false } },
        color: { field: 'run', type: 'nominal', title: 'run', scale: { domain: runs, range: runs.map(runColor) } },
      },
    },
  };
  return renderSpec(spec, { png: true });
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** Writes report.json, the plots (SVG + PNG) and report.html into `dir`; returns the report. */
export async function writeReport(
  dir: string,
  r: ReportInput,
  timings: Record<string, number>,
  computed: Record<string, number> = {},
): Promise<{ report: Report; files: string[] }> {
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
  const se = (e: EvalEntry) => two(e.stderr);
  const lambdaText = lambdaNotation(N === 2 ? experts.map((e) => e.name) : undefined);
  plots.push([
    'front',
    await frontPlot(
      {
        objectives: r.rewardNames.slice(0, 2),
        soups: soups.map((e) => ({ lambda: N === 2 ? e.lambda![1] : e.lambda!, rewards: two(e.rewards), stderr: se(e) })),
        morl: morl.map((e) => ({ mu: N === 2 ? e.mu![1] : e.mu!, rewards: two(e.rewards), stderr: se(e) })),
        experts: experts.map((e) => ({ rewards: two(e.rewards), stderr: se(e), name: e.name })),
        init: { rewards: two(init.rewards), stderr: se(init), name: 'init' },
      },
      { png: true, title: `Rewarded soups vs MORL: mean ${r.rewardNames[0]} vs mean ${r.rewardNames[1]}` },
    ),
    `The front (paper Fig. 1b): mean rewards on the evaluation prompts, ±1 s.e. bars; soups θ(λ) labelled by ${N === 2 ? lambdaText : 'λ'}, MORL labelled by μ (weight of the second reward), the experts and the initialisation; the dashed segment is the LMC lower bound.`,
  ]);
  if (N === 2)
    plots.push([
      'rewards-vs-lambda',
      await rewardVsLambdaPlot(
        {
          objectives: r.rewardNames,
          experts: experts.map((e) => e.name),
          colors: experts.map((e) => colorOf(r, e.name)),
          soups: soups.map((e) => ({ lambda: e.lambda![1], rewards: e.rewards, stderr: e.stderr })),
        },
        { png: true, normalize: true },
      ),
      `Each reward's mean on the evaluation prompts against ${lambdaText}, ±1 s.e. bars, min-max normalised over the soups (paper Fig. 4b); each reward in its expert's colour.`,
    ]);
  if (N >= 3)
    plots.push([
      'spider',
      await spiderPlot(
        {
          objectives: r.rewardNames,
          series: [...experts, ...morl, ...soups.filter((e) => e.lambda!.every((v) => Math.abs(v - 1 / N) < 1e-6))].map((e) => ({
            name: e.name,
            rewards: e.rewards,
            color: colorOf(r, e.name),
          })),
        },
        { png: true },
      ),
      'Spider map (paper Fig. 2f).',
    ]);
  if (Object.keys(r.histories).length)
    plots.push([
      'training',
      await trainingPlot(r),
      "Each reward during PPO: the mean over each step's rollouts (10-step moving average), one colour per run as in the other plots.",
    ]);
  for (const [name, p] of plots) {
    put(`${name}.svg`, p.svg);
    if (p.png) put(`${name}.png`, p.png);
  }
  const table = `<table><caption>Every evaluated model: mean reward ± standard error</caption><tr><th scope="col">model</th><th scope="col">λ</th><th scope="col">μ</th>${r.rewardNames.map((n) => `<th scope="col">${esc(n)}</th>`).join('')}</tr>${report.models.map((m) => `<tr><td>${esc(m.name)}</td><td>${m.lambda ? vec(m.lambda) : ''}</td><td>${m.mu ? vec(m.mu) : ''}</td>${m.rewards.map((v, k) => `<td>${f(v, 4)} ± ${f(m.stderr[k], 4)}</td>`).join('')}</tr>`).join('')}</table>`;
  const onFront = new Set(report.hypervolume.soups_front_lambdas.map((l) => vec(l, 6)));
  const lmcTable = `<table><caption>Working Hypothesis 1: LMC gap R(θ(λ)) − Σ λᵢ R(θᵢ) per soup and reward (± ${report.evaluation.standard_errors.startsWith('paired') ? 'paired ' : ''}s.e.); ★ = on the soups' Pareto front</caption><tr><th scope="col">λ (${r.entries
    .filter((e) => e.kind === 'expert')
    .map((e) => esc(e.name))
    .join(
      ', ',
    )})</th>${r.rewardNames.map((n) => `<th scope="col">gap on ${esc(n)}</th>`).join('')}</tr>${report.lmc.rows.map((row) => `<tr><td>${vec(row.lambda)}${onFront.has(vec(row.lambda, 6)) ? ' ★' : ''}</td>${row.gaps.map((g, k) => `<td${row.significantViolation[k] ? ' class="bad"' : ''}>${g >= 0 ? '+' : ''}${f(g, 4)} ± ${f(row.se[k], 4)}</td>`).join('')}</tr>`).join('')}</table>`;
  const fluencyRows = report.fluency.filter((x) => 'klPerResponse' in x) as Array<Fluency & { name: string; kind: string; reward_hacking?: boolean }>;
  const fluencyTable = fluencyRows.length
    ? `<table><caption>Distance from the initialisation (KL on sampled responses) and fluency</caption><tr><th scope="col">model</th><th scope="col">KL nats/response</th><th scope="col">KL nats/token</th><th scope="col">mean length (tokens)</th><th scope="col">distinct-1</th><th scope="col">distinct-2</th><th scope="col">base NLL nats/token</th></tr>${fluencyRows.map((x) => `<tr${x.reward_hacking ? ' class="bad"' : ''}><td>${esc(x.name)}${x.reward_hacking ? ' (reward hacking)' : ''}</td><td>${f(x.klPerResponse, 2)} ± ${f(x.klPerResponseStderr, 2)}</td><td>${f(x.klPerToken, 3)}</td><td>${x.meanLength.toFixed(1)}</td><td>${x.distinct1.toFixed(3)}</td><td>${x.distinct2.toFixed(3)}</td><td>${x.baseNllPerToken.toFixed(2)}</td></tr>`).join('')}</table>`
    : '';
  const samples = report.samples
    .filter((s) => !s.name.startsWith('soup') || /λ=\[0\.5, 0\.5\]/.test(s.name))
    .map((s) => `<h3>${esc(s.name)}</h3><ul class="samples">${s.samples.map((x) => `<li><b>${esc(x.prompt)}</b>${esc(x.response)}</li>`).join('')}</ul>`)
    .join('');
  const v = report.verdict;
  const verdictBlock = `<section class="verdict" aria-label="verdict"><h2>Verdict</h2><ul>
<li>Experts learned (≥ ${LEARN_Z} paired s.e. and ≥ ${LEARN_EFFECT} s.d. on their own reward): <b>${v.experts_learned ? 'yes' : 'no'}</b>${report.learned.map((l) => ` · ${esc(l.expert)} ${l.gain >= 0 ? '+' : ''}${f(l.gain)} (${Number.isFinite(l.z) ? l.z.toFixed(1) : '∞'} s.e.)`).join('')}</li>
<li>Reward hacking (KL &gt; ${HACK_KL} nats or distinct-2 &lt; ${HACK_DISTINCT} × init): <b>${v.reward_hacking.length ? esc(v.reward_hacking.join(', ')) : 'none'}</b></li>
<li>Rewards conflict: <b>${v.conflict ? 'yes' : 'no'}</b></li>
<li>Working Hypothesis 1: <b>${esc(v.h1)}</b></li>
<li>Hypervolume soups / MORL: <b>${Number.isFinite(v.hypervolume_ratio) ? v.hypervolume_ratio.toFixed(3) : '∞'}</b> (reference point ${vec(report.hypervolume.ref, 4)})</li>
</ul></section>`;
  const expertNames = experts.map((e) => e.name);
  const notation = `Notation: λ = (${expertNames.map((n) => `λ[${n}]`).join(', ')}) weights the experts, θ(λ) = ${expertNames.map((n) => `λ[${n}]·θ[${n}]`).join(' + ')}; μ weights the rewards (${r.rewardNames.join(', ')}) of a MORL run${N === 2 ? `; plots label a soup by its second weight, ${lambdaText}` : ''}.`;
  const settings = r.settings
    ? `<section aria-label="settings"><h2>Settings</h2><dl>${Object.entries(r.settings)
        .map(([k, x]) => `<dt>${esc(k)}</dt><dd>${esc(x)}</dd>`)
        .join(
          '',
        )}</dl><p>${esc(notation)}</p><p>Numbers: <a href="report.json">report.json</a> · stage times: <a href="timings.json">timings.json</a></p></section>`
    : '<p>Numbers: <a href="report.json">report.json</a> · stage times: <a href="timings.json">timings.json</a></p>';
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(r.name)}: rewarded soups report</title>
<style>body{font-family:'DejaVu Sans',sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;overflow-wrap:anywhere}table{border-collapse:collapse;display:block;overflow-x:auto;max-width:100%;margin:1em 0}caption{text-align:left;font-weight:bold;padding:4px 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}.bad{background:#fde2e2}figure{margin:1.5em 0;max-width:100%;overflow-x:auto}figure svg{max-width:100%;height:auto}.verdict{border:2px solid #444;padding:0 1em;margin:0.5em 0}.samples li{white-space:pre-wrap}dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px}dd{margin:0}</style></head><body>
<h1>${esc(r.name)}: rewarded soups vs MORL</h1>
${verdictBlock}
${settings}
<h2>Reading</h2><ul>${report.reading.map((l) => `<li>${esc(l)}</li>`).join('')}</ul>
${plots.map(([name, p, cap]) => `<figure role="img" aria-label="${esc(cap)}">${p.svg}<figcaption>${esc(cap)} (<a href="${name}.png">PNG</a>, <a href="${name}.svg">SVG</a>)</figcaption></figure>`).join('\n')}
<h2>Working Hypothesis 1, soup by soup</h2>${lmcTable}
${fluencyTable}
<h2>Every evaluated model</h2><p>${r.evalPrompts} held-out prompts; ${esc(report.evaluation.note)}; standard errors: ${esc(report.evaluation.standard_errors)}.</p>${table}
<h2>Samples</h2>${samples}
<h2>Stage times</h2><p>This run (cached stages take 0 s): ${Object.entries(timings)
    .map(([k, t]) => `${esc(k)} ${t.toFixed(1)} s`)
    .join(', ')}.</p><p>When computed (the PPO runs ran side by side): ${Object.entries(computed)
    .map(([k, t]) => `${esc(k)} ${t.toFixed(1)} s`)
    .join(', ')}.</p>
</body></html>
`;
  put('report.html', html);
  return { report, files };
}

export function readReport(dir: string): Report | undefined {
  const p = join(dir, 'report.json');
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Report) : undefined;
}
