// SPDX-License-Identifier: MIT
// `rsoup run`: base → experts → MORL → sweep → report. Each stage (and each PPO run) lives in its own
// folder of the run dir with a `.stage.json` marker holding the hash of everything it was computed
// from (config slice + the hashes of the stages it reads). A finished stage with the same hash is
// reused; an unfinished PPO run with the same hash resumes from its checkpoint; a different hash wipes
// the folder and recomputes, and so does every stage downstream (their hashes include it).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { SoupError } from '../errors.js';
import { readPeftAdapter } from '../io/index.js';
import { loadTokenizer } from '../train/index.js';
import { pretrainTiny, type PretrainSpec } from './base.js';
import { checkFiles, type Experiment } from './config.js';
import { readFortunes } from './corpus.js';
import { runJobs } from './jobs.js';
import { writeReport, type Report, type RunCost } from './report.js';
import { buildRewards } from './rewards.js';
import { runSweep, type EvalEntry } from './sweep.js';
import type { PPOJob, WorkerMessage } from './worker.js';

export type StageName = 'base' | 'experts' | 'morl' | 'sweep' | 'report';

export type RunEvent =
  | { event: 'stage'; stage: StageName; status: 'start' | 'cached' | 'done'; seconds?: number; detail?: string }
  | { event: 'progress'; stage: StageName; done: number; total: number; elapsed: number; eta?: number; detail?: string }
  | { event: 'run'; name: string; step: number; steps: number; rewards: Record<string, number>; kl: number }
  | { event: 'finished'; report: string; html: string; seconds: number; timings: Record<string, number> };

export interface RunOptions {
  signal?: AbortSignal;
  onEvent?: (e: RunEvent) => void;
}

/** sha256 of a JSON value with sorted keys (first 16 hex digits). */
export function hashOf(v: unknown): string {
  const norm = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(norm);
    if (x && typeof x === 'object') return Object.fromEntries(Object.keys(x as object).sort().map((k) => [k, norm((x as Record<string, unknown>)[k])]));
    return x;
  };
  return createHash('sha256').update(JSON.stringify(norm(v))).digest('hex').slice(0, 16);
}

interface Marker { hash: string; done: boolean; seconds?: number; info?: unknown }

function readMarker(dir: string): Marker | undefined {
  const p = join(dir, '.stage.json');
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Marker;
  } catch {
    return undefined;
  }
}

function writeMarker(dir: string, m: Marker): void {
  mkdirSync(dir, { recursive: true });
  const p = join(dir, '.stage.json');
  writeFileSync(`${p}.tmp`, JSON.stringify(m, null, 2));
  // rename is atomic: a killed run never leaves a half-written marker
  renameSync(`${p}.tmp`, p);
}

/** 'done' (reuse), 'resume' (same inputs, unfinished) or 'fresh' (wiped: new or changed inputs). */
function openStage(dir: string, hash: string): 'done' | 'resume' | 'fresh' {
  const m = readMarker(dir);
  if (m && m.hash === hash) return m.done ? 'done' : 'resume';
  rmSync(dir, { recursive: true, force: true });
  writeMarker(dir, { hash, done: false });
  return 'fresh';
}

export interface Paths {
  base: string;
  model: string;
  prompts: string;
  runs: (kind: 'experts' | 'morl', name: string) => string;
  sweep: string;
}

export function runPaths(x: Experiment): Paths {
  const base = join(x.runDir, 'base');
  return {
    base,
    model: x.base.model ? (isAbsolute(x.base.model) ? x.base.model : join(x.baseDir, x.base.model)) : join(base, 'model'),
    prompts: join(base, 'prompts.json'),
    runs: (kind, name) => join(x.runDir, kind, name),
    sweep: join(x.runDir, 'sweep'),
  };
}

export interface PlannedRun { kind: 'experts' | 'morl'; name: string; rewardIndex?: number; mu: number[]; steps: number }

export function plannedRuns(x: Experiment): PlannedRun[] {
  const N = x.rewardNames.length;
  const runs: PlannedRun[] = x.rewardNames.map((n, i) => ({ kind: 'experts', name: `expert-${n}`, rewardIndex: i, mu: Array.from({ length: N }, (_, k) => (k === i ? 1 : 0)), steps: x.experts.steps }));
  for (const mu of x.morl.mu) runs.push({ kind: 'morl', name: `morl-${mu.map((v) => +v.toFixed(3)).join('-')}`, mu, steps: x.morl.steps ?? x.experts.steps });
  return runs;
}

function fileStamp(p: string): unknown {
  try {
    const s = statSync(p);
    return { p, size: s.size, mtime: s.mtimeMs };
  } catch {
    return { p, missing: true };
  }
}

/** The hash of each stage and each PPO run (what decides reuse). */
export function stageHashes(x: Experiment) {
  const paths = runPaths(x);
  const base = hashOf({
    base: x.base, prompts: x.prompts, seed: x.seed,
    files: x.base.model ? [fileStamp(join(paths.model, 'config.json')), fileStamp(join(paths.model, 'tokenizer.json')), ...(x.base.adapter ? [fileStamp(x.base.adapter)] : [])] : [],
    promptFiles: [x.prompts.train, x.prompts.eval].filter(Boolean).map((p) => fileStamp(join(x.baseDir, p!))),
  });
  const runs = Object.fromEntries(plannedRuns(x).map((r) => {
    const rewards = r.rewardIndex !== undefined ? [x.rewards[r.rewardIndex]] : x.rewards;
    return [r.name, hashOf({ base, lora: x.lora, ppo: x.ppoConfig, rewards, mu: r.rewardIndex !== undefined ? [1] : r.mu, steps: r.steps })];
  }));
  const sweep = hashOf({ runs, sweep: { ...x.sweep, threads: undefined }, lambdas: x.lambdas, rewards: x.rewards, base });
  return { base, runs, sweep };
}

const fmtTime = (s: number) => (s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(1)}s`);
export { fmtTime };

/** The plan for --dry-run: stages, their cost, and what is cached already. */
export function planExperiment(x: Experiment) {
  const h = stageHashes(x);
  const paths = runPaths(x);
  const cached = (dir: string, hash: string) => readMarker(dir)?.hash === hash && readMarker(dir)?.done === true;
  const runs = plannedRuns(x);
  const g = x.ppoConfig.generation;
  const meanLen = g.fixed_length ? (g.output_min_length + g.output_max_length - 1) / 2 : g.max_new_tokens;
  const evals = 1 + runs.length + x.lambdas.length;
  const ppoSteps = runs.reduce((a, r) => a + r.steps, 0);
  return {
    name: x.name,
    runDir: x.runDir,
    rewards: x.rewardNames,
    files: x.files,
    stages: [
      { stage: 'base', what: x.base.pretrain ? `pre-train a ${x.base.pretrain.num_layers}-layer d=${x.base.pretrain.hidden_size} LLaMA (vocab ${x.base.pretrain.vocab_size}) for ${x.base.pretrain.steps} steps of ${x.base.pretrain.batch_size}×${x.base.pretrain.seq_len} tokens` : `load ${paths.model}${x.base.adapter ? ` + adapter ${x.base.adapter}` : ''}`, cost: x.base.pretrain ? { tokens: x.base.pretrain.steps * x.base.pretrain.batch_size * x.base.pretrain.seq_len } : {}, cached: cached(paths.base, h.base) },
      ...runs.map((r) => ({ stage: r.kind, what: `${r.name}: PPO on ${r.rewardIndex !== undefined ? x.rewardNames[r.rewardIndex] : `Σ μᵢRᵢ with μ = [${r.mu.join(', ')}]`} for ${r.steps} steps of ${x.ppoConfig.batch_size} samples`, cost: { ppo_steps: r.steps, samples: r.steps * x.ppoConfig.batch_size, generated_tokens: Math.round(r.steps * x.ppoConfig.batch_size * meanLen) }, cached: cached(paths.runs(r.kind, r.name), h.runs[r.name]) })),
      { stage: 'sweep', what: `${evals} evaluations (init, ${x.rewardNames.length} experts, ${x.morl.mu.length} MORL, ${x.lambdas.length} soups) on the evaluation prompts, ${x.sweep.max_new_tokens} tokens each`, cost: { evaluations: evals }, cached: cached(paths.sweep, h.sweep) },
      { stage: 'report', what: 'report.json, front/rewards-vs-λ plots (SVG, PNG), report.html', cost: {}, cached: false },
    ],
    total: { ppo_runs: runs.length, ppo_steps: ppoSteps, samples: ppoSteps * x.ppoConfig.batch_size, generated_tokens: Math.round(ppoSteps * x.ppoConfig.batch_size * meanLen), evaluations: evals, soups_cost_runs: x.rewardNames.length, morl_cost_runs: x.morl.mu.length },
  };
}

function parallelism(x: Experiment, jobs: number): number {
  if (x.workers !== 'auto') return x.workers;
  return Math.max(1, Math.min(jobs, 2 * Math.max(1, Math.floor(cpus().length / x.worker_threads))));
}

/** Runs every stage (reusing what is cached) and writes the report into the run dir. */
export async function runExperiment(x: Experiment, o: RunOptions = {}): Promise<{ report: Report; reportPath: string; htmlPath: string; timings: Record<string, number> }> {
  const emit = o.onEvent ?? (() => {});
  const t00 = performance.now();
  checkFiles(x);
  // Everything that can fail on the config fails here, before any training.
  await buildRewards(x.rewards, x.baseDir, x.path || 'experiment');
  if (x.base.pretrain) {
    const c = readFortunes(x.base.pretrain.corpus_dir, x.base.pretrain.hold_every);
    const needed = x.prompts.num_train + x.prompts.num_eval;
    if (c.heldOut.length < needed) throw new SoupError('ERR_SOUP_CONFIG', `${x.path || 'experiment'}: prompts: ${needed} prompts asked (num_train + num_eval) but the corpus holds out only ${c.heldOut.length} entries (lower hold_every or the counts)`);
  }
  mkdirSync(x.runDir, { recursive: true });
  writeFileSync(join(x.runDir, 'experiment.json'), `${JSON.stringify({ ...x, files: undefined }, null, 2)}\n`);
  const h = stageHashes(x);
  const paths = runPaths(x);
  const timings: Record<string, number> = {};

  // ---- base ---------------------------------------------------------------------------------------
  let t0 = performance.now();
  const baseState = openStage(paths.base, h.base);
  if (baseState === 'done') {
    emit({ event: 'stage', stage: 'base', status: 'cached', detail: paths.base });
  } else {
    emit({ event: 'stage', stage: 'base', status: 'start', detail: x.base.pretrain ? `pre-training ${x.base.pretrain.steps} steps` : `prompts from ${x.prompts.train}` });
    let info: unknown = {};
    if (x.base.pretrain) {
      const p = x.base.pretrain;
      const spec: PretrainSpec = { ...p, seed: x.seed, threads: p.threads ?? cpus().length };
      const corpus = readFortunes(p.corpus_dir, p.hold_every);
      const tp = performance.now();
      let next = Math.max(1, Math.round(p.steps / 10));
      let t1 = 0;
      const res = await pretrainTiny(spec, paths.model, {
        corpus, signal: o.signal,
        onProgress: (step, loss) => {
          // the first step also pays for the tokenizer: the ETA counts from its end
          if (step === 1) t1 = performance.now();
          if (step >= next || step === p.steps) {
            next = step + Math.max(1, Math.round(p.steps / 10));
            const now = performance.now();
            emit({ event: 'progress', stage: 'base', done: step, total: p.steps, elapsed: (now - tp) / 1000, eta: ((now - t1) / 1000 / Math.max(1, step - 1)) * (p.steps - step), detail: `loss ${loss.toFixed(3)}` });
          }
        },
      });
      info = res;
      const tok = loadTokenizer(join(paths.model, 'tokenizer.json'));
      const encs = await tok.encodeBatch(corpus.heldOut);
      const eligible = encs.map((e) => e.getIds()).filter((ids) => ids.length >= x.prompts.prompt_tokens + 4).map((ids) => [1, ...ids.slice(0, x.prompts.prompt_tokens)]);
      const evalP = eligible.slice(0, x.prompts.num_eval);
      const trainP = eligible.slice(x.prompts.num_eval, x.prompts.num_eval + x.prompts.num_train);
      if (trainP.length < x.prompts.num_train) throw new SoupError('ERR_SOUP_CONFIG', `prompts: only ${eligible.length} held-out entries have ${x.prompts.prompt_tokens + 4}+ tokens; ask for fewer prompts`);
      writeFileSync(paths.prompts, JSON.stringify({ train: trainP, eval: evalP }));
    } else {
      const tok = loadTokenizer(join(paths.model, 'tokenizer.json'));
      const read = (f: string, n: number) => readFileSync(join(x.baseDir, f), 'utf8').split('\n').filter((l) => l.trim()).slice(0, n).map((l) => (f.endsWith('.jsonl') ? String(JSON.parse(l).prompt) : l));
      const enc = async (ls: string[]) => (await tok.encodeBatch(ls)).map((e) => e.getIds());
      writeFileSync(paths.prompts, JSON.stringify({ train: await enc(read(x.prompts.train!, x.prompts.num_train)), eval: await enc(read(x.prompts.eval!, x.prompts.num_eval)) }));
    }
    const sec = (performance.now() - t0) / 1000;
    writeMarker(paths.base, { hash: h.base, done: true, seconds: sec, info });
    emit({ event: 'stage', stage: 'base', status: 'done', seconds: sec, detail: x.base.pretrain ? `final loss ${(info as { finalLoss: number }).finalLoss.toFixed(3)} (${(info as { bitsPerChar: number }).bitsPerChar.toFixed(2)} bits/char)` : '' });
  }
  timings.base = (performance.now() - t0) / 1000;

  // ---- experts + MORL: one pool of single-thread workers ------------------------------------------------
  t0 = performance.now();
  const runs = plannedRuns(x);
  const jobs: PPOJob[] = [];
  const costs: RunCost[] = [];
  const pending = new Map<string, PlannedRun>();
  for (const r of runs) {
    const dir = paths.runs(r.kind, r.name);
    const st = openStage(dir, h.runs[r.name]);
    if (st === 'done') {
      emit({ event: 'stage', stage: r.kind, status: 'cached', detail: r.name });
      continue;
    }
    pending.set(r.name, r);
    jobs.push({
      name: r.name, model: paths.model, adapter: x.base.adapter ? join(x.baseDir, x.base.adapter) : undefined, lora: x.lora, dtype: x.base.dtype,
      ppo: x.ppoConfig, rewards: r.rewardIndex !== undefined ? [x.rewards[r.rewardIndex]] : x.rewards, weights: r.rewardIndex !== undefined ? [1] : r.mu,
      baseDir: x.baseDir, promptsFile: paths.prompts, steps: r.steps, out: join(dir, 'adapter'), history: join(dir, 'history.jsonl'), threads: x.worker_threads,
    });
  }
  if (jobs.length) {
    const parallel = parallelism(x, jobs.length);
    const total = jobs.reduce((a, j) => a + j.steps, 0);
    const stepOf = new Map<string, number>();
    const started = new Map<string, number>();
    let lastEmit = 0;
    let firstDone: number | undefined;
    let firstSteps = 0;
    for (const k of ['experts', 'morl'] as const) {
      const names = jobs.filter((j) => pending.get(j.name)!.kind === k).map((j) => j.name);
      if (names.length) emit({ event: 'stage', stage: k, status: 'start', detail: `${names.join(', ')} (${parallel} single-thread workers side by side)` });
    }
    const tj = performance.now();
    const onMessage = (m: WorkerMessage) => {
      if (m.type === 'start') {
        stepOf.set(m.name, m.step);
        started.set(m.name, performance.now());
        if (m.step > 0) emit({ event: 'progress', stage: pending.get(m.name)!.kind, done: m.step, total: pending.get(m.name)!.steps, elapsed: 0, detail: `${m.name}: resumed at step ${m.step}` });
      } else if (m.type === 'step') {
        stepOf.set(m.name, m.step);
        emit({ event: 'run', name: m.name, step: m.step, steps: m.steps, rewards: m.rewards, kl: m.kl });
        const now = performance.now();
        // the rate counts from the first step done (worker start-up is not a step)
        if (firstDone === undefined) {
          firstDone = now;
          firstSteps = [...stepOf.values()].reduce((a, b) => a + b, 0);
        }
        if (now - lastEmit > 20_000) {
          lastEmit = now;
          const done = [...stepOf.values()].reduce((a, b) => a + b, 0);
          const fresh = done - firstSteps;
          const el = (now - firstDone) / 1000;
          const detail = [...stepOf.entries()].map(([n, s]) => `${n} ${s}`).join(', ');
          emit({ event: 'progress', stage: 'experts', done, total, elapsed: el, eta: fresh > 0 ? (el / fresh) * (total - done) : undefined, detail });
        }
      } else if (m.type === 'done') {
        const r = pending.get(m.name)!;
        const sec = (performance.now() - (started.get(m.name) ?? tj)) / 1000;
        const dir = paths.runs(r.kind, r.name);
        const prev = readMarker(dir);
        const seconds = sec + ((prev?.info as { seconds?: number } | undefined)?.seconds ?? 0);
        writeMarker(dir, { hash: h.runs[r.name], done: true, seconds, info: { steps: r.steps, seconds } });
        emit({ event: 'stage', stage: r.kind, status: 'done', seconds: sec, detail: r.name });
      }
    };
    await runJobs(jobs, { parallel, onMessage, signal: o.signal });
  }
  for (const r of runs) {
    // the cost of a run is the sum of its steps' times (history.jsonl), so a resumed run counts once
    const hp = join(paths.runs(r.kind, r.name), 'history.jsonl');
    const h = existsSync(hp) ? readFileSync(hp, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { seconds: number; cpu_seconds?: number }) : [];
    const seconds = h.reduce((a, l) => a + l.seconds, 0);
    const cpu = h.every((l) => l.cpu_seconds !== undefined) ? h.reduce((a, l) => a + l.cpu_seconds!, 0) : undefined;
    costs.push({ name: r.name, kind: r.kind === 'experts' ? 'expert' : 'morl', reward: r.rewardIndex !== undefined ? x.rewardNames[r.rewardIndex] : undefined, mu: r.mu, steps: r.steps, seconds, ...(cpu !== undefined ? { cpuSeconds: cpu } : {}) });
  }
  timings['experts+morl'] = (performance.now() - t0) / 1000;

  // ---- sweep ------------------------------------------------------------------------------------------
  t0 = performance.now();
  const rewards = await buildRewards(x.rewards, x.baseDir, x.path || 'experiment');
  const prompts = JSON.parse(readFileSync(paths.prompts, 'utf8')) as { train: number[][]; eval: number[][] };
  let entries: EvalEntry[];
  if (openStage(paths.sweep, h.sweep) === 'done') {
    emit({ event: 'stage', stage: 'sweep', status: 'cached' });
    entries = JSON.parse(readFileSync(join(paths.sweep, 'evals.json'), 'utf8')) as EvalEntry[];
  } else {
    emit({ event: 'stage', stage: 'sweep', status: 'start', detail: `${1 + runs.length + x.lambdas.length} models × ${prompts.eval.length} prompts` });
    const load = async (r: PlannedRun) => (await readPeftAdapter(join(paths.runs(r.kind, r.name), 'adapter'))).tensors;
    const ts = performance.now();
    entries = await runSweep({
      model: paths.model, adapter: x.base.adapter ? join(x.baseDir, x.base.adapter) : undefined, lora: x.lora, dtype: x.base.dtype,
      threads: x.sweep.threads ?? cpus().length, seed: x.seed, prompts: prompts.eval, rewards,
      gen: { maxNewTokens: x.sweep.max_new_tokens, doSample: x.sweep.do_sample, seed: x.sweep.seed },
      experts: await Promise.all(runs.filter((r) => r.kind === 'experts').map(async (r) => ({ name: r.name, tensors: await load(r) }))),
      morl: await Promise.all(runs.filter((r) => r.kind === 'morl').map(async (r) => ({ name: r.name, mu: r.mu, tensors: await load(r) }))),
      lambdas: x.lambdas, interpolation: x.sweep.interpolation, signal: o.signal,
      onProgress: (done, total, e) => {
        const el = (performance.now() - ts) / 1000;
        emit({ event: 'progress', stage: 'sweep', done, total, elapsed: el, eta: (el / done) * (total - done), detail: `${e.name}: ${e.rewards.map((v, k) => `${x.rewardNames[k]} ${v.toFixed(4)}`).join(', ')}` });
      },
    });
    writeFileSync(join(paths.sweep, 'evals.json'), JSON.stringify(entries, null, 1));
    const sec = (performance.now() - t0) / 1000;
    writeMarker(paths.sweep, { hash: h.sweep, done: true, seconds: sec });
    emit({ event: 'stage', stage: 'sweep', status: 'done', seconds: sec });
  }
  timings.sweep = (performance.now() - t0) / 1000;

  // ---- report -----------------------------------------------------------------------------------------
  t0 = performance.now();
  emit({ event: 'stage', stage: 'report', status: 'start' });
  const histories: Record<string, Array<{ step: number; rewards: Record<string, number>; kl: number }>> = {};
  for (const r of runs) {
    const p = join(paths.runs(r.kind, r.name), 'history.jsonl');
    if (existsSync(p)) histories[r.name] = readFileSync(p, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  }
  timings.report = 0;
  timings.total = (performance.now() - t00) / 1000;
  // what each stage cost when it was computed (cached stages show 0 in this run's timings)
  const computed: Record<string, number> = { base: readMarker(paths.base)?.seconds ?? 0 };
  for (const c of costs) {
    computed[c.name] = c.seconds;
    if (c.cpuSeconds !== undefined) computed[`${c.name} (CPU s)`] = c.cpuSeconds;
  }
  computed.sweep = readMarker(paths.sweep)?.seconds ?? 0;
  const { report } = await writeReport(x.runDir, {
    name: x.name, seed: x.seed, rewardNames: x.rewardNames, entries, runs: costs, histories,
    ref: x.report.ref, preferences: x.report.preferences, evalPrompts: prompts.eval.length, maxNewTokens: x.sweep.max_new_tokens,
  }, timings, computed);
  timings.report = (performance.now() - t0) / 1000;
  timings.total = (performance.now() - t00) / 1000;
  writeFileSync(join(x.runDir, 'timings.json'), `${JSON.stringify({ this_run: timings, computed }, null, 2)}\n`);
  emit({ event: 'stage', stage: 'report', status: 'done', seconds: timings.report });
  const reportPath = join(x.runDir, 'report.json');
  const htmlPath = join(x.runDir, 'report.html');
  emit({ event: 'finished', report: reportPath, html: htmlPath, seconds: timings.total, timings });
  return { report, reportPath, htmlPath, timings };
}
