// SPDX-License-Identifier: MIT
// Fault injection for the crash-safety tests: RSOUP_FAULT=<stage>:<point> SIGKILLs this process at that
// point, as a power cut or `kill -9` would. tests/pipeline-lock.test.ts walks every point listed here,
// and fails on a listed point that the run never reaches (it must die there, not finish).
import { SoupError } from '../errors.js';

/** The named points of the base stage, in the order a build passes them. */
export const BASE_FAULT_POINTS = [
  'after-corpus', // the training text is written in the work dir
  'after-tokenizer', // the tokenizer is trained and saved in the work dir
  'after-weights', // the pre-trained weights are saved (staged, not yet the model dir)
  'after-model', // the complete model dir is renamed into place; the work dir is not yet removed
  'after-prompts', // prompts.json is written; no marker yet
  'after-marker', // the done marker is written; the lock is still held
] as const;
export type BaseFaultPoint = (typeof BASE_FAULT_POINTS)[number];

const POINTS: Record<string, readonly string[]> = { base: BASE_FAULT_POINTS };

/** Throws on an RSOUP_FAULT that names no point (a typo would silently test nothing). */
export function checkFaultEnv(): void {
  const f = process.env.RSOUP_FAULT;
  if (!f) return;
  const [stage, point] = f.split(':');
  if (!POINTS[stage]?.includes(point)) {
    throw new SoupError(
      'ERR_SOUP_CONFIG',
      `RSOUP_FAULT=${f}: unknown fault point (known: ${Object.entries(POINTS)
        .flatMap(([s, ps]) => ps.map((p) => `${s}:${p}`))
        .join(', ')})`,
    );
  }
}

export function faultPoint(stage: 'base', point: BaseFaultPoint): void {
  if (process.env.RSOUP_FAULT === `${stage}:${point}`) process.kill(process.pid, 'SIGKILL');
}
