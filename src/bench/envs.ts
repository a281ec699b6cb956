// SPDX-License-Identifier: MIT
// rsoup bench envs: env steps per second of VecEnv (HalfCheetah-v5, Hopper-v5) with 1 and 2 threads,
// against a same-run baseline (a bare mujoco-js loop: mj_step × frame_skip per env, no env logic; it
// restarts a hopper that fell, as the env does, and every env each 1000 steps). Each trial runs in a
// fresh child process; each round runs every configuration once, interleaved, so a noisy neighbour hits
// all of them alike; a table of medians over rounds follows on stderr.
import { cpus, loadavg } from 'node:os';
import type { EnvName } from '../envs/index.js';
import { packageRoot } from '../native/index.js';
import { runChild } from './child.js';
import { gitSha, median } from './stats.js';

export interface EnvsTrial {
  kind: 'vecenv' | 'bare';
  env: EnvName;
  numEnvs: number;
  threads: number;
  /** Timed seconds (after 0.3 s of warm-up). */
  seconds: number;
}

export interface EnvsTrialResult extends EnvsTrial {
  envSteps: number;
  wallS: number;
  envStepsPerS: number;
  physicsStepsPerS: number;
}

export interface EnvsBenchOptions {
  seconds?: number;
  rounds?: number;
  envs?: number[];
  env?: EnvName[];
  /** VecEnv thread counts (the bare loop runs on 1). */
  threads?: number[];
  log?: (line: string) => void;
  json?: (obj: Record<string, unknown>) => void;
}

function actionsTable(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let j = 0; j < n; j++) {
    s = (s * 16807) % 2147483647;
    a[j] = (s / 2147483647) * 2 - 1;
  }
  return a;
}

/** One trial (the child process's side). */
export async function envsTrial(t: EnvsTrial): Promise<EnvsTrialResult> {
  const { compileMjcf, defaultModelPath, loadMujoco, VecEnv } = await import('../envs/index.js');
  const { readMjcf } = await import('../envs/mujoco.js');
  const frameSkip = t.env === 'HalfCheetah-v5' ? 5 : 4;
  const pool = 64; // distinct action batches cycled through
  if (t.kind === 'bare') {
    const mj = await loadMujoco();
    const m = compileMjcf(mj, readMjcf(defaultModelPath(t.env)), t.env);
    const datas = Array.from({ length: t.numEnvs }, () => new mj.MjData(m));
    const ctrls = datas.map((d) => d.ctrl as Float64Array);
    const qposs = datas.map((d) => d.qpos as Float64Array);
    const hopper = t.env === 'Hopper-v5';
    const acts = actionsTable(pool * t.numEnvs * m.nu, 1);
    const go = (limitS: number) => {
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < limitS * 1000) {
        for (let k = 0; k < 50; k++, n++) {
          const base = (n % pool) * t.numEnvs * m.nu;
          for (let i = 0; i < t.numEnvs; i++) {
            for (let u = 0; u < m.nu; u++) ctrls[i][u] = acts[base + i * m.nu + u];
            for (let f = 0; f < frameSkip; f++) mj.mj_step(m, datas[i]);
            // like the env, restart a fallen hopper (a hopper lying on the floor costs more per step)
            if (hopper && (qposs[i][1] < 0.7 || Math.abs(qposs[i][2]) > 0.2)) mj.mj_resetData(m, datas[i]);
          }
          // keep the bare loop's bodies from drifting into unbounded states: reset now and then
          if (n % 1000 === 999) for (const d of datas) mj.mj_resetData(m, d);
        }
      }
      return { n, s: (performance.now() - t0) / 1000 };
    };
    go(0.3);
    const r = go(t.seconds);
    const steps = r.n * t.numEnvs;
    return { ...t, envSteps: steps, wallS: r.s, envStepsPerS: steps / r.s, physicsStepsPerS: (steps * frameSkip) / r.s };
  }
  const vec = await VecEnv.create({ env: t.env, numEnvs: t.numEnvs, threads: t.threads, seed: 1 });
  const acts = actionsTable(pool * t.numEnvs * vec.info.actDim, 1);
  const batch = t.numEnvs * vec.info.actDim;
  const go = (limitS: number) => {
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < limitS * 1000) {
      for (let k = 0; k < 50; k++, n++) vec.step(acts.subarray((n % pool) * batch, ((n % pool) + 1) * batch));
    }
    return { n, s: (performance.now() - t0) / 1000 };
  };
  go(0.3);
  const r = go(t.seconds);
  await vec.close();
  const steps = r.n * t.numEnvs;
  return { ...t, envSteps: steps, wallS: r.s, envStepsPerS: steps / r.s, physicsStepsPerS: (steps * frameSkip) / r.s };
}

/** The bench: a meta line, one line per trial (bare loop, then VecEnv at each thread count, for every
 *  env and env count, per round), a table of medians. */
export async function benchEnvs(opts: EnvsBenchOptions = {}): Promise<EnvsTrialResult[]> {
  const seconds = opts.seconds ?? 2,
    rounds = opts.rounds ?? 3;
  const envCounts = opts.envs ?? [8, 16];
  const envNames = opts.env ?? ['HalfCheetah-v5', 'Hopper-v5'];
  const threadCounts = opts.threads ?? [1, 2];
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const meta = { bench: 'envs', sha: gitSha(packageRoot), node: process.version, cpu: cpus()[0]?.model, cores: cpus().length, loadavg1: loadavg()[0] };
  opts.json?.(meta);
  const results: (EnvsTrialResult & { round: number })[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const env of envNames) {
      for (const numEnvs of envCounts) {
        const trials: EnvsTrial[] = [
          { kind: 'bare', env, numEnvs, threads: 1, seconds },
          ...threadCounts.map((threads) => ({ kind: 'vecenv' as const, env, numEnvs, threads, seconds })),
        ];
        for (const t of trials) {
          const r = { ...(await runChild<EnvsTrialResult>('envs', t)), round };
          results.push(r);
          opts.json?.({ bench: 'envs', ...r });
        }
      }
    }
  }
  const vecCols = threadCounts.map((th) => `VecEnv ${th} thread${th === 1 ? '' : 's'}`);
  const ratioCol = threadCounts.length > 1 ? [`${threadCounts[threadCounts.length - 1]} vs ${threadCounts[0]} threads`] : [];
  const head = ['env', 'envs', 'bare loop (1 thread)', ...vecCols, ...ratioCol, `VecEnv ${threadCounts[0]} vs bare`];
  const rows = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const env of envNames) {
    for (const numEnvs of envCounts) {
      const get = (kind: string, threads: number) =>
        median(results.filter((r) => r.env === env && r.numEnvs === numEnvs && r.kind === kind && r.threads === threads).map((r) => r.envStepsPerS));
      const bare = get('bare', 1);
      const vecs = threadCounts.map((th) => get('vecenv', th));
      const f = (x: number) => `${Math.round(x).toLocaleString('en-US')}/s`;
      const ratio = vecs.length > 1 ? [`${(vecs[vecs.length - 1] / vecs[0]).toFixed(2)}×`] : [];
      rows.push(`| ${[env, String(numEnvs), f(bare), ...vecs.map(f), ...ratio, (vecs[0] / bare).toFixed(2)].join(' | ')} |`);
    }
  }
  log(
    `\nenv steps per second, median of ${rounds} rounds (${meta.cpu}, ${meta.cores} cores, load ${meta.loadavg1.toFixed(2)} at start, ${loadavg()[0].toFixed(2)} at end, ${seconds} s per trial)\n${rows.join('\n')}`,
  );
  return results;
}
