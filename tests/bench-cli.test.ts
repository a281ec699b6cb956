// SPDX-License-Identifier: MIT
// rsoup bench: every bench is a CLI command; each cheap one runs once at its smallest flags with --json,
// and every stdout line is a JSON row whose fields are checked; bad flags are usage errors (exit 2)
// naming the flag; bench/ holds no Node bench and bench/results/ one canonical file per bench.
//
// These run the compiled CLI (dist/cli/main.js, which `npm test` builds first; by hand: `npx tsc -p
// tsconfig.json`), not the sources under tsx as tests/helpers/cli.ts does: the benches that time one
// trial per process re-run the CLI for each trial, and under tsx each of those processes costs ~3× the
// start-up here. One at a time: on 2 cores, running them together made the file slower.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { register } from '../src/cli/commands/bench.js';
import { UsageError } from '../src/cli/output.js';

const ROOT = join(__dirname, '..');
const MAIN = join(ROOT, 'dist', 'cli', 'main.js');

/** Every `rsoup bench` name. */
const BENCHES = ['merge', 'calls', 'load', 'serve', 'memory', 'ppo', 'control', 'diffusion', 'envs', 'pareto', 'rewards'];
/** The benches this file does not run, and why. */
const NOT_RUN: Record<string, string> = {
  merge: 'runs in tests/merge-cli.test.ts and tests/config-messages.test.ts (a 64 MiB group)',
  calls: "runs in tests/merge-cli.test.ts ('rsoup bench calls', --tensors 8,64 --reps 3)",
  load: 'writes and loads a 13 GB LLaMA-7B-shaped dir: minutes',
  serve: 'a synthetic LLaMA server under concurrent load: minutes',
  diffusion: 'five fresh libtorch processes even at --reps 1 --batch 2: ~18 s here',
  ppo: 'a fresh libtorch process even for a 1-layer model: ~6 s here',
};

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', rej);
    p.on('close', (code) => res({ code, stdout, stderr }));
  });
}

/** Every stdout line, parsed: a line that is not JSON fails the test. */
function rows(stdout: string): Record<string, any>[] {
  const lines = stdout.trim().split('\n');
  return lines.map((l, i) => {
    try {
      return JSON.parse(l) as Record<string, any>;
    } catch {
      throw new Error(`stdout line ${i + 1} is not JSON: ${l.slice(0, 200)}`);
    }
  });
}

const dir = mkdtempSync(join(tmpdir(), 'rsoup-bench-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(() => {
  // A stale dist would test old code: the compiled bench files must be newer than their sources.
  const pairs: [string, string][] = [[join(ROOT, 'src', 'cli', 'commands', 'bench.ts'), join(ROOT, 'dist', 'cli', 'commands', 'bench.js')]];
  for (const f of readdirSync(join(ROOT, 'src', 'bench')))
    if (f.endsWith('.ts')) pairs.push([join(ROOT, 'src', 'bench', f), join(ROOT, 'dist', 'bench', f.replace(/\.ts$/, '.js'))]);
  for (const [src, out] of pairs) {
    if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs)
      throw new Error(`${out} is missing or older than ${src}: run npx tsc -p tsconfig.json`);
  }
});

describe('rsoup bench: the list', () => {
  it('--help lists every bench', async ({ expect }) => {
    const r = await cli(['bench', '--help']);
    expect(r.code, r.stderr).toBe(0);
    const listed = [...r.stdout.matchAll(/^ {2}([a-z]+) \[options\]/gm)].map((m) => m[1]);
    expect(listed.sort()).toEqual([...BENCHES].sort());
  });

  it('bench/ keeps only harnesses that do not run under Node; bench/results/ one canonical <name>.jsonl each', ({ expect }) => {
    expect(readdirSync(join(ROOT, 'bench')).filter((f) => /\.(ts|mts|js|mjs)$/.test(f))).toEqual([]);
    const results = readdirSync(join(ROOT, 'bench', 'results'));
    for (const f of results) {
      const m = /^([a-z-]+)\.jsonl$/.exec(f);
      expect(m, f).not.toBeNull();
      // a bench's name, or a harness's under bench/ (kernel-stream.sh writes kernel-stream.jsonl)
      expect(BENCHES.includes(m![1]) || existsSync(join(ROOT, 'bench', `${m![1]}.sh`)), f).toBe(true);
      for (const line of readFileSync(join(ROOT, 'bench', 'results', f), 'utf8')
        .trim()
        .split('\n'))
        expect(() => JSON.parse(line), `${f}: ${line}`).not.toThrow();
    }
  });
});

describe('rsoup bench: each cheap bench once, smallest flags, --json', () => {
  const RUN = ['memory', 'control', 'envs', 'pareto', 'rewards'];

  it('every bench is run here or named in NOT_RUN with its reason', ({ expect }) => {
    expect([...RUN, ...Object.keys(NOT_RUN)].sort()).toEqual([...BENCHES].sort());
  });

  it('pareto: one row per case at the scaled sizes, fronts and volumes in range, no target checked', async ({ expect }) => {
    const r = await cli(['bench', 'pareto', '--scale', '0.01', '--repeats', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const xs = rows(r.stdout);
    expect(xs.map((x) => [x.case, x.d, x.n])).toEqual([
      ['2-D shell', 2, 10000],
      ['2-D line', 2, 10000],
      ['3-D shell', 3, 1000],
      ['3-D plane', 3, 1000],
      ['5-D shell', 5, 2],
    ]);
    for (const x of xs) {
      expect(x.hypervolume, x.case).toBeGreaterThan(0);
      expect(x.p50_ms).toBeGreaterThan(0);
      expect(x.frontSize > 0 && x.frontSize <= x.n).toBe(true);
      expect([x.limit_ms, x.pass, x.repeats]).toEqual([null, null, 1]);
    }
    // every point of the 2-D line and the 3-D plane is on the front
    expect(xs[1].frontSize).toBe(10000);
    expect(xs[3].frontSize).toBe(1000);
    // the 2-D line from (0, 1) to (1, 0), ref (-0.1, -0.1): the staircase over 10^4 points
    expect(xs[1].hypervolume).toBeCloseTo(0.71, 3);
    expect(r.stderr).toMatch(/case +n +front +p50 ms/);
  });

  it('rewards: the baseline and six rewards, each with a positive throughput', async ({ expect }) => {
    const r = await cli(['bench', 'rewards', '--n', '200', '--trials', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const xs = rows(r.stdout);
    expect(xs.map((x) => x.reward.split(' ')[0])).toEqual(['baseline:', 'bleu-4', 'rougeL', 'rougeL', 'vader', 'CIDEr-D', 'meteor']);
    expect(xs[0].vsBaseline).toBe(1);
    for (const x of xs) {
      expect([x.bench, x.samples, x.trials]).toEqual(['rewards', 200, 1]);
      expect(x.samplesPerSec, x.reward).toBeGreaterThan(0);
      expect(x.samplesPerSec).toBeCloseTo(x.samples / x.seconds, 6);
    }
    for (const x of xs.slice(1)) expect(x.ppoBatch64Ms, x.reward).toBeGreaterThan(0);
  });

  it('envs: a meta row, then the bare loop and VecEnv, each in its own process, with positive steps/s', async ({ expect }) => {
    const r = await cli(['bench', 'envs', '--seconds', '0.1', '--rounds', '1', '--envs', '2', '--env', 'Hopper-v5', '--threads', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const [meta, ...xs] = rows(r.stdout);
    expect(meta.bench).toBe('envs');
    expect(xs.map((x) => [x.kind, x.env, x.numEnvs, x.threads, x.round])).toEqual([
      ['bare', 'Hopper-v5', 2, 1, 0],
      ['vecenv', 'Hopper-v5', 2, 1, 0],
    ]);
    for (const x of xs) {
      expect(x.envSteps % 2, x.kind).toBe(0);
      expect(x.envSteps).toBeGreaterThan(0);
      expect(x.envStepsPerS).toBeCloseTo(x.envSteps / x.wallS, 6);
      expect(x.physicsStepsPerS).toBeCloseTo(4 * x.envStepsPerS, 6); // Hopper: frame_skip 4
    }
    expect(r.stderr).toMatch(/\| Hopper-v5 \| 2 \|/);
  });

  it('control: a meta row and one trial whose time shares add up to 1', async ({ expect }) => {
    const r = await cli(['bench', 'control', '--updates', '1', '--rounds', '1', '--envs', '2', '--threads', '1', '--samples', '64', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const [meta, ...xs] = rows(r.stdout);
    expect(meta.bench).toBe('control');
    expect(xs).toHaveLength(1);
    const x = xs[0];
    expect([x.numEnvs, x.threads, x.updates, x.samplesPerUpdate]).toEqual([2, 1, 1, 64]);
    expect(x.simulationShare + x.policyShare + x.learningShare).toBeCloseTo(1, 9);
    for (const k of ['envS', 'actS', 'learnS', 'envStepsPerS', 'trainStepsPerS', 'wallS']) expect(x[k], k).toBeGreaterThan(0);
  });

  it('memory: the merge runs in a child process; bytes read and peak RSS reported; the files it wrote are removed', async ({ expect }) => {
    const d = join(dir, 'mem');
    const r = await cli(['bench', 'memory', '--n', '2', '--gib', '0.03', '--dir', d, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const xs = rows(r.stdout);
    expect(xs).toHaveLength(1);
    // 0.03 GiB rounds up to one 4096×4096 bf16 matrix (32 MiB) per source
    expect([xs[0].event, xs[0].sources, xs[0].bytesRead]).toEqual(['merge-memory', 2, 2 * 32 * 2 ** 20]);
    expect(xs[0].peakRssGiB > 0.01 && xs[0].peakRssGiB < 1.5).toBe(true);
    expect(existsSync(d)).toBe(false);
  });
});

describe('rsoup bench: bad flags are usage errors naming the flag', () => {
  it('end to end: exit code 2, the message on stderr, nothing on stdout', async ({ expect }) => {
    const r = await cli(['bench', 'envs', '--seconds', '0']);
    expect(r.stderr).toMatch(/^rsoup: usage error: --seconds: '0' is not a positive number$/m);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
  });

  // In this process (the command's parser as main.ts runs it; main.ts maps UsageError to exit 2): one
  // flag per kind of check. merge's and calls' flags: tests/merge-cli.test.ts.
  it.for([
    [['envs', '--env', 'Ant-v5'], /^--env: 'Ant-v5' is not one of HalfCheetah-v5, Hopper-v5$/],
    [['envs', '--envs', '8,0'], /^--envs: '0' is not a positive integer$/],
    [['control', '--samples', '32'], /^--samples: '32' is less than 64/],
    [['pareto', '--scale', '2'], /^--scale: '2' is more than 1$/],
    [['pareto', '--repeats', '0'], /^--repeats: '0' is not a positive integer$/],
    [['rewards', '--n', '1e3x'], /^--n: '1e3x' is not a positive integer$/],
    [['ppo', '--warmup', '-1'], /^--warmup: '-1' is not a non-negative integer$/],
    [['ppo', '--heads', '0'], /^--heads: '0' is not a positive integer$/],
    [['diffusion', '--batch', 'x'], /^--batch: 'x' is not a positive integer$/],
    [['memory', '--gib', '0'], /^--gib: '0' is not a positive number$/],
    [['serve', '--concurrency', '0'], /^--concurrency: '0' is not a positive integer$/],
  ] as [string[], RegExp][])('%j', async ([args, msg], { expect }) => {
    const program = new Command('rsoup').exitOverride();
    register(program);
    const err = await program.parseAsync(['node', 'rsoup', 'bench', ...args]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(msg);
  });
});
