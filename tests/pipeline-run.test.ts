// SPDX-License-Identifier: MIT
// `rsoup run` end to end on a micro experiment (a 1-layer d=16 model pre-trained for a few steps on a
// slice of the fortunes, 3-step PPO runs): the report and plots are written; the same seed gives the
// same report; a run killed during the experts resumes from its checkpoints and ends with the same
// report as an uninterrupted one; a changed sweep reruns only the sweep; bad configs fail before any
// training; the GPU examples pass --dry-run's checks when their files exist.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, rsoup, rsoupAsync } from './helpers/cli.js';
import { makeTokenizer, tokenizerModelConfig } from './helpers/fixtures.js';
import { saveModelDir } from '../src/io/index.js';
import { CausalLM, llamaConfigToHF, randomLlamaWeights } from '../src/train/index.js';
import { microConfig, stripTimes, writeMicroCorpus } from './helpers/micro.js';

const tmp = mkdtempSync(join(tmpdir(), 'rsoup-run-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const micro = microConfig;

beforeAll(() => {
  // a slice of the real corpus keeps the tokenizer and pre-training to a second
  writeMicroCorpus(tmp);
  writeFileSync(join(tmp, 'micro.yml'), micro());
  writeFileSync(join(tmp, 'micro6.yml'), micro(6));
});

const report = (dir: string) => JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));

describe('rsoup run (micro experiment)', () => {
  it('runs every stage, writes the report and the plots; the same seed gives the same report', () => {
    const a = rsoup(['run', join(tmp, 'micro.yml'), '--out', join(tmp, 'a')]);
    expect(a.code, a.stderr).toBe(0);
    for (const stage of ['base', 'experts', 'morl', 'sweep', 'report']) expect(a.stderr).toMatch(new RegExp(`\\] ${stage}: done in`));
    expect(a.stderr).toMatch(/finished in .*base .*experts\+morl .*sweep .*report/);
    expect(a.stderr).toMatch(/report: .*report\.html/);
    expect(a.stderr).toMatch(/found: soups\/MORL hypervolume ratio [\d.∞]+ .*same reference point .*LMC \(Hypothesis 1\) (holds|does not hold|not tested)/);
    const dir = join(tmp, 'a');
    for (const f of ['report.json', 'report.html', 'front.svg', 'front.png', 'rewards-vs-lambda.png', 'training.png', 'timings.json'])
      expect(existsSync(join(dir, f)), f).toBe(true);
    const png = readFileSync(join(dir, 'front.png'));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    const r = report(dir);
    expect(r.rewards).toEqual(['vader', 'topic']);
    expect(r.models.map((m: { kind: string }) => m.kind)).toEqual(['init', 'expert', 'expert', 'morl', 'soup', 'soup', 'soup']);
    // λ = eᵢ soups are the experts themselves: same tensors, same seed, same numbers
    expect(r.models[4].rewards).toEqual(r.models[1].rewards);
    expect(r.models[6].rewards).toEqual(r.models[2].rewards);
    expect(r.cost.soups.ppo_steps).toBe(6);
    expect(r.cost.morl.ppo_steps).toBe(3);
    expect(r.cost.soups.cpu_seconds).toBeGreaterThan(0);
    const hist = readFileSync(join(dir, 'experts', 'expert-vader', 'history.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(hist.map((h: { step: number }) => h.step)).toEqual([1, 2, 3]);
    // the PEFT adapter of each run is where `rsoup merge` reads it
    expect(existsSync(join(dir, 'experts', 'expert-topic', 'adapter', 'adapter_model.safetensors'))).toBe(true);
    const b = rsoup(['run', join(tmp, 'micro.yml'), '--out', join(tmp, 'b'), '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(stripTimes(report(join(tmp, 'b')))).toEqual(stripTimes(r));
    const events = b.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events.filter((e) => e.event === 'run' && e.name === 'expert-vader').map((e) => e.step)).toEqual([1, 2, 3]);
    expect(events.at(-1)).toMatchObject({ event: 'finished', report: join(tmp, 'b', 'report.json') });

    // a changed sweep reruns the sweep only
    writeFileSync(join(tmp, 'micro5.yml'), micro(3).replace('lambdas: 3', 'lambdas: 5'));
    const c = rsoup(['run', join(tmp, 'micro5.yml'), '--out', join(tmp, 'b')]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stderr).toMatch(/base: cached/);
    expect(c.stderr.match(/(experts|morl): cached/g)).toHaveLength(3);
    expect(c.stderr).toMatch(/sweep: done in/);
    expect(report(join(tmp, 'b')).models.filter((m: { kind: string }) => m.kind === 'soup')).toHaveLength(5);

    // dense ΔW interpolation (rank-concatenated adapters): again only the sweep reruns; λ = eᵢ are the experts
    writeFileSync(join(tmp, 'micro-dense.yml'), micro(3).replace('lambdas: 3', 'lambdas: 3, interpolation: dense'));
    const d = rsoup(['run', join(tmp, 'micro-dense.yml'), '--out', join(tmp, 'b')]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stderr.match(/(base|experts|morl): cached/g)).toHaveLength(4);
    const rd = report(join(tmp, 'b'));
    expect(rd.models[4].rewards).toEqual(rd.models[1].rewards);
    expect(rd.models[6].rewards).toEqual(rd.models[2].rewards);

    // the prediction-ensembling baseline (Fig. 4c): one more evaluation per λ, beside the soups
    writeFileSync(join(tmp, 'micro-ens.yml'), micro(3).replace('lambdas: 3', 'lambdas: 3, ensemble: true'));
    const en = rsoup(['run', join(tmp, 'micro-ens.yml'), '--out', join(tmp, 'b')]);
    expect(en.code, en.stderr).toBe(0);
    expect(en.stderr.match(/(base|experts|morl): cached/g)).toHaveLength(4);
    const re = report(join(tmp, 'b'));
    const ens = re.models.filter((m: { kind: string }) => m.kind === 'ensemble');
    expect(ens.map((m: { lambda: number[] }) => m.lambda)).toEqual([
      [1, 0],
      [0.5, 0.5],
      [0, 1],
    ]);
    expect(re.ensembles).toHaveLength(3);
    for (const e of re.ensembles) expect(e.soup_minus_ensemble.map((d: { reward: string }) => d.reward)).toEqual(['vader', 'topic']);
    // the soups' numbers do not depend on whether the ensembles were evaluated too
    expect(re.models.filter((m: { kind: string }) => m.kind === 'soup')).toEqual(
      report(join(tmp, 'a')).models.filter((m: { kind: string }) => m.kind === 'soup'),
    );
    const evals = JSON.parse(readFileSync(join(tmp, 'b', 'sweep', 'evals.json'), 'utf8'));
    for (const e of evals.filter((x: { kind: string }) => x.kind === 'ensemble')) expect(e.perPrompt[0]).toHaveLength(8);
  }, 300_000);

  it('resumes a run killed during the experts, with the same report as an uninterrupted run', async () => {
    const ref = rsoup(['run', join(tmp, 'micro6.yml'), '--out', join(tmp, 'ref')]);
    expect(ref.code, ref.stderr).toBe(0);
    const out = join(tmp, 'killed');
    const child = rsoupAsync(['run', join(tmp, 'micro6.yml'), '--out', out]);
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const hist = join(out, 'experts', 'expert-vader', 'history.jsonl');
    const ckpt = join(out, 'experts', 'expert-vader', 'adapter', 'trainer_state.json');
    const t0 = Date.now();
    while (!(existsSync(ckpt) && existsSync(hist) && readFileSync(hist, 'utf8').trim().split('\n').length >= 3)) {
      if (Date.now() - t0 > 200_000) throw new Error(`no checkpoint in time:\n${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    expect(existsSync(join(out, 'report.json'))).toBe(false);
    const again = rsoup(['run', join(tmp, 'micro6.yml'), '--out', out]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/base: cached/);
    expect(again.stderr).toMatch(/expert-vader: resumed at step [2-6]|experts: cached \(expert-vader\)/);
    const steps = readFileSync(hist, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6]);
    expect(stripTimes(report(out))).toEqual(stripTimes(report(join(tmp, 'ref'))));
  }, 400_000);

  it('bad configs fail before any training, naming the problem', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['unknown-reward', micro().replace('type: vader, name: vader', 'type: sentiment, name: vader'), /rewards\[0\]\.type: unknown reward type "sentiment"/],
      [
        'missing-model',
        micro()
          .replace(/base:\n  pretrain: .*\n/, `base:\n  model: ${join(tmp, 'no-such-model')}\n`)
          .replace('prompts: {', 'prompts: { train: micro.yml, eval: micro.yml,'),
        /missing base\.model \(dir\) .*no-such-model/,
      ],
      ['lambda-n', micro().replace('lambdas: 3', 'lambdas: [[0.2, 0.3, 0.5]]'), /sweep\.lambdas\[0\] has 3 entries but there are 2 experts/],
      ['mu-sum', micro().replace('mu: [[0.5, 0.5]]', 'mu: [[0.5, 0.4]]'), /morl\.mu\[0\] = \[0\.5, 0\.4\] sums to 0\.9, not 1/],
      ['bad-http', micro().replace('type: vader, name: vader', 'type: http, name: vader, url: not-a-url'), /rewards\[0\]\.url/],
    ];
    for (const [name, text, re] of cases) {
      writeFileSync(join(tmp, `${name}.yml`), text);
      const out = join(tmp, `bad-${name}`);
      const r = rsoup(['run', join(tmp, `${name}.yml`), '--out', out]);
      expect(r.code, `${name}: ${r.stderr}`).toBe(1);
      expect(r.stderr, name).toMatch(re);
      expect(existsSync(join(out, 'base')), `${name} trained something`).toBe(false);
    }
  }, 120_000);

  it('--dry-run checks the GPU examples and every file they name, and prints the plan with its cost', () => {
    const r = rsoup(['run', join(ROOT, 'examples', 'llama7b-summary.yml'), '--dry-run']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/MISSING base\.model: .*models\/llama-7b-hf/);
    expect(r.stderr).toMatch(/MISSING rewards\[1\]\.model: .*bart-faithful\/model\.onnx/);
    // experts.epochs 2 over 20 000 training prompts in batches of 128: ceil(40 000 / 128) = 313 steps per run
    expect(r.stderr).toMatch(/cost: 5 PPO runs, 1565 PPO steps, 200320 samples/);
    // with the files in place (stand-ins), the same config passes
    const root = join(tmp, 'gpu');
    const touch = (p: string) => {
      mkdirSync(join(root, p, '..'), { recursive: true });
      writeFileSync(join(root, p), '{}');
    };
    for (const p of [
      'models/llama-7b-hf/config.json',
      'models/llama-7b-hf/tokenizer.json',
      'models/alpaca-lora-7b/adapter_config.json',
      'data/news-train.jsonl',
      'data/news-eval.jsonl',
      'rm/gpt2-summarization/model.onnx',
      'rm/gpt2-summarization/tokenizer.json',
      'rm/bart-faithful/model.onnx',
      'rm/bart-faithful/tokenizer.json',
    ])
      touch(p);
    writeFileSync(join(root, 'summary.yml'), readFileSync(join(ROOT, 'examples', 'llama7b-summary.yml'), 'utf8'));
    const ok = rsoup(['run', join(root, 'summary.yml'), '--dry-run', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const plan = JSON.parse(ok.stdout.trim().split('\n').at(-1)!);
    expect(plan).toMatchObject({ event: 'plan', ok: true, rewards: ['gpt2-summary', 'faithful'] });
    expect(plan.stages.map((s: { stage: string }) => s.stage)).toEqual(['base', 'experts', 'experts', 'morl', 'morl', 'morl', 'sweep', 'report']);
    expect(readdirSync(root)).not.toContain('runs');
    for (const f of ['llama7b-review-http.yml', 'llama7b-assistant-n4.yml', 'demo.yml']) {
      const d = rsoup(['run', join(ROOT, 'examples', f), '--dry-run']);
      expect(d.stderr, f).toMatch(/plan:\n  base/);
      expect(d.code, f).toBe(f === 'demo.yml' ? 0 : 1);
    }
  }, 120_000);

  it('runs on a Hugging Face model dir with a starting PEFT adapter and prompt files', async () => {
    const CFG = tokenizerModelConfig();
    const root = join(tmp, 'hf');
    mkdirSync(root, { recursive: true });
    await saveModelDir(join(root, 'model'), randomLlamaWeights(CFG, 5, { dtype: 'float32', scale: 0.2 }), { config: llamaConfigToHF(CFG) });
    symlinkSync(makeTokenizer().path, join(root, 'model', 'tokenizer.json'));
    // a starting adapter with B != 0 (the Alpaca case), which every run starts from
    const m = await CausalLM.fromPretrained(join(root, 'model'), { lora: { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] }, seed: 9 });
    const t = await m.getTensors('lora');
    for (const [k, v] of Object.entries(t)) if (k.includes('lora_B')) (v.data as Float32Array).forEach((_, i, a) => (a[i] = Math.sin(i + 1) * 0.05));
    await m.setTensors('lora', t);
    await m.saveAdapter(join(root, 'alpaca'));
    await m.dispose();
    writeFileSync(join(root, 'train.txt'), 'The cat\nOnce upon a time\nHello, my dog is\nA fortune:\n');
    writeFileSync(join(root, 'eval.jsonl'), '{"prompt": "Life is"}\n{"prompt": "The law"}\n');
    writeFileSync(
      join(root, 'x.yml'),
      `name: hf
output: run
base: { model: model, adapter: alpaca }
prompts: { train: train.txt, eval: eval.jsonl }
rewards: [{ type: vader }, { type: length, target: 20, unit: chars }]
lora: { r: 2, lora_alpha: 4 }
ppo: { batch_size: 2, mini_batch_size: 1, ppo_epochs: 1, learning_rate: 0.001, generation: { output_min_length: 3, output_max_length: 5 } }
experts: { steps: 2 }
morl: { mu: [] }
sweep: { lambdas: [0.5], max_new_tokens: 4, threads: 1 }
`,
    );
    const r = rsoup(['run', join(root, 'x.yml'), '--out', join(root, 'run')]);
    expect(r.code, r.stderr).toBe(0);
    const rep = report(join(root, 'run'));
    expect(rep.models.map((x: { name: string }) => x.name)).toEqual(['init', 'expert-vader', 'expert-length', 'soup λ=[0.5, 0.5]']);
    expect(rep.cost.morl.runs).toBe(0);
    const prompts = JSON.parse(readFileSync(join(root, 'run', 'base', 'prompts.json'), 'utf8'));
    expect(prompts.train).toHaveLength(4);
    expect(prompts.eval).toHaveLength(2);
    // the experts started from the given adapter: their adapter_config names the same LoRA
    const cfg = JSON.parse(readFileSync(join(root, 'run', 'experts', 'expert-vader', 'adapter', 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] });
  }, 300_000);

  it("rsoup demo: an unknown --task errors clearly; --dry-run prints the text demo's plan", () => {
    const r = rsoup(['demo', '--task', 'atari']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--task atari: unknown task \(available: text, /);
    const d = rsoup(['demo', '--dry-run', '--out', join(tmp, 'demo')]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stderr).toMatch(/pre-train a 4-layer d=128 LLaMA \(vocab 2048\) for 450 steps/);
    expect(d.stderr).toMatch(/expert-love: PPO on love for 150 steps of 64 samples/);
    expect(d.stderr).toMatch(/morl-0.25-0.75: PPO on/);
  });
});
