// SPDX-License-Identifier: MIT
// rsoup train ppo CONFIG.yml: one PPO expert (one reward), or a MORL run (rewards with weights μ), on a
// LLaMA-architecture HF dir with LoRA. Config fields: trl's (ppo:) and peft's (lora:). Progress on
// stderr; --json writes one stats line per step on stdout. The output dir is a PEFT adapter dir (what
// `rsoup merge` reads) plus the state to resume (--resume).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { SoupError } from '../../errors.js';
import { parseStrict, readConfigFile } from '../../util/config.js';
import { rewardsFromConfig } from '../../rewards/index.js';
import { CausalLM, PPOConfigSchema, PPOTrainer, parsePPOConfig } from '../../train/index.js';
import { jsonLine, UsageError } from '../output.js';
import { withSigint } from '../signals.js';

export const TrainPPOFileSchema = z
  .object({
    /** Hugging Face LLaMA dir: config.json, safetensors, tokenizer.json. */
    model: z.string().min(1),
    /** PEFT adapter dir to start from (the paper's Alpaca LoRA); else a fresh adapter from `lora`. */
    adapter: z.string().min(1).optional(),
    lora: z
      .object({
        r: z.number().int().positive().default(8),
        lora_alpha: z.number().positive().default(16),
        lora_dropout: z.number().min(0).max(0.99).default(0.05),
        target_modules: z.array(z.string()).min(1).default(['q_proj', 'v_proj']),
        use_rslora: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    dtype: z.enum(['float32', 'bfloat16', 'float16', 'float64']).default('float32'),
    threads: z.number().int().positive().optional(),
    /** Prompts: a list, or a text file (one per line) / JSON-lines file ({"prompt": ...}). */
    prompts: z.union([z.array(z.string()).min(1), z.string().min(1)]),
    steps: z.number().int().positive(),
    output: z.string().min(1),
    rewards: z.array(z.unknown()).min(1),
    /** MORL weights μ, one per reward (renormalised by their sum). */
    weights: z.array(z.number().nonnegative()).optional(),
    ppo: PPOConfigSchema.prefault({}),
  })
  .strict();

function readPrompts(spec: string | string[], base: string): string[] {
  if (Array.isArray(spec)) return spec;
  const file = isAbsolute(spec) ? spec : resolve(base, spec);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SoupError('ERR_SOUP_IO', `prompts: cannot read ${file}: ${(e as Error).message}`);
  }
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (file.endsWith('.jsonl')) {
    return lines.map((l, i) => {
      try {
        const o = JSON.parse(l);
        if (typeof o.prompt !== 'string') throw new Error('no string "prompt"');
        return o.prompt as string;
      } catch (e) {
        throw new SoupError('ERR_SOUP_FORMAT', `${file}:${i + 1}: ${(e as Error).message}`);
      }
    });
  }
  if (lines.length === 0) throw new SoupError('ERR_SOUP_CONFIG', `prompts: ${file} is empty`);
  return lines;
}

export async function trainPPOFromFile(path: string, opts: { json?: boolean; resume?: boolean; steps?: number }, signal?: AbortSignal): Promise<void> {
  const c = parseStrict(TrainPPOFileSchema, readConfigFile(path), path);
  const base = dirname(resolve(path));
  const at = (x: string) => (isAbsolute(x) ? x : resolve(base, x));
  const ppo = parsePPOConfig(c.ppo, `${path}: ppo`);
  if (c.weights && c.weights.length !== c.rewards.length)
    throw new SoupError('ERR_SOUP_CONFIG', `${path}: weights has ${c.weights.length} entries for ${c.rewards.length} rewards`);
  if (!c.weights && c.rewards.length > 1) throw new SoupError('ERR_SOUP_CONFIG', `${path}: several rewards need MORL weights μ ('weights: [...]')`);
  const out = at(c.output);
  const resuming = existsSync(join(out, 'trainer_state.json'));
  if (resuming && !opts.resume) throw new SoupError('ERR_SOUP_CONFIG', `${out} already holds a run: pass --resume to continue it, or choose another output`);
  const rewards = await rewardsFromConfig(c.rewards, { baseDir: base, path: `${path}: rewards` });
  const prompts = readPrompts(c.prompts, base);
  const model = await CausalLM.fromPretrained(at(c.model), {
    dtype: c.dtype,
    lora: c.adapter ? at(c.adapter) : c.lora,
    valueHead: true,
    seed: ppo.seed,
    ...(c.threads ? { threads: c.threads } : {}),
  });
  try {
    const trainer = new PPOTrainer(model, ppo, { rewards, weights: c.weights, checkpointDir: out });
    if (resuming) {
      await trainer.load(out);
      process.stderr.write(`resuming ${out} at step ${trainer.step}\n`);
    }
    const steps = opts.steps ?? c.steps;
    for await (const s of trainer.train({ prompts, steps, signal })) {
      if (opts.json)
        jsonLine({
          step: s.step,
          score: s.score,
          rewards: s.rewards,
          kl: s.kl,
          kl_coef: s.klCoef,
          entropy: s.entropy,
          clipfrac: s.clipfrac,
          approxkl: s.approxKl,
          value_error: s.valueError,
          tokens_per_s: s.tokensPerSecond,
          seconds: s.seconds.total,
        });
      const per = Object.entries(s.rewards)
        .map(([k, v]) => `${k} ${v.toFixed(4)}`)
        .join(' ');
      process.stderr.write(
        `step ${s.step}/${steps} score ${s.score.toFixed(4)}${rewards.length > 1 ? ` (${per})` : ''} kl ${s.kl.toFixed(3)} β ${s.klCoef.toFixed(4)} entropy ${s.entropy.toFixed(3)} clip ${s.clipfrac.toFixed(3)} ${s.tokensPerSecond.toFixed(0)} tok/s\n`,
      );
    }
    process.stderr.write(`done: ${out} (PEFT adapter dir + trainer state)\n`);
  } finally {
    await model.dispose();
  }
}

export function register(program: Command): void {
  const train = program.command('train').description('fine-tune experts (PPO with LoRA on a LLaMA-architecture model)');
  train
    .command('ppo')
    .description('PPO (trl 0.4.x semantics) on one reward, or MORL on weighted rewards; writes a PEFT adapter dir')
    .argument('<config>', 'YAML: model, adapter|lora (peft fields), prompts, steps, output, rewards, weights?, ppo (trl fields)')
    .option('--json', 'one JSON line of stats per step on stdout')
    .option('--resume', 'continue the run saved in the output dir')
    .option('--steps <n>', 'override the total step count')
    .action(async (config: string, o: { json?: boolean; resume?: boolean; steps?: string }) => {
      const steps = o.steps === undefined ? undefined : Number(o.steps);
      if (steps !== undefined && (!Number.isInteger(steps) || steps < 1)) throw new UsageError(`--steps must be a positive integer, got ${o.steps}`);
      await withSigint((signal) => trainPPOFromFile(config, { json: o.json, resume: o.resume, steps }, signal));
    });
}
