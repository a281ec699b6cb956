// SPDX-License-Identifier: MIT
// Shared CLI plumbing: human output on stderr, JSON lines on stdout, errors, progress bars.
import { SoupError } from '../errors.js';

export class UsageError extends Error {}

export function reportError(err: unknown): void {
  if (err instanceof SoupError) process.stderr.write(`rsoup: error [${err.code}]: ${err.message}\n`);
  else if (err instanceof UsageError) process.stderr.write(`rsoup: usage error: ${err.message}\n`);
  else process.stderr.write(`rsoup: error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
}

export function jsonLine(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/** A one-line progress bar on stderr, drawn only when stderr is a TTY. */
export function progressBar(label: string): { update(frac: number, extra?: string): void; done(): void } {
  const tty = process.stderr.isTTY;
  let last = -1;
  return {
    update(frac, extra = '') {
      if (!tty) return;
      const pct = Math.floor(frac * 100);
      if (pct === last) return;
      last = pct;
      const width = 30;
      const fill = Math.round(frac * width);
      process.stderr.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${pct}% ${extra}`);
    },
    done() {
      if (tty && last >= 0) process.stderr.write('\n');
    },
  };
}
