// SPDX-License-Identifier: MIT
// Nothing is half-written: outputs go to a temporary name beside the target, are fsynced, then renamed.
import { open, rename, rm, mkdir, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { existsSync, readdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { pidAlive } from './process.js';
import { SoupError } from '../errors.js';

/** A temporary path in the same directory as `target` (same filesystem, so rename is atomic). Its name
 *  carries host and pid, so a later writer can tell a dead process's leftover from live work. */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.tmp-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

export interface TempFile {
  path: string;
  /** The output it was written for, in the same directory. */
  target: string;
  host: string;
  pid: number;
  /** True when it belongs to a process of this host that no longer runs. */
  stale: boolean;
}

const TEMP_NAME = /^\.(.+)\.tmp-(.+)-(\d+)-[0-9a-f]{8}(?:\.old)?$/;

/** Parses a temp file name made by tempPathFor (undefined for any other name). */
export function parseTempName(dir: string, name: string): TempFile | undefined {
  const m = TEMP_NAME.exec(name);
  if (!m) return undefined;
  const pid = Number(m[3]);
  const host = m[2];
  return { path: join(dir, name), target: join(dir, m[1]), host, pid, stale: host === hostname() && pid !== process.pid && !pidAlive(pid) };
}

/** The temp files in `dir` (for one target, or all), live or stale. */
export function tempFilesIn(dir: string, target?: string): TempFile[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: TempFile[] = [];
  for (const n of names) {
    const t = parseTempName(dir, n);
    if (t && (target === undefined || t.target === join(dir, basename(target)))) out.push(t);
  }
  return out;
}

/** Every temp file under `root` (recursively; symlinks not followed, temp dirs not entered). */
export function findTempFiles(root: string): TempFile[] {
  const out: TempFile[] = [];
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const t = parseTempName(dir, e.name);
      if (t) out.push(t);
      else if (e.isDirectory()) walk(join(dir, e.name));
    }
  };
  walk(root);
  return out;
}

/** Removes what dead processes of this host left while writing `target` (SIGKILL, a second Ctrl-C);
 *  never another host's temps, whose processes this host cannot see. */
export async function removeStaleTemps(target: string): Promise<TempFile[]> {
  const stale = tempFilesIn(dirname(target), target).filter((t) => t.stale);
  for (const t of stale) await rm(t.path, { recursive: true, force: true });
  return stale;
}

export function ioError(what: string, path: string, e: unknown): SoupError {
  const msg = (e as Error).message?.replace(/^\[ERR_SOUP_[A-Z_]+\]\s*/, '') ?? String(e);
  if (e instanceof SoupError) return e;
  return new SoupError('ERR_SOUP_IO', `${what} '${path}': ${msg}`, { cause: e });
}

export async function fsyncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Some filesystems refuse fsync on directories; the rename itself is still atomic.
  }
}

export async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += (await fh.write(bytes, off, bytes.length - off)).bytesWritten;
}

/** Writes the chunks to `target` atomically. */
export async function atomicWriteFile(target: string, chunks: Uint8Array[]): Promise<void> {
  await removeStaleTemps(target);
  const tmp = tempPathFor(target);
  try {
    const fh = await open(tmp, 'w');
    try {
      for (const c of chunks) await writeAll(fh, c);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
    await fsyncDir(dirname(target));
  } catch (e) {
    await rm(tmp, { force: true });
    throw ioError('writing', target, e);
  }
}

/**
 * Builds a directory atomically: `fill(tmpDir)` writes into a fresh temporary directory beside `target`,
 * which then replaces `target` (an existing target is moved aside first and removed after).
 */
export async function atomicWriteDir(target: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  await removeStaleTemps(target);
  const tmp = tempPathFor(target);
  try {
    await mkdir(tmp, { recursive: false });
  } catch (e) {
    throw ioError('cannot create a directory beside', target, e);
  }
  try {
    await fill(tmp);
    await fsyncDir(tmp);
    if (existsSync(target)) {
      const old = tempPathFor(target) + '.old';
      await rename(target, old);
      await rename(tmp, target);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, target);
    }
    await fsyncDir(dirname(target));
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e instanceof SoupError ? e : ioError('writing', target, e);
  }
}
