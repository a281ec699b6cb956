// SPDX-License-Identifier: MIT
// The serving engine's batched decoding step against independent references, fp32, in batches whose
// rows each carry a different λ and where sequences join mid-batch:
//   'soup'     == the dense merged model W₀ + Σ λᵢ sᵢ BᵢAᵢ (merge(..., { lora: 'dense', base })) loaded
//                 with CausalLM.fromPretrained, for experts of mixed ranks, targets and scalings (rsLoRA);
//   'soup-ab'  == the sweep's A/B soup (prepareInterpolation over the adapters' tensors, loaded into one
//                 LoRA model as src/pipeline/sweep.ts does);
//   'ensemble' == Σ λᵢ softmax(logits of expert i) with each expert loaded as a peft adapter.
// Each reference recomputes the whole sequence (prompt + the tokens the engine chose) without a cache.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { merge, prepareInterpolation } from '../src/soup/index.js';
import { CausalLM } from '../src/train/llama.js';
import { SoupEngine, type SeqSpec, type StepResult } from '../src/serve/engine.js';
import { makeAdapter, makeBase, maxRel, softmax, TINY } from './helpers/serve.js';
import type { TensorMap } from '../src/io/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'rsoup-serve-exact-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const V = TINY.vocabSize;
const base = join(tmp, 'base');
// mixed ranks, targets and scalings
const MIXED = [
  { name: 'e1', r: 2, alpha: 4, targets: ['q_proj', 'v_proj'], seed: 11 },
  { name: 'e2', r: 5, alpha: 8, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed: 12 },
  { name: 'e3', r: 3, alpha: 6, targets: ['v_proj', 'o_proj', 'down_proj'], rslora: true, seed: 13 },
];
// the A/B soup needs one rank and scaling (as the sweep's experts have)
const SAME = [
  { name: 'a1', r: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'up_proj'], seed: 21 },
  { name: 'a2', r: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'up_proj'], seed: 22 },
  { name: 'a3', r: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'up_proj'], seed: 23 },
];
const abTensors: TensorMap[] = [];

beforeAll(async () => {
  await makeBase(base, TINY, 5);
  for (const e of MIXED) await makeAdapter(join(tmp, e.name), TINY, e);
  for (const e of SAME) abTensors.push(await makeAdapter(join(tmp, e.name), TINY, e));
});

/** Drives the engine: per sequence, the logits that chose each token, and the tokens. */
class Trace {
  toks = new Map<number, number[]>();
  lg = new Map<number, Float32Array[]>();
  record(r: StepResult) {
    let k = 0;
    r.ids.forEach((id, i) => {
      if (r.tokens[i] < 0) return;
      if (!this.toks.has(id)) {
        this.toks.set(id, []);
        this.lg.set(id, []);
      }
      this.toks.get(id)!.push(r.tokens[i]);
      this.lg.get(id)!.push(r.logits!.slice(k * V, (k + 1) * V));
      k++;
    });
  }
}

async function lastLogits(m: CausalLM, seq: number[]): Promise<Float32Array> {
  const all = await m.logits([seq]);
  return Float32Array.from(all.subarray((seq.length - 1) * V, seq.length * V));
}

describe('serve: batched decoding with a λ per row', () => {
  it("'soup' equals the dense merged model W₀ + Σ λᵢ sᵢ BᵢAᵢ for every row (mixed ranks, joins mid-batch)", async () => {
    const eng = await SoupEngine.load(
      base,
      MIXED.map((e) => ({ name: e.name, dir: join(tmp, e.name) })),
      { threads: 1 },
    );
    expect(eng.abUnavailable).toMatch(/A\/B interpolation/);
    const lams = [
      [0.2, 0.5, 0.3],
      [0.6, 0.1, 0.3],
      [0.1, 0.1, 0.8],
      [0, 1, 0],
    ];
    const prompts = [
      [1, 5, 9, 14, 3],
      [1, 22, 7],
      [1, 4, 4, 30, 8, 2, 17],
      [1, 11],
    ];
    const spec = (i: number): SeqSpec => ({ id: 100 + i, tokens: prompts[i], lambda: lams[i], temperature: 0, maxTokens: 8 });
    const tr = new Trace();
    tr.record(await eng.add([spec(0), spec(1)], true));
    tr.record(await eng.step(true));
    tr.record(await eng.step(true));
    tr.record(await eng.add([spec(2)], true)); // joins mid-batch
    tr.record(await eng.step(true));
    await eng.remove([101]); // leaves
    tr.record(await eng.add([spec(3)], true));
    tr.record(await eng.step(true));
    tr.record(await eng.step(true));
    expect((await eng.info()).sequences).toBe(3);
    let worst = 0;
    for (let i = 0; i < 4; i++) {
      const out = join(tmp, `dense-${i}`);
      await merge({ sources: MIXED.map((e) => join(tmp, e.name)), weights: lams[i], out, lora: 'dense', base });
      const m = await CausalLM.fromPretrained(out, { tokenizer: false, threads: 1 });
      const toks = tr.toks.get(100 + i)!;
      expect(toks.length).toBeGreaterThanOrEqual(2);
      for (let k = 0; k < toks.length; k++) {
        const ref = await lastLogits(m, [...prompts[i], ...toks.slice(0, k)]);
        const rel = maxRel(tr.lg.get(100 + i)![k], ref);
        worst = Math.max(worst, rel);
        expect(rel, `row ${i} token ${k}`).toBeLessThan(1e-4);
        // greedy: the engine chose the reference's argmax
        expect(toks[k]).toBe(ref.indexOf(Math.max(...ref)));
      }
      await m.dispose();
    }
    console.log(`serve exactness 'soup' vs dense merge: max relative error ${worst.toExponential(2)}`);
    await eng.dispose();
  });

  it("'soup-ab' equals the sweep's A/B soup; 'soup' and 'soup-ab' rows share a batch", async () => {
    const eng = await SoupEngine.load(
      base,
      SAME.map((e) => ({ name: e.name, dir: join(tmp, e.name) })),
      { threads: 1 },
    );
    expect(eng.abUnavailable).toBeUndefined();
    const lams = [
      [0.3, 0.3, 0.4],
      [0.7, 0.2, 0.1],
      [0.5, 0, 0.5],
    ];
    const modes = ['soup-ab', 'soup', 'soup-ab'] as const;
    const prompts = [
      [1, 8, 3, 33],
      [1, 6, 19, 12, 4],
      [1, 2, 9],
    ];
    const spec = (i: number): SeqSpec => ({ id: i, tokens: prompts[i], lambda: lams[i], mode: modes[i], temperature: 0, maxTokens: 6 });
    const tr = new Trace();
    tr.record(await eng.add([spec(0), spec(1)], true));
    tr.record(await eng.step(true));
    tr.record(await eng.add([spec(2)], true));
    tr.record(await eng.step(true));
    tr.record(await eng.step(true));
    // the sweep's model: one LoRA model, A and B interpolated separately into reused buffers
    const model = await CausalLM.fromPretrained(base, { tokenizer: false, lora: join(tmp, 'a1'), threads: 1 });
    const soup = prepareInterpolation(abTensors);
    let worst = 0;
    for (const i of [0, 2]) {
      await model.setTensors('lora', await soup.run(lams[i], { normalize: false }));
      const toks = tr.toks.get(i)!;
      for (let k = 0; k < toks.length; k++) {
        const rel = maxRel(tr.lg.get(i)![k], await lastLogits(model, [...prompts[i], ...toks.slice(0, k)]));
        worst = Math.max(worst, rel);
        expect(rel, `ab row ${i} token ${k}`).toBeLessThan(1e-4);
      }
    }
    await model.dispose();
    // the 'soup' row of the same batch is the dense merge
    const out = join(tmp, 'dense-ab-1');
    await merge({ sources: SAME.map((e) => join(tmp, e.name)), weights: lams[1], out, lora: 'dense', base });
    const dm = await CausalLM.fromPretrained(out, { tokenizer: false, threads: 1 });
    const toks = tr.toks.get(1)!;
    for (let k = 0; k < toks.length; k++) expect(maxRel(tr.lg.get(1)![k], await lastLogits(dm, [...prompts[1], ...toks.slice(0, k)]))).toBeLessThan(1e-4);
    await dm.dispose();
    // A/B and exact differ at an interior λ (the cross term), so the test tells them apart
    const ab = tr.lg.get(0)![0];
    const out0 = join(tmp, 'dense-ab-0');
    await merge({ sources: SAME.map((e) => join(tmp, e.name)), weights: lams[0], out: out0, lora: 'dense', base });
    const d0 = await CausalLM.fromPretrained(out0, { tokenizer: false, threads: 1 });
    expect(maxRel(ab, await lastLogits(d0, prompts[0]))).toBeGreaterThan(1e-3);
    await d0.dispose();
    console.log(`serve exactness 'soup-ab' vs the sweep's A/B soup: max relative error ${worst.toExponential(2)}`);
    await eng.dispose();
  });

  it("'ensemble' equals the λ-weighted average of the experts' next-token distributions", async () => {
    const eng = await SoupEngine.load(
      base,
      MIXED.map((e) => ({ name: e.name, dir: join(tmp, e.name) })),
      { threads: 1 },
    );
    const lam = [0.5, 0.2, 0.3];
    const tr = new Trace();
    tr.record(
      await eng.add(
        [
          { id: 1, tokens: [1, 3, 5, 7], lambda: lam, mode: 'ensemble', temperature: 0, maxTokens: 5 },
          { id: 2, tokens: [1, 9], lambda: [0.3, 0.3, 0.4], temperature: 0, maxTokens: 5 },
        ],
        true,
      ),
    );
    tr.record(await eng.step(true));
    tr.record(await eng.add([{ id: 3, tokens: [1, 12, 13], lambda: [0, 0.4, 0.6], mode: 'ensemble', temperature: 0, maxTokens: 5 }], true));
    tr.record(await eng.step(true));
    tr.record(await eng.step(true));
    const experts = await Promise.all(MIXED.map((e) => CausalLM.fromPretrained(base, { tokenizer: false, lora: join(tmp, e.name), threads: 1 })));
    let worst = 0;
    for (const [id, prompt, l] of [
      [1, [1, 3, 5, 7], lam],
      [3, [1, 12, 13], [0, 0.4, 0.6]],
    ] as const) {
      const toks = tr.toks.get(id)!;
      for (let k = 0; k < toks.length; k++) {
        const seq = [...prompt, ...toks.slice(0, k)];
        const mix = new Float64Array(V);
        for (let i = 0; i < experts.length; i++) {
          if (l[i] === 0) continue;
          const p = softmax(await lastLogits(experts[i], seq));
          for (let v = 0; v < V; v++) mix[v] += l[i] * p[v];
        }
        const got = Float64Array.from(tr.lg.get(id)![k], Math.exp);
        const rel = maxRel(got, mix);
        worst = Math.max(worst, rel);
        expect(rel, `ensemble ${id} token ${k}`).toBeLessThan(1e-4);
        expect(toks[k]).toBe(mix.indexOf(Math.max(...mix)));
      }
    }
    for (const m of experts) await m.dispose();
    console.log(`serve exactness 'ensemble' vs Σ λᵢ pᵢ: max relative error ${worst.toExponential(2)}`);
    await eng.dispose();
  });

  it('samples per sequence: a seed reproduces its tokens whatever else is in the batch; capacity ends a sequence', async () => {
    const eng = await SoupEngine.load(
      base,
      MIXED.map((e) => ({ name: e.name, dir: join(tmp, e.name) })),
      { threads: 1 },
    );
    const s: SeqSpec = { id: 7, tokens: [1, 5, 6], lambda: [0.2, 0.3, 0.5], temperature: 0.9, topP: 0.9, seed: 42, maxTokens: 4 };
    const alone: number[] = [];
    const push = (r: StepResult, id: number, into: number[]) =>
      r.ids.forEach((x, i) => {
        if (x === id && r.tokens[i] >= 0) into.push(r.tokens[i]);
      });
    push(await eng.add([s]), 7, alone);
    for (let i = 0; i < 4; i++) push(await eng.step(), 7, alone);
    expect(alone.length).toBe(4);
    const last = await eng.step();
    expect(Array.from(last.tokens)).toEqual([-1]); // capacity reached: the caller removes it
    await eng.remove([7]);
    const crowd: number[] = [];
    push(
      await eng.add([
        { ...s, id: 8 },
        { id: 9, tokens: [1, 2, 3, 4], lambda: [1, 0, 0], temperature: 1, seed: 3, maxTokens: 9 },
      ]),
      8,
      crowd,
    );
    for (let i = 0; i < 3; i++) push(await eng.step(), 8, crowd);
    expect(crowd).toEqual(alone);
    await expect(eng.add([{ id: 10, tokens: [1], lambda: [1, 0], maxTokens: 2 }])).rejects.toThrow(/lambda has 2 entries, expected 3/);
    await expect(eng.add([{ id: 11, tokens: [1, 99], lambda: [1, 0, 0], maxTokens: 2 }])).rejects.toThrow(/token ids/);
    await expect(eng.add([{ id: 12, tokens: [1], lambda: [1, 0, 0], mode: 'soup-ab', maxTokens: 2 }])).rejects.toThrow(/soup-ab/);
    await eng.dispose();
  });
});
