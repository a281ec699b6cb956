// SPDX-License-Identifier: MIT
// `rsoup run`: base → experts → MORL → sweep → report. Each stage (and each PPO run) lives in its own
// folder of the run dir with a `.stage.json` marker holding the hash of everything it was computed
// from (config slice + the hashes of the stages it reads) and the files it vouches for. A finished
// stage with the same hash and all its files is reused; an unfinished PPO run with the same hash resumes
// from its checkpoint; a different hash (or a done marker whose files are missing) wipes the folder and
// recomputes, and so does every stage downstream (their hashes include it). Each piece of work is
// locked (./lock.ts) while a process works on it: one process per piece, the others exit naming it.
// Markers, hashes and stage events: ./stages.ts, shared with the other tasks.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { SoupError } from '../errors.js';
import { readPeftAdapter } from '../io/index.js';
import { atomicWriteFile } from '../io/atomic.js';
import { loadTokenizer } from '../train/index.js';
import { pretrainTiny, type PretrainResult, type PretrainSpec } from './base.js';
import { checkFiles, type Experiment } from './config.js';
import { readFortunes } from './corpus.js';
import { checkFaultEnv, faultPoint } from './fault.js';
import { runJobs } from './jobs.js';
import { liveHolders, LOCK_LEASE_S, lockLabel, lockPath, RunDirBusyError, tryLock, type LockInfo, type LockStage, type RunLock } from './lock.js';
import { writeReport, type Report, type RunCost } from './report.js';
import { buildRewards } from './rewards.js';
import { finishStage, hashOf, openFresh, progressEvent, readMarker, stageState, type ProgressEvent, type StageEvent, type StageState } from './stages.js';
import { runSweep, type EvalEntry } from './sweep.js';
import type { PPOJob, WorkerMessage } from './worker.js';

export type StageName = 'base' | 'experts' | 'morl' | 'sweep' | 'report';

export type RunEvent =
  | StageEvent<StageName>
  | (ProgressEvent<StageName> & { elapsed: number })
  | { event: 'run'; name: string; step: number; steps: number; rewards: Record<string, number>; kl: number }
  | { event: 'lock'; stage: LockStage; run?: string; pid: number; host: string }
  | { event: 'warning'; message: string }
  | { event: 'finished'; report: string; html: string; seconds: number; timings: Record<string, number> };

export interface RunOptions {
  signal?: AbortSignal;
  onEvent?: (e: RunEvent) => void;
}

/**
 * One piece of the pipeline, as a Slurm job or array task runs it (`rsoup run --stage … --index …`):
 * the base; the `index`-th PPO run of plannedRuns (experts, then MORL); or the sweep and report.
 */
export type StageSelection = { stage: 'base' } | { stage: 'runs'; index: number } | { stage: 'sweep' };

export interface RunResult {
  report: Report;
  reportPath: string;
  htmlPath: string;
  timings: Record<string, number>;
}

/** Threads of a stage whose config leaves them open: the job's allocation under Slurm, else every core. */
const hostThreads = () => Number(process.env.SLURM_CPUS_PER_TASK) || cpus().length;

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

/** Files each done stage has, whatever its marker lists (relative to the stage dir). */
const REQUIRED = {
  base: (x: Experiment) => (x.base.pretrain ? ['prompts.json', 'model/config.json', 'model/tokenizer.json'] : ['prompts.json']),
  run: ['history.jsonl', 'adapter/adapter_config.json', 'adapter/adapter_model.safetensors'],
  sweep: ['evals.json'],
};

export interface PlannedRun {
  kind: 'experts' | 'morl';
  name: string;
  rewardIndex?: number;
  mu: number[];
  steps: number;
}

export function plannedRuns(x: Experiment): PlannedRun[] {
  const N = x.rewardNames.length;
  const runs: PlannedRun[] = x.rewardNames.map((n, i) => ({
    kind: 'experts',
    name: `expert-${n}`,
    rewardIndex: i,
    mu: Array.from({ length: N }, (_, k) => (k === i ? 1 : 0)),
    steps: x.experts.steps,
  }));
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
    base: x.base,
    prompts: x.prompts,
    seed: x.seed,
    files: x.base.model
      ? [fileStamp(join(paths.model, 'config.json')), fileStamp(join(paths.model, 'tokenizer.json')), ...(x.base.adapter ? [fileStamp(x.base.adapter)] : [])]
      : [],
    promptFiles: [x.prompts.train, x.prompts.eval].filter(Boolean).map((p) => fileStamp(join(x.baseDir, p!))),
  });
  const runs = Object.fromEntries(
    plannedRuns(x).map((r) => {
      const rewards = r.rewardIndex !== undefined ? [x.rewards[r.rewardIndex]] : x.rewards;
      return [r.name, hashOf({ base, lora: x.lora, ppo: x.ppoConfig, rewards, mu: r.rewardIndex !== undefined ? [1] : r.mu, steps: r.steps })];
    }),
  );
  const sweep = hashOf({ runs, sweep: { ...x.sweep, threads: undefined }, lambdas: x.lambdas, rewards: x.rewards, base });
  return { base, runs, sweep };
}

/** The project's one duration formatter (src/util/duration.ts), under the name the CLI imports. */
export { formatDuration as fmtTime } from '../util/duration.js';

/** The plan for --dry-run: stages, their cost, and what is cached already. */
export function planExperiment(x: Experiment) {
  const h = stageHashes(x);
  const paths = runPaths(x);
  const cached = (dir: string, hash: string, required: string[]) => stageState(dir, hash, required).state === 'done';
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
      {
        stage: 'base',
        what: x.base.pretrain
          ? `pre-train a ${x.base.pretrain.num_layers}-layer d=${x.base.pretrain.hidden_size} LLaMA (vocab ${x.base.pretrain.vocab_size}) for ${x.base.pretrain.steps} steps of ${x.base.pretrain.batch_size}×${x.base.pretrain.seq_len} tokens`
          : `load ${paths.model}${x.base.adapter ? ` + adapter ${x.base.adapter}` : ''}`,
        cost: x.base.pretrain ? { tokens: x.base.pretrain.steps * x.base.pretrain.batch_size * x.base.pretrain.seq_len } : {},
        cached: cached(paths.base, h.base, REQUIRED.base(x)),
      },
      ...runs.map((r) => ({
        stage: r.kind,
        what: `${r.name}: PPO on ${r.rewardIndex !== undefined ? x.rewardNames[r.rewardIndex] : `Σ μᵢRᵢ with μ = [${r.mu.join(', ')}]`} for ${r.steps} steps of ${x.ppoConfig.batch_size} samples`,
        cost: { ppo_steps: r.steps, samples: r.steps * x.ppoConfig.batch_size, generated_tokens: Math.round(r.steps * x.ppoConfig.batch_size * meanLen) },
        cached: cached(paths.runs(r.kind, r.name), h.runs[r.name], REQUIRED.run),
      })),
      {
        stage: 'sweep',
        what: `${evals} evaluations (init, ${x.rewardNames.length} experts, ${x.morl.mu.length} MORL, ${x.lambdas.length} soups) on the evaluation prompts, ${x.sweep.max_new_tokens} tokens each`,
        cost: { evaluations: evals },
        cached: cached(paths.sweep, h.sweep, REQUIRED.sweep),
      },
      { stage: 'report', what: 'report.json, front/rewards-vs-λ plots (SVG, PNG), report.html', cost: {}, cached: false },
    ],
    total: {
      ppo_runs: runs.length,
      ppo_steps: ppoSteps,
      samples: ppoSteps * x.ppoConfig.batch_size,
      generated_tokens: Math.round(ppoSteps * x.ppoConfig.batch_size * meanLen),
      evaluations: evals,
      soups_cost_runs: x.rewardNames.length,
      morl_cost_runs: x.morl.mu.length,
    },
  };
}

function parallelism(x: Experiment, jobs: number): number {
  if (x.workers !== 'auto') return x.workers;
  // Up to 4 single-thread workers per core, in waves of equal size: a last wave of one run would leave
  // every other core idle (5 runs on 2 cores: 5 at once takes 400 CPU-s / 2, 4 + 1 takes 320/2 + 160).
  const cap = 4 * Math.max(1, Math.floor(cpus().length / x.worker_threads));
  const waves = Math.ceil(jobs / cap);
  return Math.max(1, Math.ceil(jobs / waves));
}

/** Creates the run dir; a file in its place is a clear error, not a raw EEXIST. */
function ensureRunDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') {
      throw new SoupError(
        'ERR_SOUP_INVALID_ARG',
        `run dir '${dir}' is not a directory: ${code === 'EEXIST' ? 'a file of that name exists' : 'part of its path is a file'} (--out, or the config's \`output\`, names a directory)`,
      );
    }
    throw new SoupError('ERR_SOUP_IO', `cannot create the run dir '${dir}': ${(e as Error).message}`, { cause: e });
  }
}

/** One piece of work, locked on its own: the base, one PPO run, or the tail (sweep + report). */
interface Piece {
  stage: LockStage;
  run?: string;
  dir: string;
  hash: string;
  required: string[];
}

/**
 * Runs every stage (reusing what is cached) and writes the report into the run dir. Each piece of work
 * is locked first; this process never waits for another: when every piece left is held by a live
 * process (or needs one that is), it throws RunDirBusyError naming the holders.
 */
/** What report.html shows of the run's settings (report.json stays free of dates: same seed, same file). */
function reportSettings(x: Experiment, base?: Partial<PretrainResult>): Record<string, string> {
  const p = x.base.pretrain;
  const ppo = x.ppoConfig;
  const fit =
    base?.heldOutBitsPerChar !== undefined && Number.isFinite(base.heldOutBitsPerChar)
      ? `; held-out ${base.heldOutBitsPerChar.toFixed(2)} bits/char (training ${base.bitsPerChar?.toFixed(2)})`
      : '';
  return {
    model: x.base.model
      ? `${x.base.model}${x.base.adapter ? ` + adapter ${x.base.adapter}` : ''} (${x.base.dtype})`
      : `LLaMA-architecture, ${p!.num_layers} layers, d = ${p!.hidden_size}, vocab ${p!.vocab_size}, pre-trained here for ${p!.steps} steps${fit}`,
    corpus: p ? `${p.corpus_dir} (1 entry in ${p.hold_every} held out for prompts)` : 'prompt files',
    prompts: `${x.prompts.num_train} training, ${x.prompts.num_eval} evaluation`,
    rewards: x.rewards.map((r, i) => `${x.rewardNames[i]} (${(r as { type: string }).type})`).join(', '),
    PPO: `lr ${ppo.learning_rate}, batch ${ppo.batch_size}, mini-batch ${ppo.mini_batch_size}, ${ppo.ppo_epochs} epochs, KL ${ppo.adap_kl_ctrl ? `adaptive (init ${ppo.init_kl_coef}, target ${ppo.target}, horizon ${ppo.horizon})` : `fixed ${ppo.init_kl_coef}`}, ${x.experts.steps} steps per expert`,
    LoRA: `r ${x.lora.r}, alpha ${x.lora.lora_alpha}, dropout ${x.lora.lora_dropout}, ${x.lora.target_modules.join(', ')}`,
    MORL: x.morl.mu.map((m) => `μ = [${m.join(', ')}]`).join('; ') || 'none',
    seed: String(x.seed),
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
  };
}

export async function runExperiment(x: Experiment, o: RunOptions = {}): Promise<RunResult> {
  return (await runPieces(x, o))!;
}

/**
 * Runs one piece (StageSelection) under its lock, as runExperiment runs it: a finished piece is left as
 * it is, an unfinished PPO run resumes. The report comes back only from the sweep stage.
 */
export async function runStage(x: Experiment, only: StageSelection, o: RunOptions = {}): Promise<RunResult | undefined> {
  const n = plannedRuns(x).length;
  if (only.stage === 'runs' && !(Number.isInteger(only.index) && only.index >= 0 && only.index < n)) {
    throw new SoupError(
      'ERR_SOUP_INVALID_ARG',
      `--index ${only.index}: the experiment has ${n} PPO runs (indices 0-${n - 1}: ${plannedRuns(x)
        .map((r, i) => `${i} ${r.name}`)
        .join(', ')})`,
    );
  }
  return runPieces(x, o, only);
}

async function runPieces(x: Experiment, o: RunOptions = {}, only?: StageSelection): Promise<RunResult | undefined> {
  const emit = o.onEvent ?? (() => {});
  const t00 = performance.now();
  checkFaultEnv();
  checkFiles(x);
  // Everything that can fail on the config fails here, before any training.
  await buildRewards(x.rewards, x.baseDir, x.path || 'experiment');
  if (x.base.pretrain) {
    const c = readFortunes(x.base.pretrain.corpus_dir, x.base.pretrain.hold_every);
    const needed = x.prompts.num_train + x.prompts.num_eval;
    if (c.heldOut.length < needed)
      throw new SoupError(
        'ERR_SOUP_CONFIG',
        `${x.path || 'experiment'}: prompts: ${needed} prompts asked (num_train + num_eval) but the corpus holds out only ${c.heldOut.length} entries (lower hold_every or the counts)`,
      );
  }
  ensureRunDir(x.runDir);
  const h = stageHashes(x);
  const paths = runPaths(x);
  const timings: Record<string, number> = {};
  const runs = plannedRuns(x);
  const basePiece: Piece = { stage: 'base', dir: paths.base, hash: h.base, required: REQUIRED.base(x) };
  const runPiece = new Map<string, Piece>(
    runs.map((r) => [r.name, { stage: r.kind, run: r.name, dir: paths.runs(r.kind, r.name), hash: h.runs[r.name], required: REQUIRED.run }]),
  );
  const pieceOf = (r: PlannedRun) => runPiece.get(r.name)!;
  const tailPiece: Piece = { stage: 'sweep', dir: paths.sweep, hash: h.sweep, required: REQUIRED.sweep };
  const state = (p: Piece) => stageState(p.dir, p.hash, p.required);

  // A lost lock (another host judged this process dead) stops the work as Ctrl-C does.
  const ac = new AbortController();
  const onOuter = () => ac.abort(o.signal?.reason);
  if (o.signal?.aborted) ac.abort(o.signal.reason);
  else o.signal?.addEventListener('abort', onOuter, { once: true });
  let lost: SoupError | undefined;
  const locks = new Map<Piece, RunLock>();
  const busy = new Map<Piece, LockInfo>();
  const lockOpts = { onWarning: (message: string) => emit({ event: 'warning', message }) };

  /** Locks a piece; false when a live process holds it (then in `busy`) or it got done meanwhile. */
  const claim = (p: Piece, o2: { evenIfDone?: boolean } = {}): boolean => {
    const r = tryLock(x.runDir, { stage: p.stage, run: p.run }, lockOpts);
    if ('holder' in r) {
      busy.set(p, r.holder);
      return false;
    }
    busy.delete(p);
    // its last holder may have finished it between our look and our lock
    if (!o2.evenIfDone && state(p).state === 'done') {
      r.lock.release();
      return false;
    }
    r.lock.onLost = (by) => {
      lost = new SoupError(
        'ERR_SOUP_BUSY',
        `lost the lock of ${lockLabel(p)} in ${x.runDir}${by ? ` to pid ${by.pid} on host ${by.host}` : ''}: this process was taken for dead (no heartbeat for ${LOCK_LEASE_S} s); stopped`,
      );
      ac.abort(lost);
    };
    locks.set(p, r.lock);
    emit({ event: 'lock', stage: p.stage, run: p.run, pid: r.lock.info.pid, host: r.lock.info.host });
    return true;
  };
  const release = (p: Piece) => {
    locks.get(p)?.release();
    locks.delete(p);
  };
  const busyError = (ps: Piece[], why: string) =>
    new RunDirBusyError(
      x.runDir,
      ps.filter((p) => busy.has(p)).map((p) => busy.get(p)!),
      why,
    );
  /** Wipes a piece to recompute (a done marker with missing files says so); returns its state. */
  const open = async (p: Piece): Promise<StageState['state']> => {
    const s = state(p);
    if (s.state === 'fresh') {
      if (s.missing)
        emit({
          event: 'warning',
          message: `${join(relative(x.runDir, p.dir), '.stage.json')} says done but ${s.missing.join(', ')} ${s.missing.length > 1 ? 'are' : 'is'} missing: recomputing ${lockLabel(p)}`,
        });
      await openFresh(p.dir, p.hash);
    }
    return s.state;
  };

  try {
    // ---- claim every piece this process can do now, in pipeline order ----------------------------------
    // a dead process's lock on a piece it finished (killed after its marker) is cleared, with the warning
    for (const p of [basePiece, ...runPiece.values(), tailPiece]) {
      if (state(p).state !== 'done' || !existsSync(lockPath(x.runDir, p))) continue;
      const r = tryLock(x.runDir, { stage: p.stage, run: p.run }, lockOpts);
      if ('lock' in r) r.lock.release();
    }
    // one stage only (a Slurm job or array task): what it needs must be done, and a done piece is left
    const mineOnly = only?.stage === 'runs' ? [runs[only.index]] : only ? [] : runs;
    if (only && only.stage !== 'base' && state(basePiece).state !== 'done')
      throw new SoupError('ERR_SOUP_CONFIG', `--stage ${only.stage}: the base stage of ${x.runDir} is not done (run --stage base first)`);
    if (only?.stage === 'sweep') {
      const missing = runs.filter((r) => state(pieceOf(r)).state !== 'done');
      if (missing.length)
        throw new SoupError(
          'ERR_SOUP_CONFIG',
          `--stage sweep: the sweep needs every PPO run, and ${missing.map((r) => r.name).join(', ')} ${missing.length > 1 ? 'are' : 'is'} not done in ${x.runDir}`,
        );
    }
    const onlyPiece = only?.stage === 'base' ? basePiece : only?.stage === 'runs' ? pieceOf(runs[only.index]) : undefined;
    if (onlyPiece && state(onlyPiece).state === 'done') {
      emit({
        event: 'stage',
        stage: onlyPiece === basePiece ? 'base' : runs[(only as { index: number }).index].kind,
        status: 'cached',
        detail: onlyPiece === basePiece ? paths.base : onlyPiece.run,
      });
      return undefined;
    }
    if ((!only || only.stage === 'base') && state(basePiece).state !== 'done' && !claim(basePiece) && busy.has(basePiece))
      throw busyError([basePiece], 'the base is being built, and every other piece needs it');
    for (const r of mineOnly) if (state(pieceOf(r)).state !== 'done') claim(pieceOf(r));
    // the tail needs every run: it is claimed now only when no other process trains one
    if ((!only || only.stage === 'sweep') && !runs.some((r) => busy.has(pieceOf(r)))) claim(tailPiece, { evenIfDone: true });
    if (!locks.size)
      throw busyError(
        [...busy.keys()],
        busy.has(tailPiece) ? 'the sweep and report are being written' : 'every run left is being trained, and the sweep needs them all',
      );
    // a config that recomputes a piece wipes its folder: never while another process may be reading it
    const wiping = [...locks.keys()].filter((p) => {
      const s = state(p);
      return s.state === 'fresh' && s.wipe;
    });
    if (wiping.length) {
      // an array task wipes only its own run, which no other task reads: only the base and tail matter
      const others = liveHolders(x.runDir, new Set([...locks.values()].map((l) => l.path))).filter(
        (l) => only?.stage !== 'runs' || l.stage === 'base' || l.stage === 'sweep',
      );
      if (others.length)
        throw new RunDirBusyError(
          x.runDir,
          others,
          `this config recomputes ${wiping.map(lockLabel).join(', ')}, which the processes holding other pieces (another config on this run dir?) may be reading`,
        );
    }
    await atomicWriteFile(join(x.runDir, 'experiment.json'), [Buffer.from(`${JSON.stringify({ ...x, files: undefined }, null, 2)}\n`)]);

    // ---- base ---------------------------------------------------------------------------------------
    let t0 = performance.now();
    if (!locks.has(basePiece)) {
      emit({ event: 'stage', stage: 'base', status: 'cached', detail: paths.base });
    } else {
      // the base always restarts from scratch (pre-training a small model; nothing to resume)
      if ((await open(basePiece)) === 'resume') await openFresh(paths.base, h.base);
      emit({
        event: 'stage',
        stage: 'base',
        status: 'start',
        detail: x.base.pretrain ? `pre-training ${x.base.pretrain.steps} steps` : `prompts from ${x.prompts.train}`,
      });
      let info: unknown = {};
      if (x.base.pretrain) {
        const p = x.base.pretrain;
        const spec: PretrainSpec = { ...p, seed: x.seed, threads: p.threads ?? hostThreads() };
        const corpus = readFortunes(p.corpus_dir, p.hold_every);
        const tp = performance.now();
        let next = Math.max(1, Math.round(p.steps / 10));
        let t1 = 0;
        const res = await pretrainTiny(spec, paths.model, {
          corpus,
          signal: ac.signal,
          onProgress: (step, loss) => {
            // the first step also pays for the tokenizer: the ETA counts from its end
            if (step === 1) t1 = performance.now();
            if (step >= next || step === p.steps) {
              next = step + Math.max(1, Math.round(p.steps / 10));
              const now = performance.now();
              emit({
                event: 'progress',
                stage: 'base',
                done: step,
                total: p.steps,
                elapsed: (now - tp) / 1000,
                eta: ((now - t1) / 1000 / Math.max(1, step - 1)) * (p.steps - step),
                detail: `loss ${loss.toFixed(3)}`,
              });
            }
          },
        });
        info = res;
        const tok = loadTokenizer(join(paths.model, 'tokenizer.json'));
        const encs = await tok.encodeBatch(corpus.heldOut);
        const eligible = encs
          .map((e) => e.getIds())
          .filter((ids) => ids.length >= x.prompts.prompt_tokens + 4)
          .map((ids) => [1, ...ids.slice(0, x.prompts.prompt_tokens)]);
        const evalP = eligible.slice(0, x.prompts.num_eval);
        const trainP = eligible.slice(x.prompts.num_eval, x.prompts.num_eval + x.prompts.num_train);
        if (trainP.length < x.prompts.num_train)
          throw new SoupError(
            'ERR_SOUP_CONFIG',
            `prompts: only ${eligible.length} held-out entries have ${x.prompts.prompt_tokens + 4}+ tokens; ask for fewer prompts`,
          );
        writeFileSync(paths.prompts, JSON.stringify({ train: trainP, eval: evalP }));
      } else {
        const tok = loadTokenizer(join(paths.model, 'tokenizer.json'));
        const read = (f: string, n: number) =>
          readFileSync(join(x.baseDir, f), 'utf8')
            .split('\n')
            .filter((l) => l.trim())
            .slice(0, n)
            .map((l) => (f.endsWith('.jsonl') ? String(JSON.parse(l).prompt) : l));
        const enc = async (ls: string[]) => (await tok.encodeBatch(ls)).map((e) => e.getIds());
        writeFileSync(
          paths.prompts,
          JSON.stringify({ train: await enc(read(x.prompts.train!, x.prompts.num_train)), eval: await enc(read(x.prompts.eval!, x.prompts.num_eval)) }),
        );
      }
      faultPoint('base', 'after-prompts');
      const sec = (performance.now() - t0) / 1000;
      // the marker last: it vouches for the model dir and prompts.json, synced before it
      await finishStage(paths.base, { hash: h.base, seconds: sec, info });
      faultPoint('base', 'after-marker');
      release(basePiece);
      emit({
        event: 'stage',
        stage: 'base',
        status: 'done',
        seconds: sec,
        detail: x.base.pretrain
          ? `final loss ${(info as PretrainResult).finalLoss.toFixed(3)} (${(info as PretrainResult).bitsPerChar.toFixed(2)} bits/char; held-out ${(info as PretrainResult).heldOutBitsPerChar.toFixed(2)} bits/char)`
          : '',
      });
    }
    timings.base = (performance.now() - t0) / 1000;
    if (only?.stage === 'base') return undefined;

    // ---- experts + MORL: one pool of single-thread workers ------------------------------------------------
    t0 = performance.now();
    for (const r of only?.stage === 'runs' ? [] : runs)
      if (!locks.has(pieceOf(r)) && !busy.has(pieceOf(r))) emit({ event: 'stage', stage: r.kind, status: 'cached', detail: r.name });
    let mine = runs.filter((r) => locks.has(pieceOf(r)));
    const ran = new Set<string>();
    for (;;) {
      if (mine.length)
        await runPool(x, paths, h, mine, {
          signal: ac.signal,
          emit,
          locks: (r) => locks.get(pieceOf(r)),
          open: (r) => open(pieceOf(r)),
          release: (r) => release(pieceOf(r)),
        });
      for (const r of mine) ran.add(r.name);
      if (only?.stage === 'runs') {
        if (state(pieceOf(runs[only.index])).state !== 'done')
          throw new SoupError('ERR_SOUP_INTERNAL', `${runs[only.index].name}: finished, but not marked done`);
        return undefined;
      }
      const left = runs.filter((r) => state(pieceOf(r)).state !== 'done');
      if (!left.length) break;
      const redo = left.filter((r) => ran.has(r.name));
      if (redo.length) throw new SoupError('ERR_SOUP_INTERNAL', `${redo.map((r) => r.name).join(', ')}: finished, but not marked done`);
      // runs other processes held: take over any whose holder died since; the sweep needs them all
      mine = left.filter((r) => claim(pieceOf(r)));
      const others = left.filter((r) => busy.has(pieceOf(r)));
      if (!mine.length && others.length) {
        const did = [...ran];
        throw busyError(
          others.map(pieceOf),
          `${did.length ? `this process trained ${did.join(', ')}; ` : ''}the sweep needs ${others.map((r) => r.name).join(', ')}, which other processes are training (the last of them writes the sweep and report)`,
        );
      }
    }
    const costs: RunCost[] = [];
    for (const r of runs) {
      // the cost of a run is the sum of its steps' times (history.jsonl), so a resumed run counts once
      const hp = join(paths.runs(r.kind, r.name), 'history.jsonl');
      const h = existsSync(hp)
        ? readFileSync(hp, 'utf8')
            .split('\n')
            .filter((l) => l.trim())
            .map((l) => JSON.parse(l) as { seconds: number; cpu_seconds?: number })
        : [];
      const seconds = h.reduce((a, l) => a + l.seconds, 0);
      const cpu = h.every((l) => l.cpu_seconds !== undefined) ? h.reduce((a, l) => a + l.cpu_seconds!, 0) : undefined;
      costs.push({
        name: r.name,
        kind: r.kind === 'experts' ? 'expert' : 'morl',
        reward: r.rewardIndex !== undefined ? x.rewardNames[r.rewardIndex] : undefined,
        mu: r.mu,
        steps: r.steps,
        seconds,
        ...(cpu !== undefined ? { cpuSeconds: cpu } : {}),
      });
    }
    timings['experts+morl'] = (performance.now() - t0) / 1000;

    // ---- sweep (the tail's lock covers the report too) ---------------------------------------------------
    if (!locks.has(tailPiece) && !claim(tailPiece, { evenIfDone: true })) throw busyError([tailPiece], 'the sweep and report are being written');
    t0 = performance.now();
    const rewards = await buildRewards(x.rewards, x.baseDir, x.path || 'experiment');
    const prompts = JSON.parse(readFileSync(paths.prompts, 'utf8')) as { train: number[][]; eval: number[][] };
    let entries: EvalEntry[];
    if ((await open(tailPiece)) === 'done') {
      emit({ event: 'stage', stage: 'sweep', status: 'cached' });
      entries = JSON.parse(readFileSync(join(paths.sweep, 'evals.json'), 'utf8')) as EvalEntry[];
    } else {
      emit({ event: 'stage', stage: 'sweep', status: 'start', detail: `${1 + runs.length + x.lambdas.length} models × ${prompts.eval.length} prompts` });
      const load = async (r: PlannedRun) => (await readPeftAdapter(join(paths.runs(r.kind, r.name), 'adapter'))).tensors;
      const ts = performance.now();
      entries = await runSweep({
        model: paths.model,
        adapter: x.base.adapter ? join(x.baseDir, x.base.adapter) : undefined,
        lora: x.lora,
        dtype: x.base.dtype,
        threads: x.sweep.threads ?? hostThreads(),
        seed: x.seed,
        prompts: prompts.eval,
        rewards,
        gen: { maxNewTokens: x.sweep.max_new_tokens, doSample: x.sweep.do_sample, seed: x.sweep.seed, stopAtEos: x.sweep.stop_at_eos },
        experts: await Promise.all(runs.filter((r) => r.kind === 'experts').map(async (r) => ({ name: r.name, tensors: await load(r) }))),
        morl: await Promise.all(runs.filter((r) => r.kind === 'morl').map(async (r) => ({ name: r.name, mu: r.mu, tensors: await load(r) }))),
        lambdas: x.lambdas,
        interpolation: x.sweep.interpolation,
        ensemble: x.sweep.ensemble,
        signal: ac.signal,
        onProgress: (done, total, e) =>
          emit(progressEvent('sweep', done, total, ts, `${e.name}: ${e.rewards.map((v, k) => `${x.rewardNames[k]} ${v.toFixed(4)}`).join(', ')}`)),
      });
      writeFileSync(join(paths.sweep, 'evals.json'), JSON.stringify(entries, null, 1));
      const sec = (performance.now() - t0) / 1000;
      await finishStage(paths.sweep, { hash: h.sweep, seconds: sec });
      emit({ event: 'stage', stage: 'sweep', status: 'done', seconds: sec });
    }
    timings.sweep = (performance.now() - t0) / 1000;

    // ---- report -----------------------------------------------------------------------------------------
    t0 = performance.now();
    emit({ event: 'stage', stage: 'report', status: 'start' });
    const histories: Record<string, Array<{ step: number; rewards: Record<string, number>; kl: number }>> = {};
    for (const r of runs) {
      const p = join(paths.runs(r.kind, r.name), 'history.jsonl');
      if (existsSync(p))
        histories[r.name] = readFileSync(p, 'utf8')
          .split('\n')
          .filter((l) => l.trim())
          .map((l) => JSON.parse(l));
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
    const { report } = await writeReport(
      x.runDir,
      {
        name: x.name,
        seed: x.seed,
        rewardNames: x.rewardNames,
        entries,
        runs: costs,
        histories,
        ref: x.report.ref,
        preferences: x.report.preferences,
        evalPrompts: prompts.eval.length,
        maxNewTokens: x.sweep.max_new_tokens,
        evalNote: `${x.sweep.do_sample ? 'sampled (temperature 1, top-p 1)' : 'greedy'}, up to ${x.sweep.max_new_tokens} new tokens${x.sweep.stop_at_eos ? ', stopping at EOS' : ' (fixed length)'}, one seed shared by every model`,
        settings: reportSettings(x, readMarker(paths.base)?.info as Partial<PretrainResult> | undefined),
      },
      timings,
      computed,
    );
    timings.report = (performance.now() - t0) / 1000;
    timings.total = (performance.now() - t00) / 1000;
    writeFileSync(join(x.runDir, 'timings.json'), `${JSON.stringify({ this_run: timings, computed }, null, 2)}\n`);
    emit({ event: 'stage', stage: 'report', status: 'done', seconds: timings.report });
    const reportPath = join(x.runDir, 'report.json');
    const htmlPath = join(x.runDir, 'report.html');
    emit({ event: 'finished', report: reportPath, html: htmlPath, seconds: timings.total, timings });
    return { report, reportPath, htmlPath, timings };
  } catch (e) {
    // an abort caused by a lost lock says so, not "aborted"
    throw lost ?? e;
  } finally {
    for (const p of [...locks.keys()]) release(p);
    o.signal?.removeEventListener('abort', onOuter);
  }
}

/** Trains the given runs (locked by this process) in one pool of workers; marks each done as it ends. */
async function runPool(
  x: Experiment,
  paths: Paths,
  h: ReturnType<typeof stageHashes>,
  runs: PlannedRun[],
  o: {
    signal: AbortSignal;
    emit: (e: RunEvent) => void;
    locks: (r: PlannedRun) => RunLock | undefined;
    open: (r: PlannedRun) => Promise<unknown>;
    release: (r: PlannedRun) => void;
  },
): Promise<void> {
  const emit = o.emit;
  const jobs: PPOJob[] = [];
  const pending = new Map<string, PlannedRun>();
  for (const r of runs) {
    const dir = paths.runs(r.kind, r.name);
    await o.open(r);
    pending.set(r.name, r);
    jobs.push({
      name: r.name,
      model: paths.model,
      adapter: x.base.adapter ? join(x.baseDir, x.base.adapter) : undefined,
      lora: x.lora,
      dtype: x.base.dtype,
      ppo: x.ppoConfig,
      rewards: r.rewardIndex !== undefined ? [x.rewards[r.rewardIndex]] : x.rewards,
      weights: r.rewardIndex !== undefined ? [1] : r.mu,
      baseDir: x.baseDir,
      promptsFile: paths.prompts,
      steps: r.steps,
      out: join(dir, 'adapter'),
      history: join(dir, 'history.jsonl'),
      threads: x.worker_threads,
    });
  }
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
  // markers are written as runs end; all are awaited even when another run fails
  const finishing: Promise<void>[] = [];
  const finish = async (r: PlannedRun, sec: number) => {
    const dir = paths.runs(r.kind, r.name);
    const prev = readMarker(dir);
    const seconds = sec + ((prev?.info as { seconds?: number } | undefined)?.seconds ?? 0);
    await finishStage(dir, { hash: h.runs[r.name], seconds, info: { steps: r.steps, seconds } });
    o.release(r);
    emit({ event: 'stage', stage: r.kind, status: 'done', seconds: sec, detail: r.name });
  };
  const onMessage = (m: WorkerMessage) => {
    if (m.type === 'start') {
      stepOf.set(m.name, m.step);
      started.set(m.name, performance.now());
      if (m.step > 0)
        emit({
          event: 'progress',
          stage: pending.get(m.name)!.kind,
          done: m.step,
          total: pending.get(m.name)!.steps,
          elapsed: 0,
          detail: `${m.name}: resumed at step ${m.step}`,
        });
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
      finishing.push(finish(pending.get(m.name)!, (performance.now() - (started.get(m.name) ?? tj)) / 1000));
    }
  };
  // a worker writes into the run dir: its pid in the lock keeps the lock alive while it lives
  const onSpawn = (name: string, pid: number) => o.locks(pending.get(name)!)?.addChild(pid);
  try {
    await runJobs(jobs, { parallel, onMessage, onSpawn, signal: o.signal });
  } finally {
    const settled = await Promise.allSettled(finishing);
    const bad = settled.find((s) => s.status === 'rejected');
    if (bad) throw (bad as PromiseRejectedResult).reason;
  }
}
