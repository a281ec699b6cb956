// SPDX-License-Identifier: MIT
// Run-dir locks, one per piece of work: the base, each expert or MORL run, and the tail (sweep +
// report). Independent pieces of one run dir may run in separate processes, on separate hosts sharing
// the dir, while the same piece never runs twice (docs/ARCHITECTURE.md, "Run-dir locks").
//
// A lock is the file <runDir>/.locks/<stage>[.<run>].lock holding JSON {host, pid, startedAt,
// heartbeatAt, stage, run, token, …}. It is created whole: written to a temporary file, then link()ed
// to its name, which fails if the name exists (O_EXCL's guarantee, and the classic NFS-safe form), so
// nobody ever reads half a lock. Its holder counts as alive while, on the same host, its pid (or a
// worker pid it lists) runs; on another host, while its heartbeat is younger than LOCK_LEASE_S.
// A dead holder's lock is taken over with a warning, under a lock-of-the-lock so that several takers
// cannot each remove a lock that another has just taken.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { SoupError } from '../errors.js';
import { tempPathFor } from '../io/atomic.js';
import { pidAlive, procStat } from '../io/process.js';

/** Seconds without a heartbeat after which a holder on another host counts as dead. */
export const LOCK_LEASE_S = 60;
/** Seconds between heartbeats (a twelfth of the lease: a few missed beats are no takeover). */
export const LOCK_HEARTBEAT_S = 5;
/** A lock-of-the-lock older than this is from a taker that died inside takeover(): a few lines of code. */
const TAKEOVER_STALE_MS = 10_000;

export type LockStage = 'base' | 'experts' | 'morl' | 'sweep';

export interface LockKey {
  stage: LockStage;
  run?: string;
}

export interface LockInfo extends LockKey {
  host: string;
  pid: number;
  /** The pid's start time (Linux /proc, clock ticks since boot): a reused pid is not the holder. */
  pidStart?: string;
  startedAt: string;
  heartbeatAt: string;
  /** Child processes doing the work (PPO workers): they write into the run dir too. */
  children?: Array<{ pid: number; start?: string }>;
  token: string;
}

export const locksDir = (runDir: string) => join(runDir, '.locks');

export function lockPath(runDir: string, k: LockKey): string {
  return join(locksDir(runDir), `${k.stage}${k.run ? `.${k.run}` : ''}.lock`);
}

/** What a lock guards, as a user reads it. */
export function lockLabel(k: LockKey): string {
  if (k.stage === 'sweep') return 'the sweep and report';
  return k.run ? `${k.stage}/${k.run}` : k.stage;
}

/** Whether the holder of a lock counts as alive, and why (for the messages). */
export function holderState(info: LockInfo | undefined, o: { now?: number; leaseS?: number } = {}): { alive: boolean; why: string } {
  if (!info) return { alive: false, why: 'the lock file is unreadable' };
  const lease = o.leaseS ?? LOCK_LEASE_S;
  if (info.host === hostname()) {
    if (pidAlive(info.pid, info.pidStart)) return { alive: true, why: `pid ${info.pid} is running` };
    const kids = (info.children ?? []).filter((c) => pidAlive(c.pid, c.start));
    if (kids.length) return { alive: true, why: `pid ${info.pid} is gone but its worker pid ${kids.map((c) => c.pid).join(', ')} still runs` };
    return { alive: false, why: `pid ${info.pid} is no longer running on ${info.host}` };
  }
  const age = ((o.now ?? Date.now()) - Date.parse(info.heartbeatAt)) / 1000;
  if (age < lease) return { alive: true, why: `heartbeat ${Math.max(0, age).toFixed(0)} s ago` };
  return { alive: false, why: `no heartbeat from ${info.host} for ${Number.isFinite(age) ? age.toFixed(0) : '?'} s (lease ${lease} s)` };
}

export function describeHolder(info: LockInfo, o: { leaseS?: number } = {}): string {
  return `${lockLabel(info)} is held by pid ${info.pid} on host ${info.host} since ${info.startedAt} (${holderState(info, o).why})`;
}

function readLock(path: string): { raw: string; info?: LockInfo } | undefined {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const info = JSON.parse(raw) as LockInfo;
    return { raw, info: typeof info?.pid === 'number' && typeof info.host === 'string' ? info : undefined };
  } catch {
    return { raw };
  }
}

/** Writes `info` to a fresh temporary file beside `path` (fsynced) and returns its name. */
function writeTemp(path: string, info: LockInfo): string {
  const tmp = tempPathFor(path);
  const fd = openSync(tmp, 'wx');
  try {
    writeSync(fd, `${JSON.stringify(info, null, 1)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

/** Creates the lock file whole, or returns false if it exists. */
function createExclusive(path: string, info: LockInfo): boolean {
  const tmp = writeTemp(path, info);
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new SoupError('ERR_SOUP_IO', `cannot create the lock ${path}: ${(e as Error).message}`, { cause: e });
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
}

/**
 * Removes the lock at `path` if it still holds `raw` (the dead holder's lock that was judged), under
 * `path.takeover` made with O_EXCL: two takers that judged the same dead lock cannot both remove it,
 * and none removes a lock created after its judgement.
 */
function takeover(path: string, raw: string): 'removed' | 'changed' | 'contended' {
  const tl = `${path}.takeover`;
  try {
    if (Date.now() - statSync(tl).mtimeMs > TAKEOVER_STALE_MS) unlinkSync(tl);
  } catch {
    // none, or another taker removed it first
  }
  let fd: number;
  try {
    fd = openSync(tl, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return 'contended';
    throw new SoupError('ERR_SOUP_IO', `cannot create ${tl}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const now = readLock(path);
    if (!now) return 'changed';
    if (now.raw !== raw) return 'changed';
    unlinkSync(path);
    return 'removed';
  } finally {
    closeSync(fd);
    try {
      unlinkSync(tl);
    } catch {
      // removed as stale by another taker (only after TAKEOVER_STALE_MS)
    }
  }
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

const held = new Set<RunLock>();
let beat: NodeJS.Timeout | undefined;
let exitHook = false;

function track(l: RunLock): void {
  held.add(l);
  if (!beat) {
    beat = setInterval(() => {
      for (const k of [...held]) k.refresh();
    }, LOCK_HEARTBEAT_S * 1000);
    // the heartbeat never keeps the process alive on its own
    beat.unref();
  }
  if (!exitHook) {
    exitHook = true;
    // process.exit() (a second Ctrl-C, an uncaught error) skips `finally` blocks: release here too,
    // except a lock whose workers still run (it stays alive until they end, then is taken over)
    process.on('exit', () => {
      for (const k of [...held]) if (!(k.info.children ?? []).some((c) => pidAlive(c.pid, c.start))) k.release();
    });
  }
}

function untrack(l: RunLock): void {
  held.delete(l);
  if (!held.size && beat) {
    clearInterval(beat);
    beat = undefined;
  }
}

/** A lock this process holds. */
export class RunLock {
  /** Called once if the lock is found taken over by another process (this one was judged dead). */
  onLost?: (by: LockInfo | undefined) => void;
  private released = false;
  constructor(
    readonly path: string,
    public info: LockInfo,
  ) {
    track(this);
  }

  /** Rewrites the lock with a fresh heartbeat (and `patch`), unless it is no longer ours. */
  refresh(patch: Partial<Pick<LockInfo, 'children'>> = {}): void {
    if (this.released) return;
    try {
      const cur = readLock(this.path);
      if (!cur || cur.info?.token !== this.info.token) {
        untrack(this);
        this.released = true;
        this.onLost?.(cur?.info);
        return;
      }
      const next = { ...this.info, ...patch, heartbeatAt: new Date().toISOString() };
      const tmp = writeTemp(this.path, next);
      renameSync(tmp, this.path);
      this.info = next;
    } catch {
      // a failed heartbeat (full disk, network FS hiccup) is retried at the next beat
    }
  }

  /** Lists a worker process of this lock's work (alive while it runs, even if this process is not). */
  addChild(pid: number): void {
    const st = procStat(pid);
    this.refresh({ children: [...(this.info.children ?? []), { pid, ...(st ? { start: st.start } : {}) }] });
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    untrack(this);
    try {
      if (readLock(this.path)?.info?.token === this.info.token) unlinkSync(this.path);
    } catch {
      // gone already
    }
  }
}

export type TryLockResult = { lock: RunLock } | { holder: LockInfo };

/**
 * Takes the lock of one piece of work, or returns its live holder. A dead holder's lock is taken over
 * and `onWarning` names it.
 */
export function tryLock(runDir: string, k: LockKey, o: { leaseS?: number; onWarning?: (message: string) => void } = {}): TryLockResult {
  const path = lockPath(runDir, k);
  mkdirSync(locksDir(runDir), { recursive: true });
  for (let attempt = 0; attempt < 50; attempt++) {
    const now = new Date().toISOString();
    const st = procStat(process.pid);
    const info: LockInfo = {
      stage: k.stage,
      ...(k.run ? { run: k.run } : {}),
      host: hostname(),
      pid: process.pid,
      ...(st ? { pidStart: st.start } : {}),
      startedAt: now,
      heartbeatAt: now,
      token: randomBytes(8).toString('hex'),
    };
    if (createExclusive(path, info)) return { lock: new RunLock(path, info) };
    const cur = readLock(path);
    if (!cur) continue; // released between the two calls
    const hs = holderState(cur.info, o);
    if (hs.alive) return { holder: cur.info! };
    const t = takeover(path, cur.raw);
    if (t === 'removed') {
      const who = cur.info ? `pid ${cur.info.pid} on host ${cur.info.host}, since ${cur.info.startedAt}` : 'an unreadable lock';
      o.onWarning?.(`taking over the lock of ${lockLabel(k)} in ${runDir} from ${who}: ${hs.why}`);
    } else if (t === 'contended') {
      sleepSync(10 + Math.random() * 20);
    }
  }
  throw new SoupError('ERR_SOUP_BUSY', `could not take the lock ${path}: it kept changing hands`);
}

/** The live holders of every lock in the run dir, except the given lock files. */
export function liveHolders(runDir: string, except: Set<string> = new Set(), o: { leaseS?: number } = {}): LockInfo[] {
  let names: string[];
  try {
    names = readdirSync(locksDir(runDir)).filter((n) => n.endsWith('.lock'));
  } catch {
    return [];
  }
  const out: LockInfo[] = [];
  for (const n of names) {
    const p = join(locksDir(runDir), n);
    if (except.has(p)) continue;
    const cur = readLock(p);
    if (cur?.info && holderState(cur.info, o).alive) out.push(cur.info);
  }
  return out;
}

/** A run dir whose remaining work is locked by live processes (`rsoup run` exits with 75 on it). */
export class RunDirBusyError extends SoupError {
  constructor(
    readonly runDir: string,
    readonly holders: LockInfo[],
    why: string,
  ) {
    super(
      'ERR_SOUP_BUSY',
      `run dir ${runDir} is busy: ${why}: ${holders.map((h) => describeHolder(h)).join('; ')}. Run again when they finish (a dead holder's lock is taken over: on its host once its pid is gone, from another host after ${LOCK_LEASE_S} s without a heartbeat)`,
    );
    this.name = 'SoupError';
  }
}
