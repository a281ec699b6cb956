// SPDX-License-Identifier: MIT
// The experiment pipeline without training: config checks (every bad config fails before any
// training, naming the field), stage hashes (what a changed config reruns), the corpus split and the
// tokenizer, the lexicon reward, the LR schedule and the report's numbers against hand computation.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  buildReport,
  catLora,
  DEMO_EXPERIMENT,
  hashOf,
  lexiconFraction,
  loadExperiment,
  plannedRuns,
  readFortunes,
  stageHashes,
  trainTokenizer,
  byteChar,
  type EvalEntry,
  type ExperimentInput,
} from '../src/pipeline/index.js';
import type { Fluency } from '../src/pipeline/sweep.js';
import { mulberry32 } from '../src/util/random.js';

const tmp = mkdtempSync(join(tmpdir(), 'rsoup-pipeline-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const base = (): ExperimentInput => ({
  name: 't',
  seed: 1,
  output: join(tmp, 'run'),
  base: { pretrain: { steps: 3 } },
  rewards: [
    { type: 'vader', name: 'vader' },
    { type: 'lexicon', name: 'topic', words: ['life', 'time'] },
  ],
  experts: { steps: 2 },
});
const err = (x: ExperimentInput) => {
  try {
    loadExperiment(x);
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
};

describe('experiment config', () => {
  it('accepts the demo and fills the paper defaults', () => {
    const x = loadExperiment(DEMO_EXPERIMENT);
    expect(x.rewardNames).toEqual(['love', 'computers']);
    // the topic classifiers train on the base stage's split
    expect(x.rewards[0]).toMatchObject({ corpus_dir: '/usr/share/games/fortunes', hold_every: 15 });
    expect(DEMO_EXPERIMENT.rewards[0]).not.toHaveProperty('corpus_dir');
    expect(x.lambdas).toHaveLength(11);
    x.lambdas.forEach((l, i) => {
      expect(l[1]).toBeCloseTo(i / 10, 12);
      expect(l[0] + l[1]).toBeCloseTo(1, 12);
    });
    expect(x.ppoConfig).toMatchObject({ init_kl_coef: 0.05, adap_kl_ctrl: true, target: 4, horizon: 1000, learning_rate: 0.001 });
    expect(x.ppoConfig.seed).toBe(0);
    expect(x.ppoConfig.generation).toMatchObject({ fixed_length: true, output_min_length: 16, output_max_length: 32 });
    expect(plannedRuns(x).map((r) => r.name)).toEqual(['expert-love', 'expert-computers', 'morl-0.75-0.25', 'morl-0.5-0.5', 'morl-0.25-0.75']);
    expect(x.sweep).toMatchObject({ stop_at_eos: true, do_sample: true });
    expect(x.prompts.num_eval).toBe(512);
  });

  it('examples/demo.yml is the built-in demo', () => {
    const y = parseYaml(readFileSync(join(__dirname, '..', 'examples', 'demo.yml'), 'utf8'));
    expect(y).toEqual(JSON.parse(JSON.stringify(DEMO_EXPERIMENT)));
  });

  it('rejects an unknown reward, naming it and the valid types', () => {
    const x = base();
    x.rewards[1] = { type: 'vaderr' };
    expect(err(x)).toMatch(/rewards\[1\]\.type: unknown reward type "vaderr", did you mean 'vader'\? \(valid types: bleu.*lexicon, topic-classifier\)/);
  });

  it('rejects μ off the simplex and μ of the wrong length', () => {
    expect(err({ ...base(), morl: { mu: [[0.5, 0.6]] } })).toMatch(/morl\.mu\[0\] = \[0\.5, 0\.6\] sums to 1\.1, not 1/);
    expect(err({ ...base(), morl: { mu: [[1.5, -0.5]] } })).toMatch(/morl\.mu\[0\] .* negative/);
    expect(err({ ...base(), morl: { mu: [[0.2, 0.3, 0.5]] } })).toMatch(/morl\.mu\[0\] has 3 entries for 2 rewards/);
  });

  it('rejects a λ grid for the wrong number of experts', () => {
    expect(err({ ...base(), sweep: { lambdas: [[0.2, 0.3, 0.5]] } })).toMatch(/sweep\.lambdas\[0\] has 3 entries but there are 2 experts/);
    const three = base();
    three.rewards.push({ type: 'afinn', name: 'afinn' });
    three.morl = { mu: [[0.2, 0.3, 0.5]] };
    expect(err({ ...three, sweep: { lambdas: [0.5] } })).toMatch(/sweep\.lambdas\[0\] is the scalar 0\.5, .* needs 2 rewards, but there are 3/);
    expect(err({ ...three, sweep: { extrapolate: [1.2] } })).toMatch(/sweep\.extrapolate needs 2 experts, there are 3/);
    expect(err({ ...base(), sweep: { lambdas: [[0.7, 0.7]] } })).toMatch(/off the simplex/);
    const x3 = loadExperiment({ ...three, sweep: { lambdas: 3 } });
    // C(2 + 2, 2) = 6 points in steps of 1/2 on the 3-simplex, plus the uniform soup, which is always evaluated
    expect(x3.lambdas).toHaveLength(7);
    expect(x3.lambdas.at(-1)).toEqual([1 / 3, 1 / 3, 1 / 3]);
    x3.lambdas.forEach((l) => expect(l.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12));
    expect(loadExperiment({ ...three, sweep: { lambdas: 4 } }).lambdas.filter((l) => l.every((v) => Math.abs(v - 1 / 3) < 1e-9))).toHaveLength(1);
    const d = loadExperiment({ ...three, sweep: { lambdas: 3, dirichlet: { samples: 5, seed: 7 } } });
    expect(d.lambdas).toHaveLength(12);
    for (const l of d.lambdas.slice(7)) {
      expect(l.every((v) => v > 0 && v < 1)).toBe(true);
      expect(l.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
    expect(loadExperiment({ ...three, sweep: { lambdas: 3, dirichlet: { samples: 5, seed: 7 } } }).lambdas).toEqual(d.lambdas);
  });

  it('experts.epochs counts passes over the training prompts; exactly one of steps and epochs', () => {
    const x = loadExperiment({ ...base(), prompts: { num_train: 100 }, ppo: { batch_size: 64 }, experts: { epochs: 2 } });
    expect(x.experts.steps).toBe(4); // ceil(2 × 100 / 64)
    expect(plannedRuns(x)[0].steps).toBe(4);
    expect(err({ ...base(), experts: { steps: 2, epochs: 1 } })).toMatch(/experts: give exactly one of steps .* and epochs/);
    expect(err({ ...base(), experts: {} })).toMatch(/experts: give exactly one of steps/);
  });

  it('records a missing model dir and names it; needs prompt files with a HF base', () => {
    const x = loadExperiment({ ...base(), base: { model: join(tmp, 'nope') }, prompts: { train: 'p.txt', eval: 'p.txt' } });
    const missing = x.files.filter((f) => !f.exists).map((f) => f.field);
    expect(missing).toEqual(expect.arrayContaining(['base.model', 'base.model/config.json', 'prompts.train']));
    expect(err({ ...base(), base: { model: join(tmp, 'nope') } })).toMatch(/needs prompt files/);
    expect(err({ ...base(), base: { model: 'm', pretrain: {} } })).toMatch(/base: give either `model`.*not both or neither/);
  });

  it('rejects bad fields with their path', () => {
    expect(err({ ...base(), ppo: { learning_rate: -1 } })).toMatch(/ppo\.learning_rate/);
    expect(err({ ...base(), rewards: [{ type: 'vader' }, { type: 'vader' }] })).toMatch(/rewards\[1\]\.name: duplicate reward name 'vader'/);
    expect(err({ ...base(), rewards: [{ type: 'vader' }, { type: 'lexicon', name: 'x', words: [] }] })).toMatch(/rewards\[1\]\.words/);
    expect(err({ ...base(), bogus: 1 } as ExperimentInput)).toMatch(/bogus|Unrecognized/);
  });
});

describe('stage hashes', () => {
  it('are independent of key order', () => {
    expect(hashOf({ a: 1, b: [1, { c: 2, d: 3 }] })).toBe(hashOf({ b: [1, { d: 3, c: 2 }], a: 1 }));
    expect(hashOf({ a: 1 })).not.toBe(hashOf({ a: 2 }));
  });

  it('a changed config reruns only what depends on the change', () => {
    const h0 = stageHashes(loadExperiment(base()));
    const sweep = stageHashes(loadExperiment({ ...base(), sweep: { lambdas: 5 } }));
    expect(sweep.base).toBe(h0.base);
    expect(sweep.runs).toEqual(h0.runs);
    expect(sweep.sweep).not.toBe(h0.sweep);
    // a new second reward: the first expert is kept, the second and MORL rerun
    const r2 = base();
    r2.rewards[1] = { type: 'lexicon', name: 'topic', words: ['life', 'money'] };
    const h2 = stageHashes(loadExperiment(r2));
    expect(h2.runs['expert-vader']).toBe(h0.runs['expert-vader']);
    expect(h2.runs['expert-topic']).not.toBe(h0.runs['expert-topic']);
    expect(h2.runs['morl-0.5-0.5']).not.toBe(h0.runs['morl-0.5-0.5']);
    // a new seed or base changes everything
    const s = stageHashes(loadExperiment({ ...base(), seed: 2 }));
    expect(s.base).not.toBe(h0.base);
    expect(s.runs['expert-vader']).not.toBe(h0.runs['expert-vader']);
    // the worker layout is not an input of any result
    expect(stageHashes(loadExperiment({ ...base(), workers: 1 }))).toEqual(h0);
  });
});

describe('corpus and tokenizer', () => {
  it('splits the fortunes deterministically and trains an exact-size byte-level BPE', async () => {
    const dir = join(tmp, 'corpus');
    mkdirSync(dir);
    const entries = Array.from(
      { length: 300 },
      (_, i) =>
        `Fortune number ${i}: the ${['cat', 'law', 'computer', 'world'][i % 4]} is ${i % 7 === 0 ? 'never' : 'always'} right, said ${'abcdefghij'[i % 10]}.`,
    );
    writeFileSync(join(dir, 'test'), entries.join('\n%\n'));
    writeFileSync(join(dir, 'test.dat'), 'binary index, skipped');
    const a = readFortunes(dir, 10);
    const b = readFortunes(dir, 10);
    expect(a).toEqual(b);
    expect(a.train.length + a.heldOut.length).toBe(300);
    expect(a.heldOut.length).toBeGreaterThan(10);
    expect(a.heldOut.every((e) => !a.train.includes(e))).toBe(true);
    writeFileSync(join(tmp, 'train.txt'), a.train.join('\n\n'));
    const tok = trainTokenizer(join(tmp, 'train.txt'), 300, join(tmp, 'tok.json'));
    expect(tok.getVocabSize(true)).toBe(300);
    expect(tok.tokenToId('<pad>')).toBe(0);
    expect(tok.tokenToId('<s>')).toBe(1);
    expect(tok.tokenToId('</s>')).toBe(2);
    const text = a.heldOut[0] + ' Zebra émigré ~';
    const ids = (await tok.encode(text)).getIds();
    expect(Math.max(...ids)).toBeLessThan(300);
    expect(await tok.decode(ids, true)).toBe(text);
    expect(ids.length).toBeLessThan(Buffer.byteLength(text)); // merges were kept
    const e = await tok.encode('<s>hi</s>');
    expect(e.getIds()[0]).toBe(1);
    expect(e.getIds().at(-1)).toBe(2);
  });

  it("byteChar is GPT-2's byte table", () => {
    expect(byteChar(65)).toBe('A');
    expect(byteChar(32)).toBe('Ġ');
    expect(byteChar(10)).toBe('Ċ');
    expect(new Set(Array.from({ length: 256 }, (_, b) => byteChar(b))).size).toBe(256);
  });
});

describe('dense interpolation (catLora)', () => {
  it('B_cat·A_cat = Σ wᵢ BᵢAᵢ for every module, against a float64 loop', () => {
    const r = 2,
      inDim = 5,
      outDim = 3;
    let seed = 7;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
    const mk = () => ({
      'm.q_proj.lora_A.weight': { dtype: 'float32' as const, shape: [r, inDim], data: Float32Array.from({ length: r * inDim }, rnd) },
      'm.q_proj.lora_B.weight': { dtype: 'float32' as const, shape: [outDim, r], data: Float32Array.from({ length: outDim * r }, rnd) },
    });
    const src = [mk(), mk(), mk()];
    const w = [0.2, -0.3, 1.1];
    const cat = catLora(src, w);
    const A = cat['m.q_proj.lora_A.weight'],
      B = cat['m.q_proj.lora_B.weight'];
    expect(A.shape).toEqual([3 * r, inDim]);
    expect(B.shape).toEqual([outDim, 3 * r]);
    for (let o = 0; o < outDim; o++) {
      for (let j = 0; j < inDim; j++) {
        let want = 0,
          got = 0;
        src.forEach((s, i) => {
          for (let k = 0; k < r; k++) want += w[i] * s['m.q_proj.lora_B.weight'].data[o * r + k] * s['m.q_proj.lora_A.weight'].data[k * inDim + j];
        });
        for (let k = 0; k < 3 * r; k++) got += B.data[o * 3 * r + k] * A.data[k * inDim + j];
        expect(got).toBeCloseTo(want, 5);
      }
    }
    // reused buffers give the same result
    const again = catLora(src, w, catLora(src, [1, 1, 1]));
    expect(Array.from(again['m.q_proj.lora_B.weight'].data)).toEqual(Array.from(B.data));
    expect(() => catLora([{ x: A }], [1])).toThrow(/'x' is not a LoRA A or B tensor/);
  });
});

describe('lexicon reward', () => {
  it('is the fraction of words on the list', () => {
    const w = new Set(['life', 'time', "don't"]);
    expect(lexiconFraction('Life is TIME, time!', w)).toBeCloseTo(3 / 4, 15);
    expect(lexiconFraction("I don't know", w)).toBeCloseTo(1 / 3, 15);
    expect(lexiconFraction('', w)).toBe(0);
    expect(lexiconFraction('123 ...', w)).toBe(0);
  });
});

describe('report', () => {
  const entry = (kind: EvalEntry['kind'], name: string, rewards: number[], extra: Partial<EvalEntry> = {}): EvalEntry => ({
    kind,
    name,
    rewards,
    stderr: [0.01, 0.01],
    samples: [],
    ...extra,
  });
  // Experts at (0.30, 0.10) and (0.05, 0.40); soups above the segment except λ = 0.5 on reward 1.
  const soups: Array<[number, number[]]> = [
    [0, [0.3, 0.1]],
    [0.25, [0.27, 0.2]],
    [0.5, [0.12, 0.27]],
    [0.75, [0.13, 0.34]],
    [1, [0.05, 0.4]],
  ];
  const entries = [
    entry('init', 'init', [0.02, 0.05]),
    entry('expert', 'expert-a', [0.3, 0.1], { lambda: [1, 0], mu: [1, 0] }),
    entry('expert', 'expert-b', [0.05, 0.4], { lambda: [0, 1], mu: [0, 1] }),
    entry('morl', 'morl-0.5-0.5', [0.2, 0.3], { mu: [0.5, 0.5] }),
    ...soups.map(([t, r]) => entry('soup', `soup ${t}`, r, { lambda: [1 - t, t] })),
  ];
  const rep = buildReport({
    name: 't',
    seed: 0,
    rewardNames: ['a', 'b'],
    entries,
    runs: [
      { name: 'expert-a', kind: 'expert', steps: 10, seconds: 5 },
      { name: 'expert-b', kind: 'expert', steps: 10, seconds: 6 },
      { name: 'morl-0.5-0.5', kind: 'morl', mu: [0.5, 0.5], steps: 10, seconds: 7 },
    ],
    histories: {},
    evalPrompts: 8,
    maxNewTokens: 4,
    ref: [0, 0],
  });

  it('hypervolumes with the same reference point, by hand', () => {
    // Soups' staircase from ref (0,0): sorted by a desc: (0.30,0.10) (0.27,0.20) (0.13,0.34) (0.05,0.40); (0.12,0.27) is dominated.
    const hvS = 0.3 * 0.1 + 0.27 * (0.2 - 0.1) + 0.13 * (0.34 - 0.2) + 0.05 * (0.4 - 0.34);
    const hvM = 0.3 * 0.1 + 0.2 * (0.3 - 0.1) + 0.05 * (0.4 - 0.3);
    expect(rep.hypervolume.soups).toBeCloseTo(hvS, 12);
    expect(rep.hypervolume.morl).toBeCloseTo(hvM, 12);
    expect(rep.hypervolume.ratio).toBeCloseTo(hvS / hvM, 12);
    expect(rep.hypervolume.ref).toEqual([0, 0]);
    // paper convention: box from the worst to the best value over both sets, lower is better
    const box = (0.3 - 0.05) * (0.4 - 0.1);
    expect(rep.hypervolume.paper!.utopia).toEqual([0.3, 0.4]);
    expect(rep.hypervolume.paper!.lower).toEqual([0.05, 0.1]);
    const shifted = (pts: number[][]) => {
      const s = [...pts].sort((p, q) => q[0] - p[0]);
      let area = 0,
        y = 0.1;
      for (const p of s)
        if (p[1] > y) {
          area += (p[0] - 0.05) * (p[1] - y);
          y = p[1];
        }
      return area;
    };
    expect(rep.hypervolume.paper!.soups).toBeCloseTo(box - shifted(soups.map((s) => s[1])), 12);
    expect(rep.hypervolume.paper!.morl).toBeCloseTo(
      box -
        shifted([
          [0.3, 0.1],
          [0.05, 0.4],
          [0.2, 0.3],
        ]),
      12,
    );
  });

  it('LMC gaps, learned and conflict', () => {
    const row = rep.lmc.rows.find((r) => r.lambda[1] === 0.5)!;
    expect(row.baseline[0]).toBeCloseTo(0.175, 12);
    expect(row.gaps[0]).toBeCloseTo(0.12 - 0.175, 12);
    expect(row.gaps[1]).toBeCloseTo(0.27 - 0.25, 12);
    // -0.055 is far beyond 2 standard errors (~0.03): Hypothesis 1 does not hold here
    expect(rep.lmc.significant_violations).toBe(1);
    expect(rep.lmc.holds).toBe(false);
    expect(rep.reading.join('\n')).toMatch(/does not hold: 1\/6/);
    expect(rep.verdict.h1).toMatch(/does not hold: 1\/6/);
    expect(rep.learned.map((l) => l.gain)).toEqual([0.3 - 0.02, 0.4 - 0.05].map((v) => expect.closeTo(v, 12)));
    expect(rep.learned.every((l) => l.clear)).toBe(true);
    expect(rep.conflict).toBe(true);
    expect(rep.cost.soups).toMatchObject({ runs: 2, ppo_steps: 20, seconds: 11 });
    expect(rep.cost.morl).toMatchObject({ runs: 1, ppo_steps: 10, seconds: 7 });
  });

  it('λ selection for preferences (no per-prompt scores: chosen and scored on the same prompts)', () => {
    expect(rep.selection.split).toMatch(/none/);
    const s = (rep.selection.rows as Array<{ preference: number[]; best: { lambda: number[] }; lambdaEqualsMu: { lambda: number[]; regret: number } }>).find(
      (x) => x.preference[0] === 0.75,
    )!;
    // utilities 0.75a + 0.25b: 0.25, 0.2525, 0.1575, 0.1825, 0.1375 → λ = 0.25 is best
    expect(s.best.lambda[1]).toBe(0.25);
    expect(s.lambdaEqualsMu!.lambda[1]).toBe(0.25);
    expect(s.lambdaEqualsMu!.regret).toBeCloseTo(0, 12);
  });
});

describe('report with per-prompt scores: paired statistics, fluency, λ selection on validation', () => {
  // 40 prompts; each model's score = a shared per-prompt difficulty (large, cancels in contrasts) + its own mean + small noise
  const P = 40;
  const rnd = mulberry32(99);
  const difficulty = Array.from({ length: P }, () => rnd() * 2 - 1);
  const model = (means: number[], noise = 0.02) => means.map((m) => difficulty.map((d) => d + m + (rnd() - 0.5) * noise));
  const fl = (kl: number, d2: number): Fluency => ({
    klPerResponse: kl,
    klPerResponseStderr: 0.1,
    klPerToken: kl / 20,
    meanLength: 20,
    distinct1: 0.5,
    distinct2: d2,
    baseNllPerToken: 3,
  });
  const mk = (kind: EvalEntry['kind'], name: string, pp: number[][], extra: Partial<EvalEntry> = {}): EvalEntry => ({
    kind,
    name,
    perPrompt: pp,
    rewards: pp.map((x) => x.reduce((a, b) => a + b, 0) / P),
    stderr: pp.map((x) => {
      const m = x.reduce((a, b) => a + b, 0) / P;
      return Math.sqrt(x.reduce((a, b) => a + (b - m) ** 2, 0) / (P - 1) / P);
    }),
    samples: [],
    ...extra,
  });
  const init = mk('init', 'init', model([0, 0]), { fluency: fl(0, 0.9) });
  const ea = mk('expert', 'expert-a', model([0.5, 0.05]), { lambda: [1, 0], mu: [1, 0], fluency: fl(5, 0.85) });
  const eb = mk('expert', 'expert-b', model([0.05, 0.5]), { lambda: [0, 1], mu: [0, 1], fluency: fl(9, 0.85) });
  const morlE = mk('morl', 'morl-0.5-0.5', model([0.3, 0.3]), { mu: [0.5, 0.5], fluency: fl(4, 0.6) });
  const ts = [0, 0.25, 0.5, 0.75, 1];
  const soupE = ts.map((t) =>
    mk('soup', `soup ${t}`, t === 0 ? ea.perPrompt! : t === 1 ? eb.perPrompt! : model([0.5 * (1 - t) + 0.05 * t + 0.04, 0.05 * (1 - t) + 0.5 * t + 0.04]), {
      lambda: [1 - t, t],
    }),
  );
  const rep = buildReport({
    name: 't',
    seed: 0,
    rewardNames: ['a', 'b'],
    entries: [init, ea, eb, morlE, ...soupE],
    runs: [],
    histories: {},
    evalPrompts: P,
    maxNewTokens: 4,
  });
  const pairedRef = (d: number[]) => {
    const m = d.reduce((a, b) => a + b, 0) / d.length;
    return { m, se: Math.sqrt(d.reduce((a, b) => a + (b - m) ** 2, 0) / (d.length - 1) / d.length) };
  };

  it('learned: paired s.e. of per-prompt differences (far below the independence bound) and the effect in s.d.', () => {
    const ref = pairedRef(ea.perPrompt![0].map((v, p) => v - init.perPrompt![0][p]));
    const l = rep.learned[0];
    expect(l.gain).toBeCloseTo(ref.m, 12);
    expect(l.se).toBeCloseTo(ref.se, 12);
    expect(l.se).toBeLessThan(0.1 * Math.hypot(ea.stderr[0], init.stderr[0]));
    const sdInit = Math.sqrt(init.perPrompt![0].reduce((a, v) => a + (v - init.rewards[0]) ** 2, 0) / (P - 1));
    expect(l.effect_sd).toBeCloseTo(ref.m / sdInit, 12);
    expect(rep.learned.every((x) => x.clear)).toBe(true);
    expect(rep.conflict).toBe(true);
    expect(rep.conflict_pairs).toHaveLength(2);
  });

  it('LMC gap standard errors are paired, with the λ-weighted expert terms', () => {
    const j = ts.indexOf(0.5);
    const row = rep.lmc.rows.find((r) => r.lambda[1] === 0.5)!;
    const d = soupE[j].perPrompt![1].map((v, p) => v - 0.5 * ea.perPrompt![1][p] - 0.5 * eb.perPrompt![1][p]);
    const ref = pairedRef(d);
    expect(row.gaps[1]).toBeCloseTo(ref.m, 12);
    expect(row.se[1]).toBeCloseTo(ref.se, 12);
    expect(rep.lmc.significant_violations).toBe(0);
  });

  it('soups against MORL at λ = μ, and reward hacking flags', () => {
    const v = rep.versus_morl[0];
    expect(v.exact).toBe(true);
    const ref = pairedRef(soupE[2].perPrompt![0].map((x, p) => x - morlE.perPrompt![0][p]));
    expect(v.diff[0].mean).toBeCloseTo(ref.m, 12);
    expect(v.diff[0].se).toBeCloseTo(ref.se, 12);
    // expert-b's KL 9 > 8 nats; MORL's distinct-2 0.6 < 0.8 × 0.9
    expect(rep.verdict.reward_hacking).toEqual(['expert-b', 'morl-0.5-0.5']);
  });

  it('λ chosen on the validation half, scored on the test half, normalised by validation means', () => {
    const sel = rep.selection as {
      rows: Array<{
        preference: number[];
        validation_choice: { lambda: number[]; test_utility: number };
        lambda_equals_mu: { lambda: number[]; exact: boolean; test_utility: number };
        test_difference: { mean: number };
      }>;
      normalisation: { zero: number[]; scale: number[] };
    };
    const val = Array.from({ length: P / 2 }, (_, i) => 2 * i),
      test = val.map((p) => p + 1);
    const mean = (x: number[], idx: number[]) => idx.reduce((a, p) => a + x[p], 0) / idx.length;
    const zero = [0, 1].map((k) => mean(init.perPrompt![k], val));
    const scale = [0, 1].map((k) => Math.max(mean(ea.perPrompt![k], val), mean(eb.perPrompt![k], val)) - zero[k]);
    expect(sel.normalisation.zero).toEqual(zero.map((z) => expect.closeTo(z, 12)));
    expect(sel.normalisation.scale).toEqual(scale.map((z) => expect.closeTo(z, 12)));
    for (const row of sel.rows) {
      const u = (e: EvalEntry, idx: number[]) => [0, 1].reduce((a, k) => a + (row.preference[k] * (mean(e.perPrompt![k], idx) - zero[k])) / scale[k], 0);
      const best = soupE.reduce((b, e) => (u(e, val) > u(b, val) ? e : b), soupE[0]);
      expect(row.validation_choice.lambda).toEqual(best.lambda);
      expect(row.validation_choice.test_utility).toBeCloseTo(u(best, test), 12);
      const muSoup = soupE.find((e) => Math.abs(e.lambda![1] - row.preference[1]) < 1e-9)!;
      expect(row.lambda_equals_mu.exact).toBe(true);
      expect(row.test_difference.mean).toBeCloseTo(u(best, test) - u(muSoup, test), 12);
    }
  });
});
