// SPDX-License-Identifier: MIT
// VecEnv: a vector of MuJoCo envs behind flat buffers. `step(actions)` takes one Float32Array for all
// envs and fills obs / reward vectors / flags for all envs in place: one call per step, whatever the
// number of envs. With `threads: T > 1`, the envs are split into T contiguous slices: the main thread
// steps the first, T − 1 worker threads (each with its own WASM module) the others, over one
// SharedArrayBuffer; `step` stays synchronous (Atomics.wait), so a training loop needs no await.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { receiveMessageOnPort, MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { SoupError, type SoupErrorCode } from '../errors.js';
import { loadMujoco } from './mujoco.js';
import { CMD_CLOSE, CMD_RESET, CMD_STEP, CONTROL_SLOTS, C_CMD, C_DONE, C_ERR, C_GEN } from './protocol.js';
import { bufferLayout, EnvShard, loadEnvModel, makeBuffers, type EnvDims, type Frame, type VecBuffers } from './shard.js';
import { resolveEnvConfig, type EnvConfig, type EnvName, type EnvOptions } from './specs.js';

export interface VecEnvOptions extends EnvOptions {
  /** Number of envs stepped together (default 1). */
  numEnvs?: number;
  /** Threads stepping them (main thread + threads − 1 workers); default 1, at most numEnvs. */
  threads?: number;
  /** Seed of the first reset (each env i draws from its own stream of (seed, i)); default 0. */
  seed?: number;
}

/** What a policy needs to know about an env. */
export interface EnvInfo {
  name: EnvName;
  modelPath: string;
  obsDim: number;
  actDim: number;
  rewardDim: number;
  /** Names of the reward vector's entries (MO-Gymnasium's order). */
  rewardNames: string[];
  /** Seconds of simulated time per env step (timestep · frameSkip). */
  dt: number;
  maxEpisodeSteps: number;
  actionLow: number[];
  actionHigh: number[];
}

/** The buffers one `step` fills (views, reused by the next step: copy what you keep). */
export type VecStep = Readonly<VecBuffers>;

const WAIT_SLICE_MS = 10_000;

interface WorkerSlot {
  worker: Worker;
  port: MessagePort;
}

export class VecEnv {
  readonly info: EnvInfo;
  readonly numEnvs: number;
  readonly threads: number;
  /** The shared buffers (see VecBuffers); `actions` is where `step` copies its argument. */
  readonly buffers: VecBuffers;
  private readonly ctrl: Int32Array;
  private readonly seedBuf: Float64Array;
  private closed = false;

  private constructor(
    private readonly cfg: EnvConfig,
    private readonly shard: EnvShard,
    private readonly workers: WorkerSlot[],
    buffers: VecBuffers,
    ctrl: Int32Array,
    seedBuf: Float64Array,
    numEnvs: number,
  ) {
    this.buffers = buffers;
    this.ctrl = ctrl;
    this.seedBuf = seedBuf;
    this.numEnvs = numEnvs;
    this.threads = workers.length + 1;
    const b = shard.actionBounds();
    this.info = {
      name: cfg.name,
      modelPath: cfg.modelLabel,
      obsDim: shard.obsDim,
      actDim: shard.actDim,
      rewardDim: shard.rewardDim,
      rewardNames: [...cfg.rewardNames],
      dt: shard.dt,
      maxEpisodeSteps: cfg.maxEpisodeSteps,
      actionLow: Array.from(b.low),
      actionHigh: Array.from(b.high),
    };
  }

  /** Loads the model (the project's MJCF or `modelPath`), starts worker threads and resets with `seed`. */
  static async create(opts: VecEnvOptions): Promise<VecEnv> {
    const cfg = resolveEnvConfig(opts);
    const numEnvs = opts.numEnvs ?? 1;
    if (!Number.isInteger(numEnvs) || numEnvs < 1) {
      throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected a positive integer for numEnvs but received ${String(numEnvs)}`);
    }
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1 || threads > numEnvs) {
      throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected an integer in [1, numEnvs=${numEnvs}] for threads but received ${String(threads)}`);
    }
    const seed = opts.seed ?? 0;
    if (!Number.isSafeInteger(seed)) throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected a safe integer for seed but received ${String(seed)}`);

    const mj = await loadMujoco();
    const model = loadEnvModel(mj, cfg);
    const dims: EnvDims = { numEnvs, obsDim: model.nq - 1 + model.nv, actDim: model.nu, rewardDim: cfg.rewardNames.length };
    const { bytes } = bufferLayout(dims);
    const shared = threads > 1;
    const data = shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
    const buffers = makeBuffers(data, dims);
    const ctrlSab = shared ? new SharedArrayBuffer(CONTROL_SLOTS * 4) : new ArrayBuffer(CONTROL_SLOTS * 4);
    const seedSab = shared ? new SharedArrayBuffer(8) : new ArrayBuffer(8);
    const bound = (t: number) => Math.floor((t * numEnvs) / threads);
    let shard: EnvShard;
    try {
      shard = new EnvShard(mj, model, cfg, buffers, 0, bound(1));
    } catch (err) {
      model.delete();
      throw err;
    }
    const workers: WorkerSlot[] = [];
    try {
      for (let t = 1; t < threads; t++) {
        workers.push(
          await startWorker(cfg, data as SharedArrayBuffer, dims, ctrlSab as SharedArrayBuffer, seedSab as SharedArrayBuffer, bound(t), bound(t + 1)),
        );
      }
    } catch (err) {
      for (const w of workers) void w.worker.terminate();
      shard.dispose();
      model.delete();
      throw err;
    }
    const env = new VecEnv(cfg, shard, workers, buffers, new Int32Array(ctrlSab), new Float64Array(seedSab), numEnvs);
    env.reset(seed);
    return env;
  }

  get obs(): Float32Array {
    return this.buffers.obs;
  }

  /** Resets every env; with `seed`, each env i restarts its random stream from (seed, i). */
  reset(seed?: number): Float32Array {
    this.ensureOpen();
    if (seed !== undefined && !Number.isSafeInteger(seed)) {
      throw new SoupError('ERR_SOUP_INVALID_ARG', `Expected a safe integer for seed but received ${String(seed)}`);
    }
    this.seedBuf[0] = seed ?? NaN;
    this.run(CMD_RESET, () => this.shard.reset(seed));
    return this.buffers.obs;
  }

  /**
   * One step of every env. `actions` holds numEnvs·actDim values (env-major). An env whose episode
   * ends (terminated or truncated) is reset at once: `obs` then holds the new episode's first
   * observation and `finalObs` the last one of the ended episode (for bootstrapping truncations).
   */
  step(actions: Float32Array): VecStep {
    this.ensureOpen();
    const a = this.buffers.actions;
    if (!(actions instanceof Float32Array) || actions.length !== a.length) {
      throw new SoupError(
        'ERR_SOUP_SHAPE_MISMATCH',
        `actions must be a Float32Array of numEnvs·actDim = ${this.numEnvs}·${this.info.actDim} = ${a.length} values; received ${actions instanceof Float32Array ? `${actions.length} values` : describe(actions)}`,
      );
    }
    for (let j = 0; j < actions.length; j++) {
      if (!Number.isFinite(actions[j])) {
        const A = this.info.actDim;
        throw new SoupError('ERR_SOUP_INVALID_ARG', `actions[${j}] (env ${Math.floor(j / A)}, dim ${j % A}) is ${actions[j]}`);
      }
    }
    if (actions !== a) a.set(actions);
    this.run(CMD_STEP, () => this.shard.step());
    return this.buffers;
  }

  /** The x–z geometry of env `i` (it must be stepped by the main thread: i < numEnvs / threads). */
  frame(i: number): Frame {
    this.ensureOpen();
    return this.shard.frame(i);
  }

  /** qpos/qvel of env `i` (main-thread envs only). */
  state(i: number): { qpos: Float64Array; qvel: Float64Array } {
    this.ensureOpen();
    return this.shard.state(i);
  }

  /** Puts env `i` into a given state (main-thread envs only), as Gymnasium's set_state. */
  setState(i: number, qpos: ArrayLike<number>, qvel: ArrayLike<number>): void {
    this.ensureOpen();
    this.shard.setState(i, qpos, qvel);
  }

  /** Stops worker threads and frees the MuJoCo data. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.workers.length > 0) {
      // workers are unref'd while idle; hold the loop open until they have exited
      for (const w of this.workers) w.worker.ref();
      Atomics.store(this.ctrl, C_CMD, CMD_CLOSE);
      Atomics.add(this.ctrl, C_GEN, 1);
      Atomics.notify(this.ctrl, C_GEN);
      await Promise.all(
        this.workers.map(
          (w) =>
            new Promise<void>((resolve) => {
              w.worker.once('exit', () => resolve());
              setTimeout(() => void w.worker.terminate(), 5000).unref();
            }),
        ),
      );
      for (const w of this.workers) w.port.close();
    }
    this.shard.dispose();
    this.shard.model.delete();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private ensureOpen(): void {
    if (this.closed) throw new SoupError('ERR_SOUP_INVALID_ARG', `VecEnv ${this.cfg.name} is closed`);
  }

  private run(cmd: number, own: () => void): void {
    const n = this.workers.length;
    if (n === 0) {
      own();
      return;
    }
    const ctrl = this.ctrl;
    Atomics.store(ctrl, C_DONE, 0);
    Atomics.store(ctrl, C_ERR, 0);
    Atomics.store(ctrl, C_CMD, cmd);
    Atomics.add(ctrl, C_GEN, 1);
    Atomics.notify(ctrl, C_GEN);
    let ownErr: unknown;
    try {
      own();
    } catch (err) {
      ownErr = err;
    }
    let waited = 0;
    for (let done = Atomics.load(ctrl, C_DONE); done < n; done = Atomics.load(ctrl, C_DONE)) {
      if (Atomics.wait(ctrl, C_DONE, done, WAIT_SLICE_MS) === 'timed-out' && (waited += WAIT_SLICE_MS) >= 6 * WAIT_SLICE_MS) {
        throw new SoupError('ERR_SOUP_INTERNAL', `VecEnv ${this.cfg.name}: worker threads did not answer within ${waited / 1000} s`);
      }
    }
    if (ownErr) throw ownErr;
    if (Atomics.load(ctrl, C_ERR)) {
      for (const w of this.workers) {
        const msg = receiveMessageOnPort(w.port)?.message as { message: string; code?: string } | undefined;
        if (msg) throw new SoupError((msg.code as SoupErrorCode) ?? 'ERR_SOUP_INTERNAL', `VecEnv worker: ${msg.message}`);
      }
      throw new SoupError('ERR_SOUP_INTERNAL', `VecEnv ${this.cfg.name}: a worker thread failed`);
    }
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  return Array.isArray(v) ? 'an Array' : typeof v;
}

/**
 * The worker script: compiled JS beside this file; when running from TS sources (tests, bench through
 * tsx or vitest) a small CommonJS stub loads the TS worker through tsx's API, since loader flags in a
 * worker's execArgv do not apply there on Node 20.
 */
function workerScript(): { script: URL | string; eval: boolean } {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return { script: new URL('./worker.js', self), eval: false };
  // the ESM entry of tsx/esm/api (require.resolve would pick its CommonJS build)
  const pkgFile = createRequire(self).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  const api = pathToFileURL(join(dirname(pkgFile), pkg.exports['./esm/api'].import.default)).href;
  const target = new URL('./worker.ts', self).href;
  const code =
    `import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(target)}, ${JSON.stringify(self)}))` +
    `.catch((e) => { require('node:worker_threads').parentPort.postMessage({ type: 'error', message: String(e && e.stack || e) }); });`;
  return { script: code, eval: true };
}

function startWorker(
  cfg: EnvConfig,
  data: SharedArrayBuffer,
  dims: EnvDims,
  ctrl: SharedArrayBuffer,
  seed: SharedArrayBuffer,
  lo: number,
  hi: number,
): Promise<WorkerSlot> {
  const { port1, port2 } = new MessageChannel();
  const { script, eval: isEval } = workerScript();
  const worker = new Worker(script, { eval: isEval, workerData: { cfg, data, dims, ctrl, seed, lo, hi, port: port2 }, transferList: [port2] });
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      port1.close();
      void worker.terminate();
      reject(err);
    };
    worker.once('message', (m: { type: string; message?: string; code?: string }) => {
      if (m.type === 'ready') {
        worker.removeAllListeners('error');
        worker.unref();
        resolve({ worker, port: port1 });
      } else fail(new SoupError((m.code as SoupErrorCode) ?? 'ERR_SOUP_INTERNAL', m.message ?? 'worker failed to start'));
    });
    worker.once('error', (err) => fail(new SoupError('ERR_SOUP_INTERNAL', `VecEnv worker failed to start: ${err.message}`, { cause: err })));
  });
}

/**
 * Checks that a policy's input/output sizes fit an env; `source` names the checkpoint in the error.
 * For trainers and loaders: a policy trained on another env fails here, not deep inside a matmul.
 */
export function checkPolicyFits(info: EnvInfo, policy: { obsDim: number; actDim: number }, source: string): void {
  if (policy.obsDim !== info.obsDim || policy.actDim !== info.actDim) {
    throw new SoupError(
      'ERR_SOUP_SHAPE_MISMATCH',
      `policy ${source} takes ${policy.obsDim} observations and gives ${policy.actDim} actions, but ${info.name} (${info.modelPath}) has obsDim=${info.obsDim}, actDim=${info.actDim}`,
    );
  }
}
