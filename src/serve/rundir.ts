// SPDX-License-Identifier: MIT
// What `rsoup serve RUN_DIR` reads from a run dir (layout: docs/experiment.md, src/pipeline/run.ts):
// experiment.json (the config the run used), the base model (base/model or the config's base.model),
// each expert's PEFT adapter (experts/expert-<reward>/adapter) and, when the report stage has run,
// report.json (the front drawn in the playground). Only finished stages are read: a stage whose
// .stage.json is missing or not done is an error naming it.
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { SoupError } from '../errors.js';
import type { SoupMode } from './engine.js';

export interface FrontPoint {
  name: string;
  kind: string;
  lambda?: number[];
  mu?: number[];
  rewards: number[];
}

export interface RunDirInfo {
  runDir: string;
  name: string;
  base: string;
  experts: Array<{ name: string; dir: string }>;
  rewardNames: string[];
  /** The reward specs of the config and the dir they are relative to (for buildRewards). */
  rewardSpecs: unknown[];
  baseDir: string;
  /** The interpolation the run's sweep used: 'soup-ab' (A/B, the paper's) or 'soup' (dense). */
  defaultMode: SoupMode;
  /** The evaluated models of report.json (undefined before the report stage). */
  front?: FrontPoint[];
}

function stageDone(dir: string): boolean {
  const p = join(dir, '.stage.json');
  if (!existsSync(p)) return false;
  try {
    const m = JSON.parse(readFileSync(p, 'utf8')) as { done?: boolean; files?: string[] };
    return m.done === true && (m.files ?? []).every((f) => existsSync(join(dir, f)));
  } catch {
    return false;
  }
}

export function readRunDir(dir: string): RunDirInfo {
  const runDir = resolve(dir);
  if (!existsSync(runDir)) throw new SoupError('ERR_SOUP_IO', `run dir '${dir}' does not exist`);
  const xp = join(runDir, 'experiment.json');
  if (!existsSync(xp))
    throw new SoupError(
      'ERR_SOUP_CONFIG',
      `'${dir}' is not a run dir: it has no experiment.json (made by \`rsoup run\` / \`rsoup demo\`); to serve a model and adapters directly use --base DIR --experts A B …`,
    );
  let x: Record<string, unknown>;
  try {
    x = JSON.parse(readFileSync(xp, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new SoupError('ERR_SOUP_FORMAT', `${xp}: not JSON (${(e as Error).message})`);
  }
  const baseCfg = (x.base ?? {}) as { model?: string; pretrain?: unknown };
  const baseDir = typeof x.baseDir === 'string' ? x.baseDir : runDir;
  const rewardNames = Array.isArray(x.rewardNames) ? (x.rewardNames as string[]) : [];
  if (rewardNames.length < 2) throw new SoupError('ERR_SOUP_FORMAT', `${xp}: no rewardNames (a run dir of an older version?)`);
  const baseStage = join(runDir, 'base');
  if (!stageDone(baseStage))
    throw new SoupError(
      'ERR_SOUP_CONFIG',
      `run dir '${dir}': stage 'base' is not finished (${join(baseStage, '.stage.json')} missing or not done): finish the run with \`rsoup run\` first`,
    );
  const base = baseCfg.model ? (isAbsolute(baseCfg.model) ? baseCfg.model : join(baseDir, baseCfg.model)) : join(baseStage, 'model');
  const experts = rewardNames.map((n) => {
    const d = join(runDir, 'experts', `expert-${n}`);
    if (!stageDone(d) || !existsSync(join(d, 'adapter', 'adapter_config.json')))
      throw new SoupError(
        'ERR_SOUP_CONFIG',
        `run dir '${dir}': stage 'experts' is not finished: expert-${n} (${join(d, '.stage.json')} missing or not done): finish the run with \`rsoup run\` first`,
      );
    return { name: `expert-${n}`, dir: join(d, 'adapter') };
  });
  const sweep = (x.sweep ?? {}) as { interpolation?: string };
  let front: FrontPoint[] | undefined;
  const rp = join(runDir, 'report.json');
  if (existsSync(rp) && stageDone(join(runDir, 'sweep'))) {
    try {
      const r = JSON.parse(readFileSync(rp, 'utf8')) as { models?: FrontPoint[] };
      front = Array.isArray(r.models) ? r.models.map((m) => ({ name: m.name, kind: m.kind, lambda: m.lambda, mu: m.mu, rewards: m.rewards })) : undefined;
    } catch {
      front = undefined;
    }
  }
  return {
    runDir,
    name: typeof x.name === 'string' ? x.name : 'run',
    base,
    experts,
    rewardNames,
    rewardSpecs: Array.isArray(x.rewards) ? (x.rewards as unknown[]) : [],
    baseDir,
    defaultMode: sweep.interpolation === 'dense' ? 'soup' : 'soup-ab',
    front,
  };
}
