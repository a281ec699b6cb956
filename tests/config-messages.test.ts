// Issue 17 points 3, 5 and 6: strict configs with "did you mean", messages that say what a bad source is
// and what to do, help text and docs that list what the CLI accepts.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { z } from 'zod';
import { writeSafetensors, saveModelDir, writePeftAdapter, SoupError, type TensorMap } from '../src/index.js';
import { loadExperiment, ExperimentSchema } from '../src/pipeline/index.js';
import { checkRewardConfig, rewardsFromConfig } from '../src/rewards/index.js';
import { PPOConfigSchema, parsePPOConfig } from '../src/train/index.js';
import { ControlPPOConfigSchema } from '../src/train/index.js';
import { LocomotionSchema, parseLocomotion } from '../src/pipeline/tasks/locomotion/index.js';
import { cliMessage, checkOut } from '../src/cli/commands/merge.js';
import { MergeConfigSchema, mergeConfigHelp, configToOptions } from '../src/soup/config.js';
import { TrainPPOFileSchema } from '../src/cli/commands/train.js';
import { editDistance, nearest, fieldPath, keysAt, schemaKeys, zodIssues } from '../src/util/config.js';
import { rng, randomTensor } from './helpers/random.js';
import { ROOT, rsoup } from './helpers/cli.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'soup-cfg-'));

function tensors(seed: number, shapes: Record<string, number[]>): TensorMap {
  const r = rng(seed);
  const m: TensorMap = {};
  for (const [k, s] of Object.entries(shapes)) m[k] = randomTensor('float32', s, r);
  return m;
}

async function file(dir: string, name: string, seed: number): Promise<string> {
  const p = join(dir, name);
  await writeSafetensors(p, tensors(seed, { w: [4, 3], v: [5] }));
  return p;
}

async function adapter(dir: string, name: string, seed: number): Promise<string> {
  const p = join(dir, name);
  const m = tensors(seed, { 'base_model.model.layer.q_proj.lora_A.weight': [2, 4], 'base_model.model.layer.q_proj.lora_B.weight': [4, 2] });
  await writePeftAdapter(p, m, { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj'] });
  return p;
}

async function hfModel(dir: string, name: string, seed: number): Promise<string> {
  const p = join(dir, name);
  await saveModelDir(p, tensors(seed, { 'layer.q_proj.weight': [4, 4] }), { config: { architectures: ['LlamaForCausalLM'] } });
  return p;
}

/** A run that failed cleanly: exit `code`, the message, no stack trace, no output left. */
function failed(r: { code: number | null; stderr: string }, code: number, msg: RegExp, out?: string): void {
  expect(r.stderr, r.stderr).toMatch(msg);
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).not.toMatch(/\n\s+at |node:internal|ENOTDIR|scandir/);
  if (out) expect(existsSync(out), out).toBe(false);
}

const yamlOf = (models: [string, number, string?][], extra = '') =>
  `models:\n${models.map(([m, w, p = '']) => `  - model: ${m}\n    parameters:\n      weight: ${w}\n${p}`).join('')}${extra}`;

// ---- point 3: strict configs ----------------------------------------------------------------------
describe('did-you-mean helper', () => {
  it('edit distance counts a transposition as one edit', () => {
    expect(editDistance('dtype', 'dtyp')).toBe(1);
    expect(editDistance('base_modle', 'base_model')).toBe(1);
    expect(editDistance('normalise', 'normalize')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });

  it('suggests the nearest key, another spelling convention, or nothing when nothing is close', () => {
    const keys = ['dtype', 'out_dtype', 'base_model', 'allow_extrapolation', 'out_shard_size', 'lora'];
    expect(nearest('dtyp', keys)).toBe('dtype');
    expect(nearest('out_shard_sise', keys)).toBe('out_shard_size');
    expect(nearest('allowExtrapolation', keys)).toBe('allow_extrapolation');
    expect(nearest('allow-extrapolation', keys)).toBe('allow_extrapolation');
    expect(nearest('LORA', keys)).toBe('lora');
    expect(nearest('temperature', keys)).toBeUndefined();
    expect(nearest('xy', keys)).toBeUndefined();
  });

  it('paths read as users write them, and the accepted keys are found through wrappers', () => {
    expect(fieldPath(['models', 1, 'parameters', 'normalise'])).toBe('models[1].parameters.normalise');
    expect(fieldPath(['variant'], 'rewards[0]')).toBe('rewards[0].variant');
    expect(fieldPath([])).toBe('');
    expect(keysAt(MergeConfigSchema, ['models', 3, 'parameters'])).toEqual(['weight']);
    expect(keysAt(MergeConfigSchema, ['parameters'])).toEqual(['normalize']);
    expect(keysAt(ExperimentSchema, ['ppo', 'generation'])).toContain('top_k');
    expect(keysAt(ExperimentSchema, ['morl'])).toEqual(['mu', 'steps']);
  });

  it('every config schema is strict at every level', () => {
    const loose: string[] = [];
    const walk = (s: z.ZodType, path: string, seen = new Set<unknown>()): void => {
      if (seen.has(s)) return;
      seen.add(s);
      const d = (s as unknown as { _zod: { def: Record<string, unknown> } })._zod.def;
      const next = (x: unknown, p: string) => x && walk(x as z.ZodType, p, seen);
      if (d.type === 'object') {
        const catchall = d.catchall as { _zod?: { def: { type: string } } } | undefined;
        if (catchall?._zod?.def.type !== 'never') loose.push(path || '(root)');
        for (const [k, v] of Object.entries(d.shape as Record<string, unknown>)) next(v, `${path}.${k}`);
      }
      next(d.innerType, path);
      next(d.element, `${path}[]`);
      next(d.in, path);
      for (const o of (d.options as unknown[] | undefined) ?? []) next(o, path);
    };
    const schemas: Record<string, z.ZodType> = {
      MergeConfigSchema,
      ExperimentSchema,
      PPOConfigSchema,
      ControlPPOConfigSchema,
      TrainPPOFileSchema,
      LocomotionSchema,
    };
    for (const [name, s] of Object.entries(schemas)) walk(s, name);
    expect(loose).toEqual([]);
  });

  it('a zod error lists unknown keys first, each with its path and suggestion', () => {
    const r = MergeConfigSchema.safeParse({ modles: [], dtyp: 'bf16' });
    expect(r.success).toBe(false);
    const lines = zodIssues(r.error!, MergeConfigSchema);
    expect(lines[0]).toBe("modles: unknown key 'modles', did you mean 'models'?");
    expect(lines[1]).toBe("dtyp: unknown key 'dtyp', did you mean 'dtype'?");
    expect(lines[2]).toMatch(/^models: /);
  });
});

describe('rsoup merge: a YAML config with an unknown key is an error naming it (exit 1, nothing written)', () => {
  const d = tmp();
  const cases: [string, string, RegExp][] = [
    ['dtyp', 'dtyp: float32\n', /soup-0\.yml: dtyp: unknown key 'dtyp', did you mean 'dtype'\?/],
    ['parameters.normalise', 'parameters:\n  normalise: false\n', /parameters\.normalise: unknown key 'normalise', did you mean 'normalize'\?/],
    ['base_modle', 'base_modle: x\n', /base_modle: unknown key 'base_modle', did you mean 'base_model'\?/],
    ['out_shard_sise', 'out_shard_sise: 1GB\n', /out_shard_sise: unknown key 'out_shard_sise', did you mean 'out_shard_size'\?/],
    ['allowExtrapolation', 'allowExtrapolation: true\n', /allowExtrapolation: unknown key 'allowExtrapolation', did you mean 'allow_extrapolation'\?/],
    [
      'a key with no near miss',
      'tokenizer_source: union\n',
      /tokenizer_source: unknown key 'tokenizer_source' \(accepted: merge_method, models, dtype, out_dtype, parameters, base_model, lora, allow_extrapolation, out_shard_size\)/,
    ],
  ];
  for (const [k, [name, extra, msg]] of cases.entries()) {
    it(name, async () => {
      const a = await file(d, 'a.safetensors', 1),
        b = await file(d, 'b.safetensors', 2);
      const cfg = join(d, `soup-${k}.yml`);
      writeFileSync(
        cfg,
        yamlOf(
          [
            [a, 1],
            [b, 1],
          ],
          extra,
        ),
      );
      const out = join(d, `out-${k}.safetensors`);
      expect(() => configToOptions(cfg, out)).toThrow(msg);
      // the CLI: two of them (each spawn costs seconds)
      if (k < 2) failed(rsoup(['merge', cfg, out]), 1, msg, out);
    });
  }

  it('a key under models[i] is named with its index; a key of another level is pointed to', async () => {
    const a = await file(d, 'a2.safetensors', 1),
      b = await file(d, 'b2.safetensors', 2);
    const cfg = join(d, 'soup2.yml');
    writeFileSync(
      cfg,
      yamlOf([
        [a, 1],
        [b, 1, '      normalise: false\n'],
      ]),
    );
    const out = join(d, 'o2.safetensors');
    failed(
      rsoup(['merge', cfg, out]),
      1,
      /models\[1\]\.parameters\.normalise: unknown key 'normalise' \(accepted: weight\); did you mean 'parameters\.normalize'\?/,
      out,
    );
  });

  it('every unknown key is reported at once', async () => {
    const a = await file(d, 'a3.safetensors', 1);
    const cfg = join(d, 'soup3.yml');
    writeFileSync(cfg, yamlOf([[a, 1]], 'dtyp: bf16\nbase_modle: x\n'));
    const r = rsoup(['merge', cfg, join(d, 'o3.safetensors')]);
    failed(r, 1, /dtyp: unknown key 'dtyp'.*; base_modle: unknown key 'base_modle'/);
  });
});

describe('experiment YAML: unknown keys fail the real run and --dry-run alike', () => {
  const d = tmp();
  const model = join(d, 'hf');
  mkdirSync(model);
  writeFileSync(join(d, 'p.txt'), 'a prompt\nanother prompt\n');
  const exp = (extra: string, rewards = '[{type: vader}, {type: afinn}]') =>
    `base: { model: ${model} }\nprompts: { train: p.txt, eval: p.txt }\nrewards: ${rewards}\nexperts: { steps: 2 }\n${extra}`;
  // [name, extra YAML, rewards, message]; the first three also through the CLI, dry run and real run
  const cases: [string, string, string | undefined, RegExp][] = [
    [
      'a reward option (used to pass --dry-run and fail the run)',
      '',
      '[{type: vader, batch_sise: 4}, {type: afinn}]',
      /rewards\[0\]\.batch_sise: unknown key 'batch_sise', did you mean 'batch_size'\?/,
    ],
    ['a nested key', 'sweep: { lambda: 5 }\n', undefined, /sweep\.lambda: unknown key 'lambda', did you mean 'lambdas'\?/],
    [
      'a lexicon key',
      '',
      '[{type: lexicon, words: [cat], wrods: [dog]}, {type: afinn}]',
      /rewards\[0\]\.wrods: unknown key 'wrods' for a lexicon reward, did you mean 'words'\?/,
    ],
    ['a top-level key', 'sede: 3\n', undefined, /sede: unknown key 'sede', did you mean 'seed'\?/],
    ['a nested key', 'sweep: { lambda: 5 }\n', undefined, /sweep\.lambda: unknown key 'lambda', did you mean 'lambdas'\?/],
    ['a PPO key', 'ppo: { generation: { top-k: 3 } }\n', undefined, /ppo\.generation\.top-k: unknown key 'top-k', did you mean 'top_k'\?/],
    [
      'a nested reward option',
      '',
      '[{type: weighted, weights: [1], rewards: [{type: vader, feild: response}]}, {type: afinn}]',
      /rewards\[0\]\.rewards\[0\]\.feild: unknown key 'feild', did you mean 'field'\?/,
    ],
    ['a reward type', '', '[{type: vaderr}, {type: afinn}]', /rewards\[0\]\.type: unknown reward type "vaderr", did you mean 'vader'\?/],
  ];
  for (const [k, [name, extra, rewards, msg]] of cases.entries()) {
    it(name, () => {
      const f = join(d, `${name.replace(/\W/g, '')}.yml`);
      writeFileSync(f, exp(extra, rewards));
      expect(() => loadExperiment(f)).toThrow(msg);
      if (k >= 3) return;
      const out = join(d, `run-${name.replace(/\W/g, '')}`);
      const dry = rsoup(['run', f, '--dry-run', '--out', out]);
      const real = rsoup(['run', f, '--out', out]);
      failed(dry, 1, msg);
      failed(real, 1, msg);
      expect(dry.stderr).toBe(real.stderr);
      expect(existsSync(out)).toBe(false);
    });
  }

  it('the parsers of other configs name unknown keys too', async () => {
    expect(() => parsePPOConfig({ init_kl: 0.1 })).toThrow(/init_kl: unknown key 'init_kl', did you mean 'init_kl_coef'\?/);
    expect(() => parseLocomotion({ experts: { stepz: 3 } })).toThrow(/experts\.stepz: unknown key 'stepz', did you mean 'steps'\?/);
    await expect(rewardsFromConfig([{ type: 'rouge', varient: 'rougeL' }])).rejects.toThrow(
      /rewards\[0\]\.varient: unknown key 'varient', did you mean 'variant'\?/,
    );
    expect(() => checkRewardConfig({ type: 'clip', min: 0, max: 1, reward: { type: 'length', traget: 3 } })).toThrow(
      /reward\.reward\.traget: unknown key 'traget', did you mean 'target'\?/,
    );
    expect(() => checkRewardConfig({ type: 'clip', min: 0, max: 1, reward: { type: 'length', traget: 3 } })).toThrow(SoupError);
  });

  it('rsoup train ppo names an unknown key of its YAML', () => {
    const f = join(d, 'train.yml');
    writeFileSync(f, `model: ${model}\nprompts: [a]\nsteps: 1\noutput: ${join(d, 'tr')}\nrewards: [{type: vader}]\nlora: { lora_alfa: 8 }\n`);
    failed(rsoup(['train', 'ppo', f]), 1, /lora\.lora_alfa: unknown key 'lora_alfa', did you mean 'lora_alpha'\?/);
  });
});

// ---- point 5: messages ------------------------------------------------------------------------------
describe('rsoup merge: sources that are not checkpoints say what they are, with sources[i]', () => {
  const d = tmp();
  const out = join(d, 'out.safetensors');

  it('a /dev/zero symlink', async () => {
    const a = await file(d, 'a.safetensors', 1);
    symlinkSync('/dev/zero', join(d, 'zero.safetensors'));
    failed(
      rsoup(['merge', '--sources', a, join(d, 'zero.safetensors'), '--weights', '1', '1', '--out', out]),
      1,
      /sources\[1\]: '.*zero\.safetensors' \(a symlink to '\/dev\/zero'\) is a character device, not a checkpoint: give a \.safetensors file, a Hugging Face model dir or a PEFT adapter dir/,
      out,
    );
  });

  it('a FIFO', async () => {
    const a = await file(d, 'a.safetensors', 1);
    execFileSync('mkfifo', [join(d, 'pipe')]);
    failed(
      rsoup(['merge', '--sources', join(d, 'pipe'), a, '--weights', '1', '1', '--out', out]),
      1,
      /sources\[0\]: '.*pipe' is a FIFO \(named pipe\), not a checkpoint/,
      out,
    );
  });

  it('a PyTorch zip checkpoint and a legacy pickle', async () => {
    const a = await file(d, 'a.safetensors', 1);
    // torch.save since 1.6: a zip archive; before: a pickle (protocol 2) starting with its magic number
    writeFileSync(join(d, 'model.bin'), Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.from([0, 0, 8, 8]), Buffer.alloc(600, 7)]));
    writeFileSync(join(d, 'old.pt'), Buffer.concat([Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20]), Buffer.alloc(600, 3)]));
    for (const [f, what] of [
      ['model.bin', /zip archive.*pickle \/ PyTorch checkpoint/],
      ['old.pt', /Python pickle \(a PyTorch checkpoint/],
    ] as const) {
      const r = rsoup(['merge', '--sources', a, join(d, f), '--weights', '1', '1', '--out', out]);
      failed(r, 1, what, out);
      expect(r.stderr).toMatch(new RegExp(`sources\\[1\\]: .*${f.replace('.', '\\.')}: this is`));
      expect(r.stderr).toMatch(/convert it first.*safetensors/);
      expect(r.stderr).not.toMatch(/exceeds the|header length/);
    }
  });

  it('an HF dir with only pytorch_model.bin', async () => {
    const a = await hfModel(d, 'hfa', 1);
    const b = join(d, 'hfbin');
    mkdirSync(b);
    writeFileSync(join(b, 'config.json'), '{"architectures": ["LlamaForCausalLM"]}');
    writeFileSync(join(b, 'pytorch_model.bin'), Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(64)]));
    failed(
      rsoup(['merge', '--sources', a, b, '--weights', '1', '1', '--out', join(d, 'hfout')]),
      1,
      /sources\[1\]: .*hfbin: only PyTorch pickle weights \(pytorch_model\.bin\), no \.safetensors file; .*convert the model first.*safe_serialization=True/,
      join(d, 'hfout'),
    );
  });

  it('a PEFT adapter listed before a full model: the fix is --lora dense --base, not lora dense alone', async () => {
    const ad = await adapter(d, 'ad', 1);
    const hf = await hfModel(d, 'hf', 2);
    const o = join(d, 'mixed');
    const r = rsoup(['merge', '--sources', ad, hf, '--weights', '1', '1', '--out', o]);
    failed(
      r,
      1,
      /sources mix a PEFT adapter and a full model: sources\[0\] '.*ad' is a PEFT adapter dir, sources\[1\] '.*hf' is a full model \(Hugging Face model dir\)/,
      o,
    );
    expect(r.stderr).toMatch(/give only the adapters as sources, with --lora dense and --base .*hf/);
    expect(r.stderr).not.toMatch(/different scalings|lora 'dense'/);
    // the other order, and in a YAML config (its own keys)
    failed(
      rsoup(['merge', '--sources', hf, ad, '--weights', '1', '1', '--out', o]),
      1,
      /sources\[1\] '.*ad' is a PEFT adapter dir, sources\[0\] '.*hf' is a full model/,
      o,
    );
    const cfg = join(d, 'mixed.yml');
    writeFileSync(
      cfg,
      yamlOf([
        [ad, 1],
        [hf, 1],
      ]),
    );
    failed(rsoup(['merge', cfg, o]), 1, /with lora: dense and base_model: .*hf/, o);
    // and the advice works
    const ok = rsoup(['merge', '--sources', ad, await adapter(d, 'ad2', 3), '--weights', '1', '1', '--lora', 'dense', '--base', hf, '--out', o]);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('the CLI names its own flag (--allow-extrapolation) or YAML key (allow_extrapolation), never the API option', async () => {
    const a = await file(d, 'xa.safetensors', 1),
      b = await file(d, 'xb.safetensors', 2);
    const r = rsoup(['merge', '--sources', a, b, '--weights', '1.2', '-0.2', '--out', out]);
    failed(r, 1, /weights\[1\] = -0\.2 puts λ off the simplex .*pass --allow-extrapolation to extrapolate/, out);
    expect(r.stderr).not.toMatch(/allowExtrapolation/);
    const z = rsoup(['merge', '--sources', a, b, '--weights', '1', '-1', '--out', out]);
    failed(z, 1, /weights sum to 0: cannot normalize \(use --allow-extrapolation to pass weights as given\)/, out);
    const cfg = join(d, 'x.yml');
    writeFileSync(
      cfg,
      yamlOf([
        [a, 1.2],
        [b, -0.2],
      ]),
    );
    const y = rsoup(['merge', cfg, out]);
    failed(y, 1, /pass allow_extrapolation: true \(or --allow-extrapolation\) to extrapolate/, out);
    expect(y.stderr).not.toMatch(/allowExtrapolation/);
    const base = rsoup(['merge', '--sources', a, b, '--weights', '1', '1', '--base', a, '--out', out]);
    failed(base, 1, /--base is only used with --lora dense/, out);
  });

  it('cliMessage maps each API option name', () => {
    expect(cliMessage("use lora 'dense' for adapters", 'flags')).toBe('use --lora dense for adapters');
    expect(cliMessage("use lora 'dense' for adapters", 'yaml')).toBe('use lora: dense for adapters');
    expect(cliMessage('shardSize must be a positive number of bytes, got 0', 'flags')).toBe('--shard-size must be a positive number of bytes, got 0');
    expect(cliMessage('shardSize must be a positive number of bytes, got 0', 'yaml')).toBe('out_shard_size must be a positive number of bytes, got 0');
    expect(cliMessage('threads must be a positive integer, got 0', 'flags')).toBe('--threads must be a positive integer, got 0');
  });
});

// A cancelled merge exits 130: tests/merge-cli.test.ts "SIGINT in the middle of a merge" (256 MiB sources).

// ---- point 6: help and docs -------------------------------------------------------------------------
function helpKeys(help: string): string[] {
  const i = help.indexOf('Config keys');
  expect(i, help).toBeGreaterThan(0);
  const lines = help.slice(i).split('\n').slice(1);
  const end = lines.findIndex((l) => !/^ {2}\S/.test(l));
  return lines.slice(0, end < 0 ? lines.length : end).map((l) => l.trim().split(/\s+/)[0]);
}

describe('rsoup merge --help and docs/merge.md list every config key and dtype name', () => {
  const help = rsoup(['merge', '--help']);

  it('the help lists the schema keys, all ten', () => {
    expect(help.code).toBe(0);
    const keys = helpKeys(help.stdout);
    expect(keys).toEqual(schemaKeys(MergeConfigSchema));
    expect(keys).toEqual([
      'merge_method',
      'models[].model',
      'models[].parameters.weight',
      'dtype',
      'out_dtype',
      'parameters.normalize',
      'base_model',
      'lora',
      'allow_extrapolation',
      'out_shard_size',
    ]);
    // every accepted top-level key appears
    for (const k of Object.keys(MergeConfigSchema.shape))
      expect(
        keys.some((x) => x === k || x.startsWith(`${k}.`) || x.startsWith(`${k}[]`)),
        k,
      ).toBe(true);
  });

  it('docs/merge.md holds the same key list as the help', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'merge.md'), 'utf8');
    expect(doc, 'update docs/merge.md with the "Config keys" block of `rsoup merge --help`').toContain(mergeConfigHelp());
    expect(helpKeys(doc)).toEqual(schemaKeys(MergeConfigSchema));
  });

  it('--dtype shows the short names it accepts', () => {
    const line = help.stdout.replace(/\n\s{20,}/g, ' ');
    expect(line).toMatch(/--dtype <dtype>.*bfloat16 \(bf16\)/);
    for (const a of ['fp32', 'f32', 'fp16', 'half', 'bf16', 'fp64']) expect(line).toContain(a);
  });
});

describe('rsoup merge --out: NAME.safetensors is a file, a name without extension (or ending in /) a dir', () => {
  const d = tmp();

  it('--out x.st is an error naming it, with both ways out; nothing is created', async () => {
    const a = await file(d, 'a.safetensors', 1),
      b = await file(d, 'b.safetensors', 2);
    const before = readdirSync(d).sort();
    const r = rsoup(['merge', '--sources', a, b, '--weights', '1', '1', '--out', join(d, 'x.st')]);
    failed(
      r,
      2,
      /--out '.*x\.st': '\.st' is not \.safetensors\. For one file, name it '.*x\.safetensors'; for a directory \(Hugging Face or PEFT layout\), end it with a slash: '.*x\.st\/'/,
    );
    expect(readdirSync(d).sort()).toEqual(before);
    const cfg = join(d, 's.yml');
    writeFileSync(
      cfg,
      yamlOf([
        [a, 1],
        [b, 1],
      ]),
    );
    failed(rsoup(['merge', cfg, join(d, 'y.safetensor')]), 2, /OUT '.*y\.safetensor': '\.safetensor' is not \.safetensors/);
  });

  it('a plain name, a name ending in /, a version-like name and an existing dir are dirs', async () => {
    const a = await file(d, 'a.safetensors', 1),
      b = await file(d, 'b.safetensors', 2);
    mkdirSync(join(d, 'existing.dir'));
    for (const o of ['x.st/', 'llama-2.7b']) {
      const r = rsoup(['merge', '--sources', a, b, '--weights', '1', '1', '--out', join(d, o), '--json']);
      expect(r.code, `${o}: ${r.stderr}`).toBe(0);
      expect(readdirSync(join(d, o))).toContain('model.safetensors');
    }
    for (const o of ['m.safetensors', join(d, 'soup'), join(d, 'existing.dir'), 'runs/v0.5', 'x.bin/']) expect(() => checkOut(o, '--out'), o).not.toThrow();
    expect(() => checkOut('m.bin', '--out')).toThrow(/'\.bin' is not \.safetensors/);
  });
});

describe('rsoup bench merge and the README agree on the flags', () => {
  const help = rsoup(['bench', 'merge', '--help']).stdout;

  it('every flag the README and docs show for the merge bench is an option of rsoup bench merge', () => {
    const text = ['README.md', 'docs/merge.md', 'docs/benchmarks.md', 'docs/notes/merge-measuring.md']
      .map((f) => readFileSync(join(ROOT, f), 'utf8'))
      .join('\n');
    const cmds = [...text.matchAll(/`(?:npx tsx bench\/merge\.ts|rsoup bench merge)([^`]*)`/g)].map((m) => m[1]);
    expect(cmds.length).toBeGreaterThan(2);
    const flags = new Set(cmds.flatMap((c) => c.match(/--[a-z][a-z-]*/g) ?? []));
    expect([...flags]).toContain('--no-js');
    for (const f of flags) expect(help, f).toMatch(new RegExp(`${f}\\b`));
  });

  it('--no-js and --no-fresh skip their rows; --huge-pages takes 0 or 1', () => {
    const r = rsoup([
      'bench',
      'merge',
      '--regimes',
      'full',
      '--full-gib',
      '0.03125',
      '--n',
      '2',
      '--dtypes',
      'float32',
      '--reps',
      '1',
      '--no-torch',
      '--no-js',
      '--no-fresh',
      '--huge-pages',
      '0',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const methods = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((x) => x.event === 'result')
      .map((x) => String(x.method));
    expect(methods.some((m) => m.startsWith('soup'))).toBe(true);
    expect(methods.filter((m) => /JS loop|new outputs/.test(m))).toEqual([]);
    failed(rsoup(['bench', 'merge', '--huge-pages', '2']), 2, /--huge-pages: '2' is not 0 or 1/);
  });
});
