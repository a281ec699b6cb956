// SPDX-License-Identifier: MIT
// Fresh child processes for the benches that time one trial per process (ppo, diffusion, control, envs,
// memory, load): the child is the CLI itself, `rsoup bench <name> --child <trial as JSON>` (a hidden
// option), which runs one trial and prints its result as the last line of its stdout.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../native/index.js';
import { SoupError, type SoupErrorCode } from '../errors.js';

/** The CLI entry beside this module: dist/cli/main.js when compiled (what users run), src/cli/main.ts
 *  when this module itself runs from source under tsx (whose loader the child gets from execArgv). */
export function cliEntry(): string {
  const here = fileURLToPath(import.meta.url);
  const p = fileURLToPath(new URL(`../cli/main${extname(here)}`, import.meta.url));
  return existsSync(p) ? p : join(packageRoot, 'dist', 'cli', 'main.js');
}

/** Where a bench's non-Node baseline lives (bench/ppo_torch.py, bench/torch_merge.py): under the package
 *  root, in a checkout (the published package does not ship bench/). */
export function harnessPath(name: string): string {
  return join(packageRoot, 'bench', name);
}

/** Why a PyTorch baseline (the script `name` under bench/) cannot run here, or '' when it can. */
export function torchMissingReason(name: string): string {
  const script = harnessPath(name);
  if (!existsSync(script)) return `${script} not found (a checkout of the project has it)`;
  if (!existsSync('/usr/bin/python3') || spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0)
    return '/usr/bin/python3 -c "import torch" failed';
  return '';
}

export interface ChildOptions {
  /** The child's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Pass the child's stderr through (progress of long trials); by default it is kept and shown on failure. */
  inheritStderr?: boolean;
}

/** The Node flags a child keeps: module loaders (tsx when this runs from source) and memory/GC settings.
 *  Never -e/-p/--input-type (the child would run that script again instead of the CLI), --inspect or --test. */
function childExecArgv(argv: readonly string[]): string[] {
  const withValue = new Set(['--import', '--loader', '--experimental-loader', '--require', '-r', '--conditions', '-C']);
  const keep =
    /^--(import|loader|experimental-loader|require|conditions|max-old-space-size|max-semi-space-size|stack-size)=|^--(expose-gc|enable-source-maps|no-warnings)$/;
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (withValue.has(argv[i]) && i + 1 < argv.length) out.push(argv[i], argv[++i]);
    else if (keep.test(argv[i])) out.push(argv[i]);
  }
  return out;
}

/** Set in every trial process: a trial never starts trials of its own. */
const CHILD_ENV = 'RSOUP_BENCH_CHILD';

/** Runs `rsoup bench <bench> --child <JSON of trial>` in a fresh process and returns the JSON of the
 *  last line it printed on stdout; rejects with its error (a SoupError keeps its code) when it fails. */
export async function runChild<T>(bench: string, trial: unknown, o: ChildOptions = {}): Promise<T> {
  if (process.env[CHILD_ENV]) throw new SoupError('ERR_SOUP_INTERNAL', `rsoup bench ${bench}: a trial process may not start trials (${CHILD_ENV} is set)`);
  const args = [...childExecArgv(process.execArgv), cliEntry(), 'bench', bench, '--child', JSON.stringify(trial)];
  const env = { ...(o.env ?? process.env), [CHILD_ENV]: '1' };
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', o.inheritStderr ? 'inherit' : 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-8000)));
  const code = await new Promise<number>((res, rej) => {
    child.on('error', rej);
    child.on('close', (c, sig) => res(c ?? (sig ? 128 : 1)));
  });
  const last = out.trim().split('\n').at(-1) ?? '';
  if (code === 0 && last) return JSON.parse(last) as T;
  const what = `the ${bench} trial ${JSON.stringify(trial)} failed in its process (exit ${code})`;
  // A SoupError in the child keeps its code here: `rsoup: error [ERR_SOUP_X]: message`.
  const soup = /^rsoup: error \[(ERR_SOUP_[A-Z_]+)\]: (.*)$/m.exec(err);
  if (soup) throw new SoupError(soup[1] as SoupErrorCode, `${what}: ${soup[2]}`);
  throw new SoupError('ERR_SOUP_INTERNAL', `${what}${err ? `:\n${err.trim()}` : ''}`);
}
