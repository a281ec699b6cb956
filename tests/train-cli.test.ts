// SPDX-License-Identifier: MIT
// rsoup train ppo CONFIG.yml end to end on a tiny LLaMA with a byte-level BPE tokenizer: progress on stderr,
// JSON stats on stdout, a PEFT adapter dir as output, --resume, and config errors naming the field.
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPeftAdapter, saveModelDir } from '../src/io/index.js';
import { llamaConfigToHF, randomLlamaWeights } from '../src/train/index.js';
import { rsoup } from './helpers/cli.js';
import { makeTokenizer, tokenizerModelConfig } from './helpers/fixtures.js';

// the vocabulary of the tokenizer made by tests/helpers/fixtures.ts
const CFG = tokenizerModelConfig();
const tmp = mkdtempSync(join(tmpdir(), 'rsoup-train-cli-'));
const model = join(tmp, 'model');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await saveModelDir(model, randomLlamaWeights(CFG, 2, { dtype: 'float32', scale: 0.2 }), { config: llamaConfigToHF(CFG) });
  symlinkSync(makeTokenizer().path, join(model, 'tokenizer.json'));
  writeFileSync(join(tmp, 'prompts.txt'), 'The cat\nOnce upon a time\nHello, my dog is\nA fortune:\n');
});

const yaml = (extra = '') => `model: ${model}
prompts: prompts.txt
steps: 2
output: out
threads: 1
lora: { r: 4, lora_alpha: 8, target_modules: [q_proj, v_proj] }
rewards:
  - { type: length, target: 30, unit: chars, name: len }
  - { type: afinn, name: afinn }
weights: [0.7, 0.3]
ppo:
  batch_size: 4
  mini_batch_size: 2
  ppo_epochs: 1
  learning_rate: 0.001
  init_kl_coef: 0.05
  generation: { output_min_length: 3, output_max_length: 6 }
${extra}`;

describe('rsoup train ppo', () => {
  it('trains a MORL run, writes a PEFT adapter dir, resumes', () => {
    const cfg = join(tmp, 'run.yml');
    writeFileSync(cfg, yaml());
    const r = rsoup(['train', 'ppo', cfg, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/step 1\/2 score .* \(len .* afinn .*\) kl .* β 0\.0500/);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.step)).toEqual([1, 2]);
    for (const l of lines) expect(l.score).toBeCloseTo(0.7 * l.rewards.len + 0.3 * l.rewards.afinn, 6);
    const cfgJson = JSON.parse(readFileSync(join(tmp, 'out', 'adapter_config.json'), 'utf8'));
    expect(cfgJson).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] });
    const again = rsoup(['train', 'ppo', cfg]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already holds a run: pass --resume/);
    const resumed = rsoup(['train', 'ppo', cfg, '--resume', '--steps', '3', '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resuming .* at step 2/);
    expect(
      resumed.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).step),
    ).toEqual([3]);
    expect(JSON.parse(readFileSync(join(tmp, 'out', 'trainer_state.json'), 'utf8')).step).toBe(3);
    // the checkpoint dir is a PEFT adapter dir that rsoup merge accepts (a soup of the run with itself)
    const merged = rsoup(['merge', '--sources', join(tmp, 'out'), join(tmp, 'out'), '--weights', '0.3', '0.7', '--out', join(tmp, 'soup')]);
    expect(merged.code, merged.stderr).toBe(0);
    return Promise.all([readPeftAdapter(join(tmp, 'out')), readPeftAdapter(join(tmp, 'soup'))]).then(([a, m]) => {
      expect(Object.keys(a.tensors).length).toBe(4);
      for (const [k, t] of Object.entries(a.tensors)) {
        const d = m.tensors[k].data;
        t.data.forEach((v, i) => expect(d[i]).toBeCloseTo(v, 6));
      }
    });
  });

  it('config errors name the field', () => {
    const cases: [string, RegExp][] = [
      [yaml('  init_kl: 0.1\n'), /ppo.*init_kl/],
      [yaml().replace('cliprange', 'x').replace('batch_size: 4', 'batch_size: -4'), /ppo\.batch_size/],
      [yaml().replace('[q_proj, v_proj]', '[c_attn]'), /target_modules entry "c_attn" matches no module/],
      [yaml().replace('weights: [0.7, 0.3]', 'weights: [1]'), /weights has 1 entries for 2 rewards/],
      [yaml().replace(`model: ${model}`, `model: ${tmp}`), /config\.json|model|not/i],
    ];
    cases.forEach(([text, re], i) => {
      const f = join(tmp, `bad${i}.yml`);
      writeFileSync(f, text.replace('output: out', `output: out-bad${i}`));
      const r = rsoup(['train', 'ppo', f]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(re);
      expect(r.stderr).not.toMatch(/Segmentation|Aborted|core dumped/);
    });
  });
});
