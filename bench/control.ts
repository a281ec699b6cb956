// SPDX-License-Identifier: MIT
// Where a PPO update's time goes on HalfCheetah-v5 (CleanRL settings: 2048 samples, 10 epochs × 32
// minibatches of a 64-64 tanh Gaussian policy + value MLP): env stepping (simulation) vs policy calls
// during the rollout (one batched native call per step for every env) vs the native PPO update
// (learning). Each configuration runs in a fresh child process, rounds are interleaved so a noisy
// neighbour hits all alike, and both wall and CPU seconds are given (the machine is shared).
// Usage: npx tsx bench/control.ts [--updates 6] [--rounds 3] [--envs 8] [--threads 1,2]
import { execSync, spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { VecEnv } from '../src/envs/index.js';
import { ControlPolicy, ControlTrainer } from '../src/train/control.js';

interface Trial {
  numEnvs: number;
  threads: number;
  updates: number;
}

interface Result extends Trial {
  samplesPerUpdate: number;
  /** Medians over the measured updates (the first, warm-up, is dropped), seconds per update. */
  envS: number;
  actS: number;
  learnS: number;
  /** Shares of (env + act + learn). */
  simulationShare: number;
  policyShare: number;
  learningShare: number;
  envStepsPerS: number;
  /** Env steps per wall second over the whole loop (rollout + update). */
  trainStepsPerS: number;
  cpuS: number;
  wallS: number;
}

const median = (x: number[]) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)];

async function runTrial(t: Trial): Promise<Result> {
  const env = await VecEnv.create({ env: 'HalfCheetah-v5', numEnvs: t.numEnvs, threads: t.threads, seed: 0 });
  const policy = ControlPolicy.create({ obsDim: env.info.obsDim, actDim: env.info.actDim, seed: 0 });
  const trainer = new ControlTrainer(env, policy, { rewardWeights: [1, 0.1], config: { num_steps: Math.round(2048 / t.numEnvs) } });
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  const res = await trainer.train(trainer.batchSize * (t.updates + 1), { seed: 0 });
  const wallS = (performance.now() - w0) / 1000;
  const cu = process.cpuUsage(c0);
  const h = res.history.slice(1);
  const envS = median(h.map((s) => s.seconds.env)), actS = median(h.map((s) => s.seconds.act)), learnS = median(h.map((s) => s.seconds.learn));
  const sum = envS + actS + learnS;
  policy.dispose();
  await env.close();
  return {
    ...t, samplesPerUpdate: trainer.batchSize, envS, actS, learnS,
    simulationShare: envS / sum, policyShare: actS / sum, learningShare: learnS / sum,
    envStepsPerS: trainer.batchSize / envS, trainStepsPerS: res.steps / wallS,
    cpuS: (cu.user + cu.system) / 1e6, wallS,
  };
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}

async function main() {
  if (process.argv[2] === '--child') {
    const r = await runTrial(JSON.parse(process.argv[3]) as Trial);
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const updates = Number(arg('updates', '6'));
  const rounds = Number(arg('rounds', '3'));
  const envs = arg('envs', '8').split(',').map(Number);
  const threads = arg('threads', '1,2').split(',').map(Number);
  const trials: Trial[] = envs.flatMap((n) => threads.map((th) => ({ numEnvs: n, threads: th, updates })));
  let sha = 'unknown';
  try {
    sha = execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim();
  } catch {
    /* not a checkout */
  }
  const meta = { bench: 'control', sha, cpu: cpus()[0]?.model, cores: cpus().length, loadBefore: loadavg()[0] };
  process.stdout.write(`${JSON.stringify(meta)}\n`);
  const all: Result[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const t of trials) {
      const p = spawnSync(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, '--child', JSON.stringify(t)], { encoding: 'utf8', env: process.env });
      if (p.status !== 0) throw new Error(`trial ${JSON.stringify(t)} failed:\n${p.stderr}`);
      const line = p.stdout.trim().split('\n').pop()!;
      process.stdout.write(`${line}\n`);
      all.push(JSON.parse(line) as Result);
    }
  }
  const rows = trials.map((t) => {
    const rs = all.filter((x) => x.numEnvs === t.numEnvs && x.threads === t.threads);
    const m = (k: keyof Result) => median(rs.map((x) => x[k] as number));
    return `| ${t.numEnvs} | ${t.threads} | ${m('envS').toFixed(3)} | ${m('actS').toFixed(3)} | ${m('learnS').toFixed(3)} | ${(100 * m('simulationShare')).toFixed(0)}% | ${(100 * m('policyShare')).toFixed(0)}% | ${(100 * m('learningShare')).toFixed(0)}% | ${m('envStepsPerS').toFixed(0)} | ${m('trainStepsPerS').toFixed(0)} |`;
  });
  process.stdout.write(
    [
      '',
      `PPO update on HalfCheetah-v5, 2048 samples, 10 × 32 minibatches; medians over ${rounds} rounds × ${updates} updates (load ${meta.loadBefore.toFixed(1)} → ${loadavg()[0].toFixed(1)}, ${meta.cores} cores, sha ${sha})`,
      '| envs | env threads | env s | policy s | update s | simulation | policy | learning | env steps/s (rollout) | env steps/s (training) |',
      '|---|---|---|---|---|---|---|---|---|---|',
      ...rows,
      '',
    ].join('\n'),
  );
}

void main();
