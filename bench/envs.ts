// SPDX-License-Identifier: MIT
// Env throughput: env steps per second of VecEnv (HalfCheetah-v5, Hopper-v5) with 1 and 2 threads,
// against a same-run baseline (a bare mujoco-js loop: mj_step × frame_skip per env, no env logic;
// it restarts a hopper that fell, as the env does, and every env each 1000 steps).
// Each trial runs in a fresh child process (better-sqlite3's rule); results are JSON lines on stdout
// followed by a table of medians over rounds (each round runs every configuration once, interleaved,
// so a noisy neighbour hits all of them alike).
// Usage: npx tsx bench/envs.ts [--seconds 2] [--rounds 3] [--envs 8,16] [--env HalfCheetah-v5,Hopper-v5]
import { execSync, spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { compileMjcf, defaultModelPath, loadMujoco, VecEnv, type EnvName } from '../src/envs/index.js';
import { readMjcf } from '../src/envs/mujoco.js';

interface Trial {
  kind: 'vecenv' | 'bare';
  env: EnvName;
  numEnvs: number;
  threads: number;
  seconds: number;
}

interface Result extends Trial {
  envSteps: number;
  wallS: number;
  envStepsPerS: number;
  physicsStepsPerS: number;
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

async function runTrial(t: Trial): Promise<Result> {
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
    let steps = 0;
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
    steps = r.n * t.numEnvs;
    return { ...t, envSteps: steps, wallS: r.s, envStepsPerS: steps / r.s, physicsStepsPerS: (steps * frameSkip) / r.s };
  }
  const vec = await VecEnv.create({ env: t.env, numEnvs: t.numEnvs, threads: t.threads, seed: 1 });
  const acts = actionsTable(pool * t.numEnvs * vec.info.actDim, 1);
  const batch = t.numEnvs * vec.info.actDim;
  const go = (limitS: number) => {
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < limitS * 1000) {
      for (let k = 0; k < 50; k++, n++) vec.step(acts.subarray((n % pool) * batch, (n % pool + 1) * batch));
    }
    return { n, s: (performance.now() - t0) / 1000 };
  };
  go(0.3);
  const r = go(t.seconds);
  await vec.close();
  const steps = r.n * t.numEnvs;
  return { ...t, envSteps: steps, wallS: r.s, envStepsPerS: steps / r.s, physicsStepsPerS: (steps * frameSkip) / r.s };
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}

async function main(): Promise<void> {
  const child = arg('child', '');
  if (child) {
    process.stdout.write(JSON.stringify(await runTrial(JSON.parse(child) as Trial)) + '\n');
    return;
  }
  const seconds = Number(arg('seconds', '2'));
  const rounds = Number(arg('rounds', '3'));
  const envCounts = arg('envs', '8,16').split(',').map(Number);
  const envNames = arg('env', 'HalfCheetah-v5,Hopper-v5').split(',') as EnvName[];
  let sha = 'unknown';
  try {
    sha = execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    // not a checkout
  }
  const meta = { bench: 'envs', sha, node: process.version, cpu: cpus()[0]?.model, cores: cpus().length, loadavg1: loadavg()[0] };
  process.stdout.write(JSON.stringify(meta) + '\n');
  const results: Result[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const env of envNames) {
      for (const numEnvs of envCounts) {
        const trials: Trial[] = [
          { kind: 'bare', env, numEnvs, threads: 1, seconds },
          { kind: 'vecenv', env, numEnvs, threads: 1, seconds },
          { kind: 'vecenv', env, numEnvs, threads: 2, seconds },
        ];
        for (const t of trials) {
          const p = spawnSync(process.execPath, [...process.execArgv, process.argv[1], '--child', JSON.stringify(t)], { encoding: 'utf8' });
          if (p.status !== 0) throw new Error(`trial ${JSON.stringify(t)} failed (exit ${p.status}): ${p.stderr}`);
          const r = { ...(JSON.parse(p.stdout.trim().split('\n').pop()!) as Result), round };
          results.push(r);
          process.stdout.write(JSON.stringify(r) + '\n');
        }
      }
    }
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const rows = ['| env | envs | bare loop (1 thread) | VecEnv 1 thread | VecEnv 2 threads | 2 vs 1 thread | VecEnv 1 vs bare |', '|---|---|---|---|---|---|---|'];
  for (const env of envNames) {
    for (const numEnvs of envCounts) {
      const get = (kind: string, threads: number) => ({
        envStepsPerS: median(results.filter((r) => r.env === env && r.numEnvs === numEnvs && r.kind === kind && r.threads === threads).map((r) => r.envStepsPerS)),
      });
      const bare = get('bare', 1);
      const one = get('vecenv', 1);
      const two = get('vecenv', 2);
      const f = (x: number) => `${Math.round(x).toLocaleString('en-US')}/s`;
      rows.push(`| ${env} | ${numEnvs} | ${f(bare.envStepsPerS)} | ${f(one.envStepsPerS)} | ${f(two.envStepsPerS)} | ${(two.envStepsPerS / one.envStepsPerS).toFixed(2)}× | ${(one.envStepsPerS / bare.envStepsPerS).toFixed(2)} |`);
    }
  }
  process.stderr.write(`\nenv steps per second, median of ${rounds} rounds (${meta.cpu}, ${meta.cores} cores, load ${meta.loadavg1.toFixed(2)} at start, ${loadavg()[0].toFixed(2)} at end, ${seconds} s per trial)\n${rows.join('\n')}\n`);
}

await main();
