// SPDX-License-Identifier: MIT
// `rsoup run --executor slurm` against a real one-node Slurm cluster started for this file
// (tests/helpers/slurm.ts: Debian's slurmctld/slurmd/munge, a private slurm.conf through SLURM_CONF,
// state, logs and munge socket in a temp dir). A micro experiment (the demo's shape at reduced size)
// submitted with --wait gives the local executor's report; a cancelled array task reruns alone and
// resumes from its checkpoint; a failing task cancels the sweep job, `rsoup status` names it, and the
// resubmission reruns only what is missing; each error a user meets has its message. The last test
// stops the cluster and checks that no daemon is left.
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { createServer as netServer, type AddressInfo } from 'node:net';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';
import { needs } from './helpers/fixtures.js';
import { microConfig, stripTimes, writeMicroCorpus } from './helpers/micro.js';
import { SLURM_PORTS, startCluster, type Cluster } from './helpers/slurm.js';
import { pidAlive } from '../src/io/process.js';

const tmp = mkdtempSync(join(tmpdir(), 'rsoup-slurm-'));
let cluster: Cluster | undefined;
let why = '';

const ARGS = ['--import', pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href, join(ROOT, 'src', 'cli', 'main.ts')];
type Res = { code: number | null; stdout: string; stderr: string };

/** The CLI as a child process, without blocking this process (the HTTP reward server below answers from it). */
function rsoupChild(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 200_000) {
  const child = spawn(process.execPath, [...ARGS, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...(cluster ? { SLURM_CONF: cluster.conf } : {}), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => (out.stdout += d));
  child.stderr.on('data', (d) => (out.stderr += d));
  const done = new Promise<Res>((resolve) => {
    const t = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, ...out });
    });
  });
  return { child, out, done };
}
const rsoup = (args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 200_000) => rsoupChild(args, env, timeoutMs).done;

const slurmCmd = (cmd: string, args: string[]) => spawnSync(cmd, args, { env: { ...process.env, SLURM_CONF: cluster!.conf }, encoding: 'utf8' });
const report = (dir: string) => JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
const lastSubmission = (dir: string) => JSON.parse(readFileSync(join(dir, 'slurm', 'submissions.json'), 'utf8')).at(-1);
/** Each stage marker's bytes and mtime: "untouched" means both equal. */
const marker = (p: string) => ({ text: readFileSync(join(p, '.stage.json'), 'utf8'), mtime: statSync(join(p, '.stage.json')).mtimeMs });
const until = async (ok: () => boolean, ms: number, what: string) => {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

// The test's reward server: /len scores a response by its length after 200 ms (a micro PPO step takes
// ~20 ms, and the cancel below must land mid-run: this makes a run last seconds without changing what it
// computes); /judge answers 500 while `judgeDown`.
let server: Server;
let judgeDown = true;
let judgeCalls = 0;
let base = '';

// The demo's shape at reduced size: a pre-trained base, two rewards, two experts and one MORL run of 16
// PPO steps (checkpoints every 2), a 3-point sweep; the rewards compared move (response lengths).
const STEPS = 16;
const config = (extra = '') => microConfig(STEPS, extra).replace('  - { type: vader, name: vader }', `  - { type: http, name: len, url: "${base}/len" }`);
const CFG = () => join(tmp, 'micro.yml');

/**
 * report.json fields that differ between two runs of the same seed and are left out of the comparison
 * (stripTimes): cost.soups.seconds, cost.soups.cpu_seconds, cost.morl.seconds, cost.morl.cpu_seconds,
 * and the reading's "Training cost" sentence that quotes those seconds. report.json holds no dates, job
 * ids or paths: asserted below, so nothing else needs leaving out.
 */
const comparable = (r: Record<string, unknown>) => stripTimes(r);

let localReport: Record<string, unknown> | undefined;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const { samples } = JSON.parse(body) as { samples: Array<{ response: string }> };
      const ok = () =>
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ scores: samples.map((s) => Math.min(s.response.length, 16) / 16) }));
      if (req.url === '/len') setTimeout(ok, 200);
      else if (req.url === '/judge' && ++judgeCalls && judgeDown) res.writeHead(500).end('judge is down');
      else ok();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  writeMicroCorpus(tmp);
  writeFileSync(CFG(), config());
  mkdirSync(join(tmp, 'cluster'));
  const r = await startCluster(join(tmp, 'cluster'));
  if ('cluster' in r) cluster = r.cluster;
  else why = r.reason;
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(tmp, { recursive: true, force: true });
});

describe('rsoup run --executor slurm (a real one-node cluster)', () => {
  it("--wait runs base, the runs array and the sweep job; the report equals the local executor's; switching executors reuses every stage", async (ctx) => {
    needs(ctx, !!cluster, why);
    const out = join(tmp, 'slurm');
    // side by side: the local run computes while the Slurm jobs wait for their turn
    const [local, s] = await Promise.all([
      rsoup(['run', CFG(), '--out', join(tmp, 'local')]),
      rsoup(['run', CFG(), '--out', out, '--executor', 'slurm', '--wait']),
    ]);
    expect(local.code, local.stderr).toBe(0);
    localReport = report(join(tmp, 'local'));
    expect(s.code, s.stderr).toBe(0);
    // the job ids on stdout; the jobs' own progress lines on stderr
    expect(s.stdout).toMatch(/^base \d+\nruns \d+\nsweep \d+\n$/);
    expect(s.stderr).toMatch(/submitted to Slurm: base job \d+, runs array \d+ \(0 expert-len, 1 expert-topic, 2 morl-0\.5-0\.5\), sweep \+ report job \d+/);
    expect(s.stderr).toMatch(/expert-topic \| .*experts: done in/);
    expect(s.stderr).toMatch(/slurm: the sweep and report, job \d+: COMPLETED, exit code 0:0/);
    const sub = lastSubmission(out);
    // every job ran in the cluster: its log is under slurm/ and Slurm lists it COMPLETED with 0:0
    for (const id of [sub.jobs.base.id, sub.jobs.runs.id, sub.jobs.sweep.id]) {
      for (const line of slurmCmd('scontrol', ['-o', 'show', 'job', id]).stdout.trim().split('\n')) expect(line).toMatch(/JobState=COMPLETED .*ExitCode=0:0/);
    }
    expect(readFileSync(sub.jobs.runs.tasks[1].log, 'utf8')).toMatch(/--stage runs --index 1\)/);
    // each array task ran with the local worker's thread settings (cpus_per_task = worker_threads = 1)
    expect(readFileSync(join(out, 'slurm', 'runs.sh'), 'utf8')).toMatch(/#SBATCH --cpus-per-task=1\n/);

    const a = report(out);
    const text = JSON.stringify(a);
    for (const s2 of [tmp, String(sub.jobs.runs.id) + '_', 'slurm']) expect(text).not.toContain(s2);
    expect(a.models.some((m: { rewards: number[] }) => m.rewards[0] !== 0)).toBe(true);
    expect(comparable(a)).toEqual(comparable(localReport!));

    const st = await rsoup(['status', out]);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toMatch(/experts\s+1 expert-topic\s+done\s+\d+_1\s+COMPLETED\s+0:0\s+slurm\/runs_\d+_1\.out/);
    // the executor is in no stage hash: the local executor reuses everything, and Slurm has nothing to do
    const again = await rsoup(['run', CFG(), '--out', out]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr.match(/(base|experts|morl|sweep): cached/g)).toHaveLength(5);
    const none = await rsoup(['run', CFG(), '--out', out, '--executor', 'slurm']);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stderr).toMatch(/nothing to submit/);
    expect(lastSubmission(out).jobs.base.id).toBe(sub.jobs.base.id);
  }, 240_000);

  it('scancel of one running array task after its first checkpoint: the same command reruns only it, resumed, with the same report', async (ctx) => {
    needs(ctx, !!cluster, why);
    expect(localReport, 'the first test gives the uninterrupted report').toBeDefined();
    const out = join(tmp, 'cancel');
    // the first test's base, whose stage hash this config shares: only the runs and the sweep are submitted
    cpSync(join(tmp, 'slurm', 'base'), join(out, 'base'), { recursive: true });
    const first = rsoup(['run', CFG(), '--out', out, '--executor', 'slurm', '--wait']);
    // expert-len: its reward takes 200 ms per batch, so that its run lasts seconds
    const run = join(out, 'experts', 'expert-len');
    await until(() => existsSync(join(run, 'adapter', 'trainer_state.json')), 150_000, 'the first checkpoint of expert-len');
    const arr = lastSubmission(out).jobs.runs.id;
    expect(slurmCmd('scontrol', ['-o', 'show', 'job', `${arr}_0`]).stdout).toMatch(/JobState=RUNNING/);
    expect(slurmCmd('scancel', [`${arr}_0`]).status).toBe(0);
    const atCancel = readFileSync(join(run, 'history.jsonl'), 'utf8').trim().split('\n').length;
    expect(atCancel, 'the cancel lands mid-run').toBeLessThan(STEPS - 2);
    const r1 = await first;
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(new RegExp(`run 0 \\(expert-len\\), job ${arr}_0: CANCELLED`));
    expect(r1.stderr).toMatch(/the sweep and report, job \d+: cancelled by Slurm, a job it depends on did not complete/);
    expect(r1.stderr).toMatch(/resubmit only what is missing with:\n  rsoup run .*micro\.yml --out .*cancel --executor slurm --wait/);
    // cancelled mid-run: not done, some steps kept
    expect(JSON.parse(readFileSync(join(run, '.stage.json'), 'utf8')).done).toBe(false);
    const before = Object.fromEntries(['base', 'experts/expert-topic', 'morl/morl-0.5-0.5'].map((p) => [p, marker(join(out, p))]));

    const r2 = await rsoup(['run', CFG(), '--out', out, '--executor', 'slurm', '--wait']);
    expect(r2.code, r2.stderr).toBe(0);
    const sub = lastSubmission(out);
    expect(sub.jobs.base).toBeUndefined();
    expect(sub.jobs.runs.tasks.map((t: { index: number; run: string }) => [t.index, t.run])).toEqual([[0, 'expert-len']]);
    expect(r2.stdout).toMatch(/^runs \d+\nsweep \d+\n$/);
    const resumed = /expert-len: resumed at step (\d+)/.exec(readFileSync(sub.jobs.runs.tasks[0].log, 'utf8'));
    expect(resumed, 'the rerun task resumes from its checkpoint').not.toBeNull();
    expect(Number(resumed![1])).toBeGreaterThan(0);
    expect(
      readFileSync(join(run, 'history.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).step),
    ).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    for (const [p, m] of Object.entries(before)) expect(marker(join(out, p)), p).toEqual(m);
    expect(comparable(report(out))).toEqual(comparable(localReport!));
  }, 240_000);

  it('a failing task (an http reward answering 500) cancels the sweep job; status names it; once the server answers, the resubmission reruns only it', async (ctx) => {
    needs(ctx, !!cluster, why);
    const cfg = join(tmp, 'http.yml');
    writeFileSync(
      cfg,
      config()
        .replace(/  - \{ type: lexicon.*\n/, `  - { type: http, name: judge, url: "${base}/judge", retries: 0, backoff_ms: 1 }\n`)
        .replace('mu: [[0.5, 0.5]]', 'mu: []'),
    );
    const out = join(tmp, 'http');
    cpSync(join(tmp, 'slurm', 'base'), join(out, 'base'), { recursive: true });
    const r1 = await rsoup(['run', cfg, '--out', out, '--executor', 'slurm', '--wait']);
    expect(r1.code).toBe(1);
    expect(judgeCalls).toBeGreaterThan(0);
    const sub1 = lastSubmission(out);
    const arr = sub1.jobs.runs.id;
    expect(r1.stderr).toMatch(
      new RegExp(
        `run 1 \\(expert-judge\\), job ${arr}_1: FAILED with exit code 1:0 \\(NonZeroExitCode\\); log .*runs_${arr}_1\\.out, ending:\\n(    \\| .*\\n)*    \\| .*HTTP 500`,
      ),
    );
    expect(r1.stderr).toMatch(new RegExp(`the sweep and report, job ${sub1.jobs.sweep.id}: cancelled by Slurm`));
    expect(r1.stderr).not.toMatch(/expert-len, job/);
    // the dependant was cancelled, not left pending
    expect(slurmCmd('scontrol', ['-o', 'show', 'job', sub1.jobs.sweep.id]).stdout).toMatch(/JobState=CANCELLED Reason=DependencyNeverSatisfied/);
    const st = await rsoup(['status', out]);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toMatch(new RegExp(`experts\\s+0 expert-len\\s+done\\s+${arr}_0\\s+COMPLETED\\s+0:0`));
    expect(st.stdout).toMatch(
      new RegExp(`experts\\s+1 expert-judge\\s+no step done\\s+${arr}_1\\s+FAILED \\(NonZeroExitCode\\)\\s+1:0\\s+slurm/runs_${arr}_1\\.out`),
    );
    expect(st.stdout).toMatch(/sweep\s+sweep \+ report\s+not started\s+\d+\s+CANCELLED \(DependencyNeverSatisfied\)/);
    expect(st.stdout).toMatch(/resubmit what is missing: rsoup run .*http\.yml --out .*http --executor slurm --wait/);
    const len = marker(join(out, 'experts', 'expert-len'));

    judgeDown = false;
    const r2 = await rsoup(['run', cfg, '--out', out, '--executor', 'slurm', '--wait']);
    expect(r2.code, r2.stderr).toBe(0);
    const sub2 = lastSubmission(out);
    expect(sub2.jobs.base).toBeUndefined();
    expect(sub2.jobs.runs.tasks.map((t: { run: string }) => t.run)).toEqual(['expert-judge']);
    expect(marker(join(out, 'experts', 'expert-len'))).toEqual(len);
    expect(report(out).rewards).toEqual(['len', 'judge']);
  }, 240_000);

  it('errors a user meets: no sbatch on PATH, the controller unreachable, a rejected submission, a bad --index, too few CPUs; Ctrl-C under --wait cancels the jobs', async (ctx) => {
    needs(ctx, !!cluster, why);
    // Ctrl-C while following: scancel of every job of the submission, exit 130
    const w = rsoupChild(['run', CFG(), '--out', join(tmp, 'interrupted'), '--executor', 'slurm', '--wait']);
    await until(() => /sweep \d+\n/.test(w.out.stdout), 60_000, 'the submission');
    w.child.kill('SIGINT');
    const wr = await w.done;
    expect(wr.code, wr.stderr).toBe(130);
    expect(wr.stderr).toMatch(/cancelled the Slurm jobs \d+, \d+, \d+ \(scancel\); finished stages and checkpoints are kept; resubmit with: rsoup run /);
    const ids = wr.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[1]);
    await until(() => ids.every((id) => /JobState=CANCELLED/.test(slurmCmd('scontrol', ['-o', 'show', 'job', id]).stdout)), 20_000, 'the jobs to be cancelled');
    // a slurm.conf whose controller port nobody listens on
    const port = await new Promise<number>((r) => {
      const s = netServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => r(p));
      });
    });
    const dead = join(tmp, 'dead.conf');
    writeFileSync(dead, `SlurmctldPort=${port}\n${readFileSync(cluster!.conf, 'utf8')}`);
    const badPart = join(tmp, 'partition.yml');
    writeFileSync(badPart, config('executor: { type: slurm, partition: nosuch }\n'));
    const cpus = join(tmp, 'cpus.yml');
    writeFileSync(cpus, config('worker_threads: 2\nexecutor: { type: slurm, cpus_per_task: 1 }\n'));
    // independent commands, side by side
    const [noPath, down, rej, idx, noIdx, c] = await Promise.all([
      rsoup(['run', CFG(), '--out', join(tmp, 'e1'), '--executor', 'slurm'], { PATH: '/nonexistent' }),
      rsoup(['run', CFG(), '--out', join(tmp, 'e2'), '--executor', 'slurm'], { SLURM_CONF: dead }),
      rsoup(['run', badPart, '--out', join(tmp, 'e3')]),
      rsoup(['run', CFG(), '--out', join(tmp, 'e4'), '--stage', 'runs', '--index', '7']),
      rsoup(['run', CFG(), '--stage', 'runs']),
      rsoup(['run', cpus, '--dry-run']),
    ]);
    expect(noPath.code).toBe(1);
    expect(noPath.stderr).toMatch(/the Slurm executor needs `sbatch`, which is not on PATH \(\/nonexistent\).*--executor local/);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/the Slurm controller is unreachable \(`scontrol ping`: .*DOWN/);
    expect(rej.code).toBe(1);
    expect(rej.stderr).toMatch(
      /Slurm rejected the base job of .*partition\.yml \(`sbatch --parsable .*base\.sh`\): sbatch: error: .*Invalid partition name specified/,
    );
    expect(slurmCmd('squeue', ['-h']).stdout.trim()).toBe('');
    expect(idx.code).toBe(1);
    expect(idx.stderr).toMatch(/--index 7: the experiment has 3 PPO runs \(indices 0-2: 0 expert-len, 1 expert-topic, 2 morl-0\.5-0\.5\)/);
    expect(noIdx.code).toBe(2);
    expect(noIdx.stderr).toMatch(/--stage runs needs --index K/);
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/executor\.cpus_per_task 1 is below worker_threads 2/);
  }, 120_000);

  it('--dry-run of examples/llama7b-summary.yml prints the job scripts and sbatch lines, submitting nothing', async () => {
    const r = await rsoup(['run', join(ROOT, 'examples', 'llama7b-summary.yml'), '--dry-run', '--out', join(tmp, 'llama')], { PATH: '/nonexistent' });
    // the model files are missing here (exit 1), but the Slurm plan is printed all the same
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/slurm: 3 jobs, scripts and logs under .*llama\/slurm\//);
    expect(r.stderr).toMatch(/BASE_JOB=\$\(sbatch --parsable .*llama\/slurm\/base\.sh\)/);
    expect(r.stderr).toMatch(/RUNS_JOB=\$\(sbatch --parsable --array=0-4%\d+ --dependency=afterok:\$BASE_JOB --kill-on-invalid-dep=yes .*runs\.sh\)/);
    expect(r.stderr).toMatch(/sbatch --parsable --dependency=afterok:\$RUNS_JOB --kill-on-invalid-dep=yes .*sweep\.sh/);
    expect(r.stderr).toMatch(/#SBATCH --gres=gpu:1\n/);
    expect(r.stderr).toMatch(/\nexec .* run .*llama7b-summary\.yml --out .* --executor local --stage runs --index "\$SLURM_ARRAY_TASK_ID"\n/);
    expect(existsSync(join(tmp, 'llama'))).toBe(false);
  });

  it('stops the cluster: no slurmctld, slurmd or munged left running, ports free again', async (ctx) => {
    needs(ctx, !!cluster, why);
    const pids = { ...cluster!.pids };
    expect(Object.values(pids).every((p) => pidAlive(p))).toBe(true);
    expect(await cluster!.stop()).toEqual([]);
    for (const [name, pid] of Object.entries(pids)) expect(pidAlive(pid), name).toBe(false);
    for (const p of SLURM_PORTS) {
      const free = await new Promise<boolean>((r) => {
        const s = netServer()
          .once('error', () => r(false))
          .listen(p, '0.0.0.0', () => s.close(() => r(true)));
      });
      expect(free, `port ${p}`).toBe(true);
    }
    cluster = undefined;
  });
});
