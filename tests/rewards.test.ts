// SPDX-License-Identifier: MIT
// The Reward interface machinery, text rewards, combinators, control rewards, YAML configs and the CLI.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { register as registerRewards } from '../src/cli/commands/rewards.js';
import {
  afinnReward,
  bleuReward,
  CiderReward,
  clip,
  cocoBleuReward,
  cocoCaptionScores,
  controlReward,
  custom,
  lengthReward,
  locomotionReward,
  meteorReward,
  readabilityReward,
  rewardFromConfig,
  rewardsFromConfig,
  rougeReward,
  runningNorm,
  scoreAll,
  sentenceBleu,
  toxicityReward,
  vaderCompound,
  vaderReward,
  weighted,
  type Reward,
  type Sample,
} from '../src/rewards/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'rsoup-rewards-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const S = (response: string, references?: string[], prompt = 'p'): Sample => ({ prompt, response, references });

describe('text rewards', () => {
  it('VADER compound on the examples of its documentation', () => {
    // cjhutto/vaderSentiment README "Demo" output (vaderSentiment 3.x; the JS port vader-sentiment follows it).
    const documented: Array<[string, number]> = [
      ['VADER is smart, handsome, and funny.', 0.8316],
      ['VADER is smart, handsome, and funny!', 0.8439],
      ['VADER is very smart, handsome, and funny.', 0.8545],
      ['VADER is VERY SMART, handsome, and FUNNY.', 0.9227],
      ['VADER is VERY SMART, handsome, and FUNNY!!!', 0.9342],
      ['VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!', 0.9469],
      ['VADER is not smart, handsome, nor funny.', -0.7424],
      ['The book was good.', 0.4404],
      ["At least it isn't a horrible book.", 0.431],
      ['The book was only kind of good.', 0.3832],
      ['The plot was good, but the characters are uncompelling and the dialog is not great.', -0.7042],
      ['Today SUX!', -0.5461],
      ["Today only kinda sux! But I'll get by, lol", 0.2228],
      ['Make sure you :) or :D today!', 0.8633],
    ];
    for (const [text, c] of documented) expect(vaderCompound(text), text).toBe(c);
  });

  it('vader/afinn/readability/toxicity/length rewards score the response', async () => {
    const batch = [S('Cats are stupid.'), S('VADER is smart, handsome, and funny.'), S('you idiot, shut up and go away now')];
    expect(Array.from(await vaderReward().score(batch.slice(1, 2)))).toEqual([0.8316]);
    // sentiment README: "Cats are stupid." -> score -2, comparative -2/3.
    const af = await afinnReward().score(batch);
    expect(af[0]).toBeCloseTo(-2 / 3, 12);
    expect((await afinnReward({ measure: 'score' }).score(batch))[0]).toBe(-2);
    // Flesch reading ease = 206.835 - 1.015 * words/sentences - 84.6 * syllables/words: "The cat sat on the mat."
    // has 6 one-syllable words in 1 sentence -> 206.835 - 6.09 - 84.6 = 116.145 (the package rounds to 2 decimals).
    const rd = await readabilityReward().score([S('The cat sat on the mat.')]);
    expect(Math.abs(rd[0] - 116.145)).toBeLessThanOrEqual(0.0051);
    // toxicity: −(toxic tokens / tokens): "you idiot shut up and go away now" = 2 of 8.
    const tx = await toxicityReward().score(batch);
    expect(tx[2]).toBe(-2 / 8);
    expect(tx[1]).toBe(0);
    expect((await toxicityReward({ words: ['cats'] }).score(batch))[0]).toBe(-1 / 3);
    // length toward 4 words: linear −|n − 4| / 4, gaussian exp(−(n − 4)² / (2 w²)).
    const words = [S('one two three four'), S('one two'), S('a b c d e f g h')];
    expect(Array.from(await lengthReward({ target: 4 }).score(words))).toEqual([0, -0.5, -1]);
    const g = await lengthReward({ target: 4, shape: 'gaussian', width: 2 }).score(words);
    expect(g[1]).toBeCloseTo(Math.exp(-4 / 8), 15);
    expect((await lengthReward({ target: 10, unit: 'chars' }).score([S('abcde')]))[0]).toBe(-0.5);
    expect(() => lengthReward({ target: 0 })).toThrow(/'target' must be a positive number/);
  });
});

describe('Reward machinery', () => {
  it('caches repeated samples, batches and checks finiteness', async () => {
    let calls = 0;
    const r = custom(
      'count',
      (s: Sample) => {
        calls++;
        return s.response.length;
      },
      { cacheSize: 100, batchSize: 2 },
    );
    const batch = [S('aa'), S('bbb'), S('aa'), S('c'), S('bbb')];
    expect(Array.from(await r.score(batch))).toEqual([2, 3, 2, 1, 3]);
    expect(calls).toBe(3); // duplicates in the batch scored once
    expect(Array.from(await r.score([S('c'), S('aa'), S('dddd')]))).toEqual([1, 2, 4]);
    expect(calls).toBe(4); // cache hit across calls
    const nan = custom('broken', (s: Sample) => (s.response === 'x' ? Number.NaN : 1));
    await expect(nan.score([S('a'), S('b'), S('x')])).rejects.toThrow(/reward 'broken': non-finite score NaN for sample 2/);
    const inf = custom('inf', async () => [1, Infinity], { batched: true });
    await expect(inf.score([S('a'), S('b')])).rejects.toMatchObject({
      code: 'ERR_SOUP_REWARD',
      message: expect.stringContaining('non-finite score Infinity for sample 1'),
    });
    await expect(r.score([{ prompt: 'p' } as Sample])).rejects.toThrow(/sample 0: expected a string for 'response'/);
  });

  it('concurrency limit bounds sub-batches in flight; abort rejects', async () => {
    let active = 0;
    let peak = 0;
    const slow = custom(
      'slow',
      async (b: Sample[]) => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((res) => setTimeout(res, 20));
        active--;
        return b.map((s) => s.response.length);
      },
      { batched: true, batchSize: 1, concurrency: 2 },
    );
    const batch = ['a', 'bb', 'ccc', 'dddd', 'eeeee'].map((x) => S(x));
    expect(Array.from(await slow.score(batch))).toEqual([1, 2, 3, 4, 5]);
    expect(peak).toBe(2);
    const ac = new AbortController();
    ac.abort();
    await expect(slow.score(batch, { signal: ac.signal })).rejects.toMatchObject({ code: 'ERR_SOUP_ABORTED' });
  });

  it('reference-based rewards: per-sample values equal the metric functions; missing references is a clear error', async () => {
    const batch = [S('the cat sat on the mat', ['the cat is on the mat']), S('a dog barked', ['the dog barked loudly', 'a dog barks'])];
    const b = await bleuReward().score(batch);
    expect(b[0]).toBeCloseTo(sentenceBleu(batch[0].response, batch[0].references as string[]).score / 100, 14);
    const rl = await rougeReward({ variant: 'rougeL' }).score(batch);
    // sample 1: best of LCS("the dog barked loudly", ·) = dog barked (2): P 2/3 R 2/4 -> F 4/7; "a dog barks": a dog (2): P 2/3 R 2/3 -> 2/3.
    expect(rl[1]).toBeCloseTo(2 / 3, 14);
    const cb = await cocoBleuReward({ n: 1 }).score(batch);
    const coco = cocoCaptionScores({ a: batch[0].response, b: batch[1].response }, { a: batch[0].references as string[], b: batch[1].references as string[] });
    expect(cb[1]).toBe(coco.perImage.b.Bleu_1);
    const cider = await new CiderReward().score(batch);
    expect(cider[0]).toBeCloseTo(coco.perImage.a.CIDEr, 14);
    expect(cider[1]).toBeCloseTo(coco.perImage.b.CIDEr, 14);
    for (const r of [bleuReward(), rougeReward(), cocoBleuReward(), new CiderReward(), meteorReward()] as Reward[]) {
      await expect(r.score([S('x', ['y']), S('no refs')])).rejects.toThrow(/sample 1 has no references, but this metric compares the response with references/);
      await expect(r.score([S('x', ['', ' '])])).rejects.toThrow(/sample 0 has only empty references/);
    }
  });
});

describe('combinators', () => {
  const a = custom('a', (s: Sample) => s.response.length);
  const b = custom('b', (s: Sample) => (s.response.includes('!') ? 1 : -1));
  const batch = [S('hello!'), S('hi'), S('good day to you')];

  it('weighted = Σ μᵢ Rᵢ / Σ μᵢ (paper: "0x0.4 1-0x0.6"), or the plain sum', async () => {
    const w = weighted([a, b], [0.4, 0.6]);
    const got = await w.score(batch);
    const A = [6, 2, 15];
    const B = [1, -1, -1];
    for (let i = 0; i < 3; i++) expect(got[i]).toBeCloseTo((0.4 * A[i] + 0.6 * B[i]) / 1.0, 14);
    const w2 = await weighted([a, b], [1, 3]).score(batch);
    for (let i = 0; i < 3; i++) expect(w2[i]).toBeCloseTo((A[i] + 3 * B[i]) / 4, 14);
    const w3 = await weighted([a, b], [1, 3], { normalize: false }).score(batch);
    for (let i = 0; i < 3; i++) expect(w3[i]).toBeCloseTo(A[i] + 3 * B[i], 14);
    expect(() => weighted([a, b], [1])).toThrow(/2 rewards but 1 weights/);
    expect(() => weighted([a, b], [1, -1])).toThrow(/the weights sum to 0/);
    expect(() => weighted([a], [Number.NaN])).toThrow(/weight 0 is not a finite number/);
  });

  it('running normalisation matches the float64 mean/std of everything seen; clip', async () => {
    const vals = [3.5, -1.25, 7.75, 0.3, 2.2, -4.1, 9.9];
    let k = 0;
    const src = custom('src', async (bb: Sample[]) => bb.map(() => vals[k++]), { batched: true });
    const n = runningNorm(src, { eps: 0 });
    const first = await n.score([S('1'), S('2'), S('3')]);
    const m1 = (3.5 - 1.25 + 7.75) / 3;
    const sd1 = Math.sqrt([3.5, -1.25, 7.75].reduce((s, x) => s + (x - m1) ** 2, 0) / 3);
    expect(first[0]).toBeCloseTo((3.5 - m1) / sd1, 12);
    const second = await n.score([S('4'), S('5'), S('6'), S('7')]);
    const m = vals.reduce((s, x) => s + x, 0) / vals.length;
    const sd = Math.sqrt(vals.reduce((s, x) => s + (x - m) ** 2, 0) / vals.length);
    expect(n.mean).toBeCloseTo(m, 12);
    expect(n.std).toBeCloseTo(sd, 12);
    for (let i = 0; i < 4; i++) expect(second[i]).toBeCloseTo((vals[3 + i] - m) / sd, 12);
    const all = await scoreAll([a, b], batch);
    expect(Object.keys(all)).toEqual(['a', 'b']);
    expect(Array.from(all.b)).toEqual([1, -1, -1]);
    await expect(scoreAll([a, a], batch)).rejects.toThrow(/two rewards are named 'a'/);
    const c = await clip(a, 2.5, 10).score(batch);
    expect(Array.from(c)).toEqual([6, 2.5, 10]);
    expect(() => clip(a, 1, 0)).toThrow(/expected lo <= hi/);
  });
});

describe('control rewards', () => {
  it('forward velocity − α Σ a² (+ healthy bonus); risky α = 0 vs cautious α = 1', async () => {
    const info = { xVelocity: 1.7, action: [0.5, -0.25, 1] }; // Σa² = 0.25 + 0.0625 + 1 = 1.3125
    expect(controlReward(info, { alpha: 0 })).toBe(1.7);
    expect(controlReward(info, { alpha: 1 })).toBeCloseTo(1.7 - 1.3125, 15);
    expect(controlReward({ ...info, healthy: true }, { alpha: 1, healthyReward: 1 })).toBeCloseTo(1.7 - 1.3125 + 1, 15);
    expect(controlReward({ ...info, healthy: false }, { alpha: 1, healthyReward: 1 })).toBeCloseTo(1.7 - 1.3125, 15);
    const r = locomotionReward({ alpha: 0.1, healthyReward: 0.5 });
    const s = await r.score([{ prompt: '', response: '', meta: { x_velocity: 2, action: [1, 2], is_healthy: true } }]);
    expect(s[0]).toBeCloseTo(2 - 0.1 * 5 + 0.5, 15);
    await expect(r.score([{ prompt: '', response: '', meta: { action: [1] } }])).rejects.toThrow(/sample 0: meta\.x_velocity must be a number/);
    expect(() => locomotionReward({ alpha: -1 })).toThrow(/'alpha' must be a finite number >= 0/);
  });
});

describe('YAML configs and the CLI', () => {
  it('builds rewards by type; unknown types and bad fields are named', async () => {
    const list = await rewardsFromConfig([
      { type: 'vader' },
      { type: 'rouge', variant: 'rouge2', stemmer: true },
      { type: 'weighted', name: 'morl', weights: [0.3, 0.7], rewards: [{ type: 'vader' }, { type: 'length', target: 3 }] },
      { type: 'clip', reward: { type: 'afinn', measure: 'score' }, min: -1, max: 1 },
      { type: 'locomotion', alpha: 1, healthyReward: 1 },
    ]);
    expect(list.map((r) => r.name)).toEqual(['vader', 'rouge2', 'morl', 'clip(afinn)', 'locomotion(alpha=1)']);
    const s = await list[2].score([S('great fun day')]);
    expect(s[0]).toBeCloseTo(0.3 * vaderCompound('great fun day') + 0.7 * 0, 14);
    await expect(rewardsFromConfig([{ type: 'vader' }, { type: 'vaderr' }])).rejects.toThrow(
      /rewards\[1\]\.type: unknown reward type "vaderr", did you mean 'vader'\? \(valid types: bleu, coco-bleu, rouge, .*vader.*onnx, http/,
    );
    await expect(rewardsFromConfig([{ type: 'rouge', variant: 'rouge0' }])).rejects.toThrow(/rewards\[0\]\.variant: expected rouge1..rouge9/);
    await expect(rewardsFromConfig([{ type: 'vader', colour: 'red' }])).rejects.toThrow(/rewards\[0\]/);
    await expect(rewardsFromConfig([{ type: 'length' }])).rejects.toThrow(/rewards\[0\]\.target/);
    await expect(rewardsFromConfig([{ type: 'vader' }, { type: 'vader' }])).rejects.toThrow(/duplicate reward name 'vader'/);
    await expect(rewardFromConfig({ type: 'weighted', weights: [1], rewards: [{ type: 'nope' }] })).rejects.toThrow(
      /reward\.rewards\[0\]\.type: unknown reward type "nope"/,
    );
  });

  it('every leaf type builds from YAML and scores like the direct API', async () => {
    const smp = [S('The cats sat on the big mat!', ['the cat sat on the mat', 'a cat is on a mat']), S('a dog', ['a dog runs'])];
    const pairs: Array<[Record<string, unknown>, Reward]> = [
      [
        { type: 'bleu', smooth_method: 'floor', smooth_value: 0.2, tokenize: 'none' },
        bleuReward({ smoothMethod: 'floor', smoothValue: 0.2, tokenize: 'none' }),
      ],
      [{ type: 'coco-bleu', n: 2, tokenize: 'ptb' }, cocoBleuReward({ n: 2, tokenize: 'ptb' })],
      [{ type: 'rouge', variant: 'rougeLsum', measure: 'recall', stemmer: true }, rougeReward({ variant: 'rougeLsum', measure: 'recall', stemmer: true })],
      [{ type: 'cider', sigma: 3 }, new CiderReward({ sigma: 3 })],
      [{ type: 'meteor', gamma: 0.4 }, meteorReward({ gamma: 0.4 })],
      [{ type: 'afinn', field: 'prompt+response' }, afinnReward({ field: 'prompt+response' })],
      [{ type: 'readability', metric: 'gunningFog' }, readabilityReward({ metric: 'gunningFog' })],
      [{ type: 'toxicity', words: ['dog'] }, toxicityReward({ words: ['dog'] })],
      [{ type: 'length', target: 5, unit: 'chars', shape: 'gaussian', width: 3 }, lengthReward({ target: 5, unit: 'chars', shape: 'gaussian', width: 3 })],
      [{ type: 'normalize', reward: { type: 'vader' } }, runningNorm(vaderReward())],
    ];
    for (const [cfg, direct] of pairs) {
      const fromCfg = await rewardFromConfig(cfg);
      expect(Array.from(await fromCfg.score(smp)), JSON.stringify(cfg)).toEqual(Array.from(await direct.score(smp)));
    }
  });

  it('rsoup rewards score CONFIG --input samples.jsonl', async () => {
    const cfg = join(tmp, 'r.yml');
    const inp = join(tmp, 's.jsonl');
    writeFileSync(
      cfg,
      'rewards:\n  - type: vader\n  - type: bleu\n  - type: weighted\n    name: mix\n    weights: [1, 3]\n    rewards: [{type: vader}, {type: length, target: 4}]\n',
    );
    writeFileSync(inp, `${JSON.stringify(S('I love this great movie', ['I love the movie']))}\n\n${JSON.stringify(S('terrible awful', ['bad']))}\n`);
    const run = (...args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'rewards', 'score', ...args], {
        encoding: 'utf8',
        cwd: new URL('..', import.meta.url).pathname,
      });
    const r = run(cfg, '--input', inp);
    expect(r.status, r.stderr).toBe(0);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows).toHaveLength(2);
    const v0 = vaderCompound('I love this great movie');
    expect(rows[0].scores.vader).toBe(v0);
    expect(rows[0].scores.bleu).toBeCloseTo(sentenceBleu('I love this great movie', ['I love the movie']).score / 100, 14);
    expect(rows[0].scores.mix).toBeCloseTo((v0 + 3 * (-1 / 4)) / 4, 14);
    expect(r.stderr).toMatch(/vader: mean/);
    // Error paths in process (the end-to-end spawn above covers main.ts; exit code 1 = runtime error there).
    writeFileSync(join(tmp, 'bad.yml'), 'rewards:\n  - type: sentiment\n');
    const cli = async (...args: string[]) => {
      const program = new Command('rsoup').exitOverride();
      registerRewards(program);
      await program.parseAsync(['node', 'rsoup', 'rewards', 'score', ...args]);
    };
    await expect(cli(join(tmp, 'bad.yml'), '--input', inp)).rejects.toMatchObject({
      code: 'ERR_SOUP_CONFIG',
      message: expect.stringMatching(/bad\.yml: rewards\[0\]\.type: unknown reward type "sentiment" \(valid types: /),
    });
    writeFileSync(join(tmp, 'broken.jsonl'), '{"response": "ok"}\nnot json\n');
    await expect(cli(cfg, '--input', join(tmp, 'broken.jsonl'))).rejects.toThrow(/broken\.jsonl:2: not valid JSON/);
    await expect(cli(cfg, '--input', join(tmp, 'missing.jsonl'))).rejects.toThrow(/cannot read .*missing\.jsonl/);
  });
});
