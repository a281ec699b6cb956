// SPDX-License-Identifier: MIT
// Nothing is half-written: outputs go to a temporary name beside the target, are fsynced, then renamed.
import { open, rename, rm, mkdir, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { SoupError } from '../errors.js';

/** A temporary path in the same directory as `target` (same filesystem, so rename is atomic). */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
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
