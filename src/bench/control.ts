// SPDX-License-Identifier: MIT
// rsoup bench control: where a PPO update's time goes on HalfCheetah-v5 (CleanRL settings: 2048 samples,
// 10 epochs × 32 minibatches of a 64-64 tanh Gaussian policy + value MLP): env stepping (simulation) vs
// policy calls during the rollout (one batched native call per step for every env) vs the native PPO
// update (learning). Each configuration runs in a fresh child process, rounds are interleaved so a noisy
// neighbour hits all alike, and both wall and CPU seconds are given (the machine is shared).
import { cpus, loadavg } from 'node:os';
import { packageRoot } from '../native/index.js';
import { runChild } from './child.js';
import { gitSha, median } from './stats.js';

export interface ControlTrial {
  numEnvs: number;
  threads: number;
  /** Measured updates (one more runs first, as warm-up). */
  updates: number;
  /** Samples per update: num_steps = round(samples / numEnvs) per env (CleanRL: 2048). */
  samples: number;
}

export interface ControlTrialResult extends ControlTrial {
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

export interface ControlBenchOptions {
  updates?: number;
  rounds?: number;
  envs?: number[];
  threads?: number[];
  samples?: number;
  log?: (line: string) => void;
  json?: (obj: Record<string, unknown>) => void;
}

/** One trial (the child process's side). */
export async function controlTrial(t: ControlTrial): Promise<ControlTrialResult> {
  const { VecEnv } = await import('../envs/index.js');
  const { ControlPolicy, ControlTrainer } = await import('../train/control.js');
  const env = await VecEnv.create({ env: 'HalfCheetah-v5', numEnvs: t.numEnvs, threads: t.threads, seed: 0 });
  const policy = ControlPolicy.create({ obsDim: env.info.obsDim, actDim: env.info.actDim, seed: 0 });
  const trainer = new ControlTrainer(env, policy, { rewardWeights: [1, 0.1], config: { num_steps: Math.max(1, Math.round(t.samples / t.numEnvs)) } });
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  const res = await trainer.train(trainer.batchSize * (t.updates + 1), { seed: 0 });
  const wallS = (performance.now() - w0) / 1000;
  const cu = process.cpuUsage(c0);
  const h = res.history.slice(1);
  const envS = median(h.map((s) => s.seconds.env)),
    actS = median(h.map((s) => s.seconds.act)),
    learnS = median(h.map((s) => s.seconds.learn));
  const sum = envS + actS + learnS;
  policy.dispose();
  await env.close();
  return {
    ...t,
    samplesPerUpdate: trainer.batchSize,
    envS,
    actS,
    learnS,
    simulationShare: envS / sum,
    policyShare: actS / sum,
    learningShare: learnS / sum,
    envStepsPerS: trainer.batchSize / envS,
    trainStepsPerS: res.steps / wallS,
    cpuS: (cu.user + cu.system) / 1e6,
    wallS,
  };
}

/** The bench: a meta line, one line per trial (every envs × threads configuration per round), a table. */
export async function benchControl(opts: ControlBenchOptions = {}): Promise<ControlTrialResult[]> {
  const updates = opts.updates ?? 6,
    rounds = opts.rounds ?? 3,
    samples = opts.samples ?? 2048;
  const envs = opts.envs ?? [8],
    threads = opts.threads ?? [1, 2];
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const trials: ControlTrial[] = envs.flatMap((n) => threads.map((th) => ({ numEnvs: n, threads: th, updates, samples })));
  const sha = gitSha(packageRoot);
  const meta = { bench: 'control', sha, cpu: cpus()[0]?.model, cores: cpus().length, loadBefore: loadavg()[0] };
  opts.json?.(meta);
  const all: ControlTrialResult[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const t of trials) {
      const res = await runChild<ControlTrialResult>('control', t);
      opts.json?.({ bench: 'control', round: r, ...res });
      all.push(res);
    }
  }
  const rows = trials.map((t) => {
    const rs = all.filter((x) => x.numEnvs === t.numEnvs && x.threads === t.threads);
    const m = (k: keyof ControlTrialResult) => median(rs.map((x) => x[k] as number));
    return `| ${t.numEnvs} | ${t.threads} | ${m('envS').toFixed(3)} | ${m('actS').toFixed(3)} | ${m('learnS').toFixed(3)} | ${(100 * m('simulationShare')).toFixed(0)}% | ${(100 * m('policyShare')).toFixed(0)}% | ${(100 * m('learningShare')).toFixed(0)}% | ${m('envStepsPerS').toFixed(0)} | ${m('trainStepsPerS').toFixed(0)} |`;
  });
  log(
    [
      '',
      `PPO update on HalfCheetah-v5, ${all[0]?.samplesPerUpdate ?? samples} samples, 10 × 32 minibatches; medians over ${rounds} rounds × ${updates} updates (load ${meta.loadBefore.toFixed(1)} → ${loadavg()[0].toFixed(1)}, ${meta.cores} cores, sha ${sha})`,
      '| envs | env threads | env s | policy s | update s | simulation | policy | learning | env steps/s (rollout) | env steps/s (training) |',
      '|---|---|---|---|---|---|---|---|---|---|',
      ...rows,
    ].join('\n'),
  );
  return all;
}
