// SPDX-License-Identifier: MIT
// An output must never replace or land inside what it is made from. Paths are compared by identity, not
// spelling: real paths (symlinks and '..' resolved, trailing slashes ignored) and, where both exist,
// device and inode (a hard link is the same file under another name).
import { realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { SoupError } from '../errors.js';

/** The real path of `p`; for a path that does not exist yet, its nearest existing ancestor's real path
 *  joined with the rest, so a symlinked parent directory still resolves. */
export function realTarget(p: string): string {
  const abs = resolve(p);
  try {
    return realpathSync(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(realTarget(parent), basename(abs));
  }
}

function identity(p: string): string | undefined {
  try {
    const s = statSync(p);
    return `${s.dev}:${s.ino}`;
  } catch {
    return undefined;
  }
}

const inside = (child: string, dir: string) => child.startsWith(dir.endsWith(sep) ? dir : dir + sep);

export interface NamedInput {
  /** How the user named it: "sources[1]", "base". */
  label: string;
  path: string;
  /** Files the input reads besides its path (a checkpoint's shards, which may be symlinks elsewhere). */
  files?: string[];
}

/** Refuses an output equal to an input, inside an input dir, or containing an input, naming both. */
export function checkOutputDisjoint(out: string, inputs: NamedInput[], outFlag = 'out'): void {
  const realOut = realTarget(out);
  const outId = identity(realOut);
  for (const inp of inputs) {
    for (const p of [inp.path, ...(inp.files ?? [])]) {
      const real = realTarget(p);
      const what = p === inp.path ? `${inp.label} '${inp.path}'` : `${inp.label} '${inp.path}' (its file '${p}')`;
      const same = real === realOut || (outId !== undefined && identity(real) === outId);
      const fail = (relation: string) =>
        new SoupError(
          'ERR_SOUP_INVALID_ARG',
          `${outFlag} '${out}' ${relation} ${what}${real !== resolve(p) || realOut !== resolve(out) ? ` (real paths '${realOut}' and '${real}')` : ''}: writing it would destroy an input; choose another ${outFlag}`,
        );
      if (same) throw fail('is');
      if (inside(realOut, real)) throw fail('is inside');
      if (inside(real, realOut)) throw fail('contains');
    }
  }
}
