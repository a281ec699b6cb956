// SPDX-License-Identifier: MIT
// Runs PPO jobs as child processes, `parallel` at a time, with the thread environment set before each
// child loads libtorch. Progress comes back as messages; an abort kills the children (their last
// checkpoints stay, so the next run resumes).
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SoupError, type SoupErrorCode } from '../errors.js';
import type { PPOJob, WorkerMessage } from './worker.js';

const WORKER = fileURLToPath(new URL(`./worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

export function workerEnv(threads: number): NodeJS.ProcessEnv {
  return {
    ...process.env,
    RSOUP_PPO_WORKER: '1',
    OMP_WAIT_POLICY: 'PASSIVE',
    OMP_NUM_THREADS: String(threads),
    OPENBLAS_NUM_THREADS: String(threads),
    MKL_NUM_THREADS: String(threads),
  };
}

export async function runJobs(
  jobs: PPOJob[],
  o: { parallel: number; onMessage?: (m: WorkerMessage) => void; onSpawn?: (name: string, pid: number) => void; signal?: AbortSignal },
): Promise<void> {
  const queue = [...jobs];
  const live = new Set<ChildProcess>();
  let failed: SoupError | undefined;
  const onAbort = () => {
    for (const c of live) c.kill('SIGTERM');
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const one = (job: PPOJob) =>
    new Promise<void>((resolve, reject) => {
      const child = fork(WORKER, [], {
        env: workerEnv(job.threads),
        execArgv: WORKER.endsWith('.ts') ? ['--import', 'tsx'] : [],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      live.add(child);
      if (child.pid !== undefined) o.onSpawn?.(job.name, child.pid);
      let error: SoupError | undefined;
      child.on('message', (m: WorkerMessage) => {
        if (m.type === 'error') error = new SoupError(m.code as SoupErrorCode, `${job.name}: ${m.message}`);
        else o.onMessage?.(m);
      });
      child.on('exit', (code, sig) => {
        live.delete(child);
        if (code === 0) {
          o.onMessage?.({ type: 'done', name: job.name, step: job.steps });
          resolve();
        } else if (o.signal?.aborted) reject(new SoupError('ERR_SOUP_ABORTED', `${job.name}: aborted (its last checkpoint is kept; run again to resume)`));
        else reject(error ?? new SoupError('ERR_SOUP_TRAIN', `${job.name}: worker exited with ${sig ?? `code ${code}`}`));
      });
      child.send(job);
    });
  const lane = async () => {
    while (queue.length && !failed && !o.signal?.aborted) {
      const job = queue.shift()!;
      try {
        await one(job);
      } catch (e) {
        failed ??= e as SoupError;
        onAbort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(o.parallel, jobs.length)) }, lane));
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
  if (failed) throw failed;
  if (o.signal?.aborted) throw new SoupError('ERR_SOUP_ABORTED', 'aborted (finished runs and checkpoints are kept; run again to resume)');
}
