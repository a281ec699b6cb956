// SPDX-License-Identifier: MIT
// Whether a process of this host still runs: what temp-file cleanup (src/io/atomic.ts) and run-dir locks
// (src/pipeline/lock.ts) both ask before treating something a process left as abandoned.
import { readFileSync } from 'node:fs';

/** State letter and start time of a pid from /proc (Linux); undefined elsewhere or when gone. */
export function procStat(pid: number): { state: string; start: string } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ppid …": comm may hold spaces and parentheses; fields resume after the last ')'
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: f[0], start: f[19] };
  } catch {
    return undefined;
  }
}

/** Whether a pid of this host runs: not gone, not a zombie, and (given `start`) not a reused pid. */
export function pidAlive(pid: number, start?: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it exists, under another user
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const st = procStat(pid);
  if (st) {
    // a zombie has finished (an orphan nobody reaps stays one); another start time is a reused pid
    if (st.state === 'Z' || st.state === 'X') return false;
    if (start !== undefined && st.start !== start) return false;
  }
  return true;
}
