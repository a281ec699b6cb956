// SPDX-License-Identifier: MIT
// rsoup bench load: a model of the size users bring, loaded for training. Writes (once) a
// LLaMA-7B-shaped Hugging Face dir of random bf16 weights in shards over 4 GiB, then in a fresh child
// process loads it with CausalLM.fromPretrained, runs logits and a LoRA lossAndGrad on 16 tokens, and
// reports the time of each step with VmHWM and the peak of RssAnon (VmHWM also counts the file-backed
// pages of the memory mapping; RssAnon is what the weights cost the process for real).
import { existsSync, mkdirSync, openSync, writeSync, closeSync, readFileSync, writeFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildHeader, f64ToBf16, indexJson, planShards, shardName, INDEX_NAME } from '../io/index.js';
import { CausalLM, llamaConfigToHF, type LlamaConfig } from '../train/llama.js';
import { llamaShapes } from '../train/testing.js';
import { mulberry32 } from '../util/random.js';
import { runChild } from './child.js';

/** LLaMA-7B (Llama-2-7b-hf's config.json). */
export const LLAMA_7B: LlamaConfig = {
  vocabSize: 32000,
  hiddenSize: 4096,
  intermediateSize: 11008,
  numHiddenLayers: 32,
  numAttentionHeads: 32,
  numKeyValueHeads: 32,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
  eosTokenId: 2,
  padTokenId: 0,
};

/** Writes a random bf16 HF dir (U(±scale) linear weights, norms near 1) in shards of at most
 *  `shardBytes`, tensor by tensor, so it never holds more than one 256 MiB pool in memory. */
export function writeRandomLlamaDir(dir: string, c: LlamaConfig, shardBytes: number, seed = 1, scale = 0.02, log = (_: string) => {}): void {
  mkdirSync(dir, { recursive: true });
  const rnd = mulberry32(seed);
  const pool = new Uint16Array(128 << 20);
  for (let i = 0; i < pool.length; i++) pool[i] = f64ToBf16((rnd() * 2 - 1) * scale);
  const items = llamaShapes(c).map(([name, shape]) => ({ name, shape, bytes: shape.reduce((a, b) => a * b, 1) * 2 }));
  const shards = planShards(items, shardBytes);
  let total = 0;
  const files = shards.map((s, i) => {
    const file = shardName(i, shards.length);
    const { bytes } = buildHeader(
      s.map((t) => ({ name: t.name, dtype: 'bfloat16', shape: t.shape })),
      { format: 'pt' },
    );
    const fd = openSync(join(dir, `${file}.partial`), 'w');
    writeSync(fd, bytes);
    for (const t of s) {
      const n = t.bytes / 2;
      if (t.name.endsWith('norm.weight')) {
        const v = new Uint16Array(n);
        for (let k = 0; k < n; k++) v[k] = f64ToBf16(1 + (rnd() * 2 - 1) * 0.1);
        writeSync(fd, v);
      } else {
        // random windows of the pool: every tensor different, no 13 GB of PRNG calls
        for (let done = 0; done < n; ) {
          const len = Math.min(n - done, pool.length >> 1);
          const at = Math.floor(rnd() * (pool.length - len));
          writeSync(fd, pool.subarray(at, at + len));
          done += len;
        }
      }
      total += t.bytes;
    }
    closeSync(fd);
    renameSync(join(dir, `${file}.partial`), join(dir, file));
    log(`wrote ${file} (${s.length} tensors)`);
    return { file, names: s.map((t) => t.name) };
  });
  writeFileSync(join(dir, INDEX_NAME), indexJson(files, total));
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(llamaConfigToHF(c, 'bfloat16'), null, 2)}\n`);
}

function memStatus(): { vmHWM: number; rssAnon: number; rssFile: number } {
  const s = readFileSync('/proc/self/status', 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
  return { vmHWM: kb('VmHWM'), rssAnon: kb('RssAnon'), rssFile: kb('RssFile') };
}

/** The measuring side (the child process: `rsoup bench load --child <dir>`): times and memory of load, logits and LoRA lossAndGrad. */
export async function measureLoad(dir: string, tokens = 16): Promise<Record<string, number>> {
  let peakAnon = 0;
  const sample = () => (peakAnon = Math.max(peakAnon, memStatus().rssAnon));
  const timer = setInterval(sample, 20);
  timer.unref(); // a failed load must not keep the process alive
  const row: Record<string, number> = { baselineRssAnon: memStatus().rssAnon };
  const t0 = performance.now();
  const m = await CausalLM.fromPretrained(dir, { dtype: 'bfloat16', tokenizer: false, lora: { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] } });
  row.loadSeconds = (performance.now() - t0) / 1000;
  sample();
  row.afterLoadRssAnon = memStatus().rssAnon;
  const toks = Array.from({ length: tokens }, (_, i) => 3 + ((i * 7919) % (m.config.vocabSize - 3)));
  let t = performance.now();
  const lg = await m.logits([toks]);
  row.logitsSeconds = (performance.now() - t) / 1000;
  row.logitsFinite = lg.every((x) => Number.isFinite(x)) ? 1 : 0;
  t = performance.now();
  const { loss, grads } = await m.lossAndGrad([toks]);
  row.lossAndGradSeconds = (performance.now() - t) / 1000;
  row.loss = loss;
  row.loraGradTensors = Object.keys(grads).length;
  await m.dispose();
  clearInterval(timer);
  sample();
  const st = memStatus();
  return { ...row, vmHWM: st.vmHWM, peakRssAnon: peakAnon };
}

export interface LoadBenchOptions {
  dir: string;
  shardBytes?: number;
  keep?: boolean;
  log?: (line: string) => void;
}

/** Makes the dir when missing, then measures in a child process (so the numbers are the load's alone). */
export async function benchLoad(o: LoadBenchOptions): Promise<Record<string, number>> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const made = !existsSync(join(o.dir, INDEX_NAME));
  if (made) {
    const t0 = performance.now();
    writeRandomLlamaDir(o.dir, LLAMA_7B, o.shardBytes ?? 4_600_000_000, 1, 0.02, log);
    log(`made ${o.dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  let row: Record<string, number>;
  try {
    // `rsoup bench load --child <dir>`: a fresh process, its progress on this one's stderr
    row = await runChild<Record<string, number>>('load', o.dir, { inheritStderr: true });
  } finally {
    if (made && !o.keep) rmSync(o.dir, { recursive: true, force: true });
  }
  const gib = (b: number) => (b / 2 ** 30).toFixed(2);
  log(
    `load ${row.loadSeconds.toFixed(1)} s, logits(${16} tokens) ${row.logitsSeconds.toFixed(1)} s, LoRA lossAndGrad ${row.lossAndGradSeconds.toFixed(1)} s (loss ${row.loss.toFixed(3)})`,
  );
  log(`VmHWM ${gib(row.vmHWM)} GiB, peak RssAnon ${gib(row.peakRssAnon)} GiB (after load ${gib(row.afterLoadRssAnon)} GiB)`);
  return row;
}
