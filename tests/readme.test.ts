// SPDX-License-Identifier: MIT
// The README's quick start runs as written: its TypeScript block is extracted, type-checked against the
// package source ('rewarded-soups' mapped to src/index.ts through a temp tsconfig's `paths`) and run with
// tsx in a temp folder holding small random files under the names the README uses.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveModelDir, writePeftAdapter, writeSafetensors, type TensorMap } from '../src/io/index.js';
import { ROOT } from './helpers/cli.js';
import { GPT2_LORA_CONFIG } from './helpers/fixtures.js';
import { randomTensor, rng } from './helpers/random.js';

const dir = mkdtempSync(join(tmpdir(), 'rsoup-readme-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The first ```ts block under "## Quick start". */
function quickStart(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Quick start'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('README.md: no ```ts block under "## Quick start"');
  return m[1];
}

/** A tiny LLaMA-named checkpoint (q/v projections, embeddings), seeded. */
function llama(seed: number, dtype: 'float32' | 'bfloat16'): TensorMap {
  const r = rng(seed);
  return {
    'model.embed_tokens.weight': randomTensor(dtype, [16, 8], r),
    'model.layers.0.self_attn.q_proj.weight': randomTensor(dtype, [8, 8], r),
    'model.layers.0.self_attn.v_proj.weight': randomTensor(dtype, [8, 8], r),
  };
}

/** A PEFT LoRA adapter of `llama` (r 2 on q_proj and v_proj). */
function adapter(seed: number): TensorMap {
  const r = rng(seed);
  const t: TensorMap = {};
  for (const m of ['q_proj', 'v_proj']) {
    t[`base_model.model.model.layers.0.self_attn.${m}.lora_A.weight`] = randomTensor('float32', [2, 8], r, 0.1);
    t[`base_model.model.model.layers.0.self_attn.${m}.lora_B.weight`] = randomTensor('float32', [8, 2], r, 0.1);
  }
  return t;
}

beforeAll(async () => {
  const config = { model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: 8, vocab_size: 16 };
  await saveModelDir(join(dir, 'expert-a'), llama(1, 'bfloat16'), { config });
  await saveModelDir(join(dir, 'expert-b'), llama(2, 'bfloat16'), { config });
  await saveModelDir(join(dir, 'base-model'), llama(3, 'float32'), { config });
  const loraConfig = {
    ...GPT2_LORA_CONFIG,
    base_model_name_or_path: 'base-model',
    fan_in_fan_out: false,
    r: 2,
    lora_alpha: 4,
    target_modules: ['q_proj', 'v_proj'],
    task_type: 'CAUSAL_LM',
  };
  await writePeftAdapter(join(dir, 'lora-a'), adapter(4), loraConfig);
  await writePeftAdapter(join(dir, 'lora-b'), adapter(5), loraConfig);
  await writeSafetensors(join(dir, 'a.safetensors'), llama(6, 'float32'));
  await writeSafetensors(join(dir, 'b.safetensors'), llama(7, 'float32'));
  writeFileSync(join(dir, 'quickstart.mts'), quickStart());
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2022'],
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          esModuleInterop: true,
          resolveJsonModule: true,
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
          paths: { 'rewarded-soups': [join(ROOT, 'src', 'index.ts')] },
        },
        // the source's own ambient declarations (untyped vendor modules), as its tsconfig includes them
        include: ['quickstart.mts', join(ROOT, 'src', '**', '*.d.ts')],
      },
      null,
      2,
    ),
  );
});

describe("the README's quick start", () => {
  it('imports everything it uses and type-checks against the package source', () => {
    const code = quickStart();
    expect(code).toMatch(/from 'rewarded-soups'/);
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')], {
      cwd: dir,
      encoding: 'utf8',
    });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  });

  it('runs as written against small random files, and writes what it says', () => {
    const tsx = join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');
    const r = spawnSync(process.execPath, [tsx, '--tsconfig', join(dir, 'tsconfig.json'), 'quickstart.mts'], { cwd: dir, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^3 tensors at [\d.]+ GB\/s \(kernel \w+\)$/m);
    expect(r.stdout).toMatch(/^θ\(0\.5\) holds 3 tensors$/m);
    expect(r.stdout.match(/^λ = 0\.[123]: -?[\d.e-]+$/gm)).toHaveLength(3);
    expect(readdirSync(join(dir, 'soup')).sort()).toEqual(['config.json', 'model.safetensors']);
    expect(existsSync(join(dir, 'merged', 'model.safetensors'))).toBe(true);
  });
});
