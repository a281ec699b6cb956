// SPDX-License-Identifier: MIT
// Stages, for every task (text, locomotion, diffusion): the input hash of a stage, the record its output
// keeps of that hash (a stage whose inputs hash matches its recorded output is skipped), the text
// pipeline's stage markers, and the stage and progress events that `rsoup run` / `rsoup demo` print.
//
// One hash function, two recipes, so that every run dir cached before the recipes met stays valid:
// the text pipeline hashes canonical JSON (keys sorted at every depth); the locomotion and diffusion
// tasks hashed JSON with keys as written (`keys: 'as-written'`). Both are sha256, first 16 hex digits.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { atomicWriteFile, fsyncDir } from '../io/atomic.js';

// ---- the input hash ------------------------------------------------------------------------------------

/** A JSON value with the keys of every object sorted (arrays keep their order). */
export function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v as object)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  return v;
}

export interface HashOptions {
  /** 'sorted' (canonical JSON, the default and the text pipeline's recipe) or 'as-written' (the
   *  locomotion and diffusion tasks' recipe, kept so that their cached policies and base models stay valid). */
  keys?: 'sorted' | 'as-written';
}

/** sha256 of a JSON value (first 16 hex digits); keys sorted unless `keys: 'as-written'`. Undefined
 *  fields are left out, as JSON.stringify leaves them. */
export function hashOf(v: unknown, o: HashOptions = {}): string {
  return createHash('sha256')
    .update(JSON.stringify(o.keys === 'as-written' ? v : canonical(v)))
    .digest('hex')
    .slice(0, 16);
}

// ---- the record of a stage's output ---------------------------------------------------------------------

/** A JSON file, parsed; undefined when it is missing or unreadable (a stage to recompute). */
export function readRecord<T = Record<string, unknown>>(file: string): T | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** The input hash a stage's output recorded (`field` of the JSON file `file`), when `file` and every
 *  path of `needs` exist. */
export function recordedHash(file: string, o: { field?: string; needs?: string[] } = {}): string | undefined {
  if (!(o.needs ?? []).every((f) => existsSync(f))) return undefined;
  const v = readRecord(file)?.[o.field ?? 'hash'];
  return typeof v === 'string' ? v : undefined;
}

// ---- stage and progress events --------------------------------------------------------------------------

/** A stage starts, is reused from its recorded output ('cached'), or is done (`seconds`: what it took). */
export interface StageEvent<S extends string = string> {
  event: 'stage';
  stage: S;
  status: 'start' | 'cached' | 'done';
  seconds?: number;
  detail?: string;
}
/** Progress inside a stage: `done` of `total` units, seconds `elapsed` since it started and the `eta`. */
export interface ProgressEvent<S extends string = string> {
  event: 'progress';
  stage: S;
  done: number;
  total: number;
  elapsed?: number;
  eta?: number;
  detail?: string;
}

/** A progress event whose ETA assumes the units left cost what the units done did (`since`: performance.now() at the start). */
export function progressEvent<S extends string>(stage: S, done: number, total: number, since: number, detail?: string): ProgressEvent<S> & { elapsed: number } {
  const elapsed = (performance.now() - since) / 1000;
  return { event: 'progress', stage, done, total, elapsed, eta: (elapsed / done) * (total - done), ...(detail !== undefined ? { detail } : {}) };
}

/** Runs `fn` as stage `stage`: emits start, then done with its wall time, which goes into `timings[stage]`. */
export async function timedStage<S extends string, T>(
  stage: S,
  detail: string,
  emit: (e: StageEvent<S>) => void,
  timings: Record<string, number>,
  fn: () => Promise<T>,
): Promise<T> {
  emit({ event: 'stage', stage, status: 'start', detail });
  const t = performance.now();
  const r = await fn();
  timings[stage] = (performance.now() - t) / 1000;
  emit({ event: 'stage', stage, status: 'done', seconds: timings[stage] });
  return r;
}

/**
 * A stage cached by its input hash: when `recorded()` (the hash its output recorded) is `hash` and
 * `load()` gives the output, the stage is skipped with a 'cached' event; otherwise (no record, another
 * hash, or an output that does not load) `compute()` runs. `compute` emits its own start and done
 * events (its detail and seconds are its own); `load` returning undefined means "recompute".
 */
export async function cachedStage<S extends string, T>(o: {
  stage: S;
  hash: string;
  emit: (e: StageEvent<S>) => void;
  detail?: string;
  recorded: () => string | undefined;
  load: () => Promise<T | undefined>;
  compute: () => Promise<T>;
}): Promise<{ value: T; cached: boolean }> {
  if (o.recorded() === o.hash) {
    let hit: T | undefined;
    try {
      hit = await o.load();
    } catch {
      hit = undefined;
    }
    if (hit !== undefined) {
      o.emit({ event: 'stage', stage: o.stage, status: 'cached', ...(o.detail !== undefined ? { detail: o.detail } : {}) });
      return { value: hit, cached: true };
    }
  }
  return { value: await o.compute(), cached: false };
}

// ---- the text pipeline's stage markers -----------------------------------------------------------------
// Each stage (and each PPO run) of a text run dir has a folder with a `.stage.json` marker holding the
// hash of everything it was computed from and the files it vouches for.

/** `files`: paths (relative to the stage dir) that the marker vouches for; done with one missing = not done. */
export interface Marker {
  hash: string;
  done: boolean;
  seconds?: number;
  info?: unknown;
  files?: string[];
}

export const MARKER = '.stage.json';

export function readMarker(dir: string): Marker | undefined {
  return readRecord<Marker>(join(dir, MARKER));
}

/** Atomic (temporary file, fsync, rename): a kill never leaves half a marker, nor two writers a mixed one. */
export async function writeMarker(dir: string, m: Marker): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await atomicWriteFile(join(dir, MARKER), [Buffer.from(JSON.stringify(m, null, 2))]);
}

/**
 * Every file under `dir` (relative paths): what a done marker vouches for. Hidden names are left out:
 * the marker itself, and temporary files of killed writers, which a cleanup may remove at any time.
 */
export function listFiles(dir: string, sub = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, sub), { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    const rel = sub ? join(sub, e.name) : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out;
}

/** fsyncs the files and their directories, so that a marker written after them never outlives them. */
async function syncFiles(dir: string, files: string[]): Promise<void> {
  const dirs = new Set<string>([dir]);
  for (const f of files) {
    const fd = openSync(join(dir, f), 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    for (let d = dirname(join(dir, f)); relative(dir, d) && !relative(dir, d).startsWith('..'); d = dirname(d)) dirs.add(d);
  }
  for (const d of dirs) await fsyncDir(d);
}

/** Marks a stage done after its files exist and are on disk; the marker lists them. */
export async function finishStage(dir: string, m: Omit<Marker, 'done' | 'files'>, files = listFiles(dir)): Promise<void> {
  await syncFiles(dir, files);
  await writeMarker(dir, { ...m, done: true, files });
}

export type StageState = { state: 'done' } | { state: 'resume' } | { state: 'fresh'; wipe: boolean; missing?: string[] };

/**
 * 'done' (reuse), 'resume' (same inputs, unfinished) or 'fresh' (to wipe: new or changed inputs, or a
 * done marker whose files are missing). `required`: files a done stage has whatever its marker lists
 * (markers written before they listed files vouch for these).
 */
export function stageState(dir: string, hash: string, required: string[]): StageState {
  const m = readMarker(dir);
  if (!m || m.hash !== hash) return { state: 'fresh', wipe: existsSync(dir) };
  if (!m.done) return { state: 'resume' };
  const missing = [...new Set([...required, ...(m.files ?? [])])].filter((f) => !existsSync(join(dir, f)));
  return missing.length ? { state: 'fresh', wipe: true, missing } : { state: 'done' };
}

/** Wipes a stage's folder and marks it started (not done) with its hash. */
export async function openFresh(dir: string, hash: string): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  await writeMarker(dir, { hash, done: false });
}
