// SPDX-License-Identifier: MIT
// The Slurm executor (docs/slurm.md): submits the plan of ./plan.ts with sbatch, follows its jobs with
// scontrol (sacct needs the accounting daemon, which many clusters and every test cluster lack), cancels
// them with scancel, and reads the state of a run dir for `rsoup status`. Slurm's own messages are passed
// on as they are; every error names the job, the task and its log.
import { execFile } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SoupError } from '../../errors.js';
import { atomicWriteFile } from '../../io/atomic.js';
import type { Experiment } from '../config.js';
import { liveHolders, describeHolder } from '../lock.js';
import { planExperiment, plannedRuns } from '../run.js';
import { sbatchArgs, type SlurmJobKey, type SlurmPlan } from './plan.js';

export interface SubmittedTask {
  index: number;
  run: string;
  log: string;
}
export interface Submission {
  at: string;
  runDir: string;
  config: string;
  /** The command that submits again what is missing. */
  resubmit: string;
  jobs: {
    base?: { id: string; log: string };
    runs?: { id: string; tasks: SubmittedTask[] };
    sweep?: { id: string; log: string };
  };
}

/** One job or array task as Slurm reports it. */
export interface TaskState {
  key: SlurmJobKey;
  /** "44" or "45_1". */
  id: string;
  index?: number;
  run?: string;
  /** PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, …; UNKNOWN when Slurm no longer knows the job. */
  state: string;
  reason?: string;
  /** Slurm's "code:signal". */
  exitCode?: string;
  restarts?: number;
  log: string;
}

const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY', 'BOOT_FAIL', 'DEADLINE', 'PREEMPTED', 'UNKNOWN']);
export const isTerminal = (s: string) => TERMINAL.has(s);

const submissionsFile = (runDir: string) => join(runDir, 'slurm', 'submissions.json');

/** Every submission made for the run dir, oldest first. */
export function readSubmissions(runDir: string): Submission[] {
  const p = submissionsFile(runDir);
  if (!existsSync(p)) return [];
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Submission[];
  } catch (e) {
    throw new SoupError('ERR_SOUP_FORMAT', `${p}: not a submission record: ${(e as Error).message}`);
  }
}

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a Slurm client command; a missing command is an error that says what to install. */
function slurm(cmd: string, args: string[], timeoutMs = 60_000): Promise<Out> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      if (e && e.code === 'ENOENT') {
        reject(
          new SoupError(
            'ERR_SOUP_INVALID_ARG',
            `the Slurm executor needs \`${cmd}\`, which is not on PATH (${process.env.PATH ?? ''}): run on a Slurm login node, load Slurm's module, or install its client commands (Debian: slurm-client); \`--executor local\` runs the experiment here`,
          ),
        );
        return;
      }
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr });
    });
  });
}

const unreachable = (o: Out) =>
  /Unable to contact slurm controller|Socket timed out|Connection refused|is DOWN|Zero Bytes were transmitted/i.test(o.stdout + o.stderr);
const noConfig = (o: Out) => /Could not establish a configuration source|fetch_config/i.test(o.stdout + o.stderr);
const slurmMessage = (o: Out) =>
  (o.stderr.trim() || o.stdout.trim() || `exit status ${o.code}`)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join('; ');

/** sbatch on PATH and the controller answering, each with its own message. */
export async function checkSlurm(): Promise<void> {
  await slurm('sbatch', ['--version']);
  const p = await slurm('scontrol', ['ping']);
  if (noConfig(p))
    throw new SoupError(
      'ERR_SOUP_IO',
      `Slurm finds no configuration: ${process.env.SLURM_CONF ? `SLURM_CONF=${process.env.SLURM_CONF} cannot be read` : 'no /etc/slurm/slurm.conf, no SLURM_CONF, no DNS SRV record'} (\`scontrol ping\`: ${slurmMessage(p)})`,
    );
  if (p.code !== 0 || unreachable(p)) {
    throw new SoupError(
      'ERR_SOUP_IO',
      `the Slurm controller is unreachable (\`scontrol ping\`: ${slurmMessage(p)}); check that slurmctld runs and that SLURM_CONF${process.env.SLURM_CONF ? ` (${process.env.SLURM_CONF})` : ''} names it`,
    );
  }
}

/** Parses `scontrol -o show job` lines into key → value maps. */
export function parseScontrol(text: string): Array<Record<string, string>> {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const rec: Record<string, string> = {};
      for (const tok of l.trim().split(/\s+/)) {
        const eq = tok.indexOf('=');
        if (eq > 0) rec[tok.slice(0, eq)] = tok.slice(eq + 1);
      }
      return rec;
    });
}

/** Array task ids of a record: "3", "1-2", "0,2-4%2" (pending tasks share one record). */
function taskIds(spec: string): number[] {
  const out: number[] = [];
  for (const part of spec.replace(/%\d+$/, '').split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) continue;
    for (let k = +m[1]; k <= +(m[2] ?? m[1]); k++) out.push(k);
  }
  return out;
}

/** The states of a submission's jobs and tasks (UNKNOWN for a job Slurm no longer lists). */
export async function jobStates(sub: Submission): Promise<TaskState[]> {
  const out: TaskState[] = [];
  const show = async (id: string) => {
    const r = await slurm('scontrol', ['-o', 'show', 'job', id]);
    if (r.code !== 0) {
      if (/Invalid job id/i.test(r.stdout + r.stderr)) return [];
      if (unreachable(r) || noConfig(r))
        throw new SoupError(
          'ERR_SOUP_IO',
          `the Slurm controller is unreachable (\`scontrol show job ${id}\`${process.env.SLURM_CONF ? ` with SLURM_CONF=${process.env.SLURM_CONF}` : ''}: ${slurmMessage(r)})`,
        );
      throw new SoupError('ERR_SOUP_IO', `\`scontrol show job ${id}\` failed: ${slurmMessage(r)}`);
    }
    return parseScontrol(r.stdout);
  };
  const fields = (rec: Record<string, string> | undefined) =>
    rec
      ? {
          state: (rec.JobState ?? 'UNKNOWN').replace(/\+$/, ''),
          reason: rec.Reason && rec.Reason !== 'None' ? rec.Reason : undefined,
          exitCode: rec.ExitCode,
          restarts: Number(rec.Restarts ?? 0),
        }
      : { state: 'UNKNOWN' };
  const one = async (key: 'base' | 'sweep') => {
    const j = sub.jobs[key];
    if (j) out.push({ key, id: j.id, log: j.log, ...fields((await show(j.id)).find((r) => r.JobId === j.id)) });
  };
  await one('base');
  const a = sub.jobs.runs;
  if (a) {
    const byTask = new Map<number, Record<string, string>>();
    for (const r of await show(a.id)) for (const k of taskIds(r.ArrayTaskId ?? '')) byTask.set(k, r);
    for (const t of a.tasks) out.push({ key: 'runs', id: `${a.id}_${t.index}`, index: t.index, run: t.run, log: t.log, ...fields(byTask.get(t.index)) });
  }
  await one('sweep');
  return out;
}

/** Jobs of the run dir's last submission still queued or running. */
async function activeJobs(runDir: string): Promise<TaskState[]> {
  const last = readSubmissions(runDir).at(-1);
  return last ? (await jobStates(last)).filter((t) => !isTerminal(t.state)) : [];
}

export const taskLabel = (t: Pick<TaskState, 'key' | 'index' | 'run'>) =>
  t.key === 'base' ? 'the base' : t.key === 'sweep' ? 'the sweep and report' : `run ${t.index} (${t.run})`;

/**
 * Writes the job scripts, then submits base → runs array → sweep, each depending on the one before.
 * A rejected submission cancels the jobs already submitted and shows Slurm's message.
 */
export async function submitSlurm(x: Experiment, plan: SlurmPlan, o: { resubmit: string }): Promise<Submission | undefined> {
  await checkSlurm();
  const active = await activeJobs(x.runDir);
  if (active.length)
    throw new SoupError(
      'ERR_SOUP_BUSY',
      `run dir ${x.runDir} has jobs of an earlier submission still queued or running: ${active.map((t) => `${t.id} ${taskLabel(t)} ${t.state}`).join(', ')}; wait for them (\`rsoup status ${x.runDir}\`) or cancel them (scancel ${[...new Set(active.map((t) => t.id.split('_')[0]))].join(' ')}), then submit again`,
    );
  const holders = liveHolders(x.runDir);
  if (holders.length)
    throw new SoupError('ERR_SOUP_BUSY', `run dir ${x.runDir} is busy: ${holders.map((h) => describeHolder(h)).join('; ')}; submit again when it finishes`);
  if (!plan.jobs.length) return undefined;
  // the log directory must exist before submission: sbatch does not create it, and the job fails without a log
  mkdirSync(plan.dir, { recursive: true });
  for (const j of plan.jobs) await atomicWriteFile(j.script, [Buffer.from(j.text)]);
  await atomicWriteFile(join(x.runDir, 'experiment.json'), [Buffer.from(`${JSON.stringify({ ...x, files: undefined }, null, 2)}\n`)]);
  const ids: Partial<Record<SlurmJobKey, string>> = {};
  const sub: Submission = { at: new Date().toISOString(), runDir: x.runDir, config: x.path, resubmit: o.resubmit, jobs: {} };
  for (const j of plan.jobs) {
    const args = sbatchArgs(j, x, ids);
    const r = await slurm('sbatch', args);
    const id = /^(\d+)/.exec(r.stdout.trim())?.[1];
    if (r.code !== 0 || !id) {
      const done = Object.values(ids);
      if (done.length) await slurm('scancel', done).catch(() => undefined);
      const what = `sbatch ${args.join(' ')}`;
      if (unreachable(r)) throw new SoupError('ERR_SOUP_IO', `the Slurm controller is unreachable: \`${what}\` said: ${slurmMessage(r)}`);
      throw new SoupError(
        'ERR_SOUP_CONFIG',
        `Slurm rejected the ${j.key} job of ${x.path} (\`${what}\`): ${slurmMessage(r)}${done.length ? `; cancelled the jobs submitted before it (${done.join(', ')})` : ''}; the job's options come from the config's \`executor\` block`,
      );
    }
    ids[j.key] = id;
    if (j.key === 'runs') sub.jobs.runs = { id, tasks: j.tasks!.map((t) => ({ ...t, log: j.output.replace('%A', id).replace('%a', String(t.index)) })) };
    else sub.jobs[j.key] = { id, log: j.output.replace('%j', id) };
  }
  const all = readSubmissions(x.runDir);
  all.push(sub);
  await atomicWriteFile(submissionsFile(x.runDir), [Buffer.from(`${JSON.stringify(all, null, 1)}\n`)]);
  return sub;
}

/** scancel of every job of a submission. */
export async function cancelSubmission(sub: Submission): Promise<string[]> {
  const ids = [sub.jobs.base?.id, sub.jobs.runs?.id, sub.jobs.sweep?.id].filter((v): v is string => !!v);
  if (ids.length) await slurm('scancel', ids);
  return ids;
}

/** The last `n` lines of a log ('' when it does not exist). */
export function logTail(path: string, n = 12): string {
  try {
    const size = statSync(path).size;
    const len = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(len);
    const fd = openSync(path, 'r');
    try {
      readSync(fd, buf, 0, len, size - len);
    } finally {
      closeSync(fd);
    }
    return buf
      .toString('utf8')
      .split('\n')
      .filter((l) => l.trim())
      .slice(-n)
      .join('\n');
  } catch {
    return '';
  }
}

const failed = (t: TaskState) => isTerminal(t.state) && t.state !== 'COMPLETED' && !(t.state === 'CANCELLED' && /Dependency/i.test(t.reason ?? ''));

/** What went wrong, with each failed task's exit code and log, and the command that resubmits only what is missing. */
export function failureMessage(sub: Submission, tasks: TaskState[]): string {
  const bad = tasks.filter(failed);
  const dep = tasks.filter((t) => t.state === 'CANCELLED' && /Dependency/i.test(t.reason ?? ''));
  const lines = [`the Slurm run of ${sub.runDir} did not finish:`];
  for (const t of bad) {
    const tail = logTail(t.log);
    lines.push(
      `  ${taskLabel(t)}, job ${t.id}: ${t.state}${t.exitCode ? ` with exit code ${t.exitCode}` : ''}${t.reason ? ` (${t.reason})` : ''}; log ${t.log}${
        tail
          ? `, ending:\n${tail
              .split('\n')
              .map((l) => `    | ${l}`)
              .join('\n')}`
          : ' (empty)'
      }`,
    );
  }
  for (const t of dep) lines.push(`  ${taskLabel(t)}, job ${t.id}: cancelled by Slurm, a job it depends on did not complete`);
  for (const t of tasks.filter((u) => !isTerminal(u.state))) lines.push(`  ${taskLabel(t)}, job ${t.id}: still ${t.state}`);
  lines.push(`Finished stages and checkpoints are kept; resubmit only what is missing with:\n  ${sub.resubmit}`);
  return lines.join('\n');
}

export interface FollowOptions {
  signal?: AbortSignal;
  pollMs?: number;
  /** A state change of a job or task. */
  onState?: (t: TaskState) => void;
  /** A new line of a job's log. */
  onLog?: (t: TaskState, line: string) => void;
}

/**
 * Follows a submission until every job has ended: state changes and new log lines as they come.
 * Ctrl-C (the signal) cancels the submission's jobs with scancel. `ok`: the sweep and report job completed.
 */
export async function followSlurm(sub: Submission, o: FollowOptions = {}): Promise<{ ok: boolean; tasks: TaskState[] }> {
  const known = new Map<string, TaskState>();
  const offsets = new Map<string, number>();
  const pollMs = o.pollMs ?? 1000;
  const readLogs = (t: TaskState) => {
    if (!o.onLog || !existsSync(t.log)) return;
    const off = offsets.get(t.id) ?? 0;
    const size = statSync(t.log).size;
    if (size <= off) return;
    const buf = Buffer.alloc(size - off);
    const fd = openSync(t.log, 'r');
    try {
      readSync(fd, buf, 0, buf.length, off);
    } finally {
      closeSync(fd);
    }
    // whole lines only; the rest waits for the next poll
    const text = buf.toString('utf8');
    const end = text.lastIndexOf('\n') + 1;
    offsets.set(t.id, off + Buffer.byteLength(text.slice(0, end)));
    for (const l of text.slice(0, end).split('\n')) if (l.trim()) o.onLog(t, l);
  };
  let misses = 0;
  for (;;) {
    if (o.signal?.aborted) {
      const ids = await cancelSubmission(sub);
      throw new SoupError(
        'ERR_SOUP_ABORTED',
        `cancelled the Slurm jobs ${ids.join(', ')} (scancel); finished stages and checkpoints are kept; resubmit with: ${sub.resubmit}`,
      );
    }
    let now: TaskState[];
    try {
      now = await jobStates(sub);
      misses = 0;
    } catch (e) {
      // a controller that does not answer for a while (a restart) is waited for, not fatal at once
      if (++misses >= 30) throw e;
      now = [...known.values()];
    }
    for (const t of now) {
      const prev = known.get(t.id);
      // a job that aged out of Slurm's memory keeps the last state seen
      const cur = t.state === 'UNKNOWN' && prev ? prev : t;
      if (!prev || prev.state !== cur.state || prev.restarts !== cur.restarts) o.onState?.(cur);
      known.set(t.id, cur);
      readLogs(cur);
    }
    const tasks = [...known.values()];
    if (tasks.length && tasks.every((t) => isTerminal(t.state))) {
      const tail = sub.jobs.sweep ? tasks.find((t) => t.key === 'sweep') : undefined;
      return { ok: tail ? tail.state === 'COMPLETED' : tasks.every((t) => t.state === 'COMPLETED'), tasks };
    }
    await new Promise<void>((res) => {
      const onAbort = () => {
        clearTimeout(tm);
        res();
      };
      const tm = setTimeout(() => {
        o.signal?.removeEventListener('abort', onAbort);
        res();
      }, pollMs);
      o.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

export interface StatusRow {
  stage: 'base' | 'experts' | 'morl' | 'sweep';
  piece: string;
  /** From the stage markers: done, "step k/n", not started. */
  progress: string;
  done: boolean;
  job?: string;
  state?: string;
  reason?: string;
  exitCode?: string;
  log?: string;
}

/** Each stage and task of a run dir: its marker, and its last Slurm job (state, exit code, log). */
export async function runStatus(runDir: string): Promise<{ experiment: string; submission?: Submission; rows: StatusRow[]; slurmError?: string }> {
  const xp = join(runDir, 'experiment.json');
  if (!existsSync(xp)) throw new SoupError('ERR_SOUP_CONFIG', `'${runDir}' is not a run dir: it has no experiment.json (written by \`rsoup run\`)`);
  const x = { ...(JSON.parse(readFileSync(xp, 'utf8')) as Experiment), files: [] } as Experiment;
  const plan = planExperiment(x);
  const runs = plannedRuns(x);
  const sub = readSubmissions(runDir).at(-1);
  // the markers are worth showing even when Slurm does not answer
  let states: TaskState[] = [];
  let slurmError: string | undefined;
  try {
    states = sub ? await jobStates(sub) : [];
  } catch (e) {
    slurmError = (e as Error).message;
  }
  const slurmOf = (key: SlurmJobKey, index?: number) => {
    const t = states.find((s) => s.key === key && s.index === index);
    return t ? { job: t.id, state: t.state, reason: t.reason, exitCode: t.exitCode, log: t.log } : {};
  };
  const steps = (dir: string) => {
    const p = join(dir, 'history.jsonl');
    if (!existsSync(p)) return 0;
    const lines = readFileSync(p, 'utf8')
      .split('\n')
      .filter((l) => l.trim());
    return lines.length ? (JSON.parse(lines.at(-1)!) as { step: number }).step : 0;
  };
  const rows: StatusRow[] = [
    {
      stage: 'base',
      piece: 'base',
      done: plan.stages[0].cached,
      progress: plan.stages[0].cached ? 'done' : existsSync(join(runDir, 'base')) ? 'started' : 'not started',
      ...slurmOf('base'),
    },
  ];
  runs.forEach((r, i) => {
    const done = plan.stages[1 + i].cached;
    const k = steps(join(runDir, r.kind, r.name));
    rows.push({
      stage: r.kind,
      piece: `${i} ${r.name}`,
      done,
      progress: done ? 'done' : k ? `step ${k}/${r.steps}` : existsSync(join(runDir, r.kind, r.name)) ? 'no step done' : 'not started',
      ...slurmOf('runs', i),
    });
  });
  const sweepDone = plan.stages[1 + runs.length].cached;
  const report = existsSync(join(runDir, 'report.json'));
  rows.push({
    stage: 'sweep',
    piece: 'sweep + report',
    done: sweepDone && report,
    progress: sweepDone ? (report ? 'done' : 'sweep done, no report') : 'not started',
    ...slurmOf('sweep'),
  });
  return { experiment: x.name, submission: sub, rows, ...(slurmError ? { slurmError } : {}) };
}
