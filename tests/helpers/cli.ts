// Runs the rsoup CLI from source (tsx), as a user would, capturing exit code and output.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const ROOT = join(__dirname, '..', '..');
// tsx by absolute URL, so the CLI also runs from a cwd outside the project (as users run it)
const ARGS = ['--import', pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href, join(ROOT, 'src', 'cli', 'main.ts')];

export function rsoup(args: string[], opts: { cwd?: string; input?: string } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...ARGS, ...args], { cwd: opts.cwd ?? ROOT, encoding: 'utf8', input: opts.input, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function rsoupAsync(args: string[]) {
  return spawn(process.execPath, [...ARGS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
}
