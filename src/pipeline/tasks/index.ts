// SPDX-License-Identifier: MIT
// The experiments, registered in one table: a config file names its task at the top (`task: text`, the
// default, `locomotion` or `diffusion`), and `rsoup run` and `rsoup demo --task` dispatch through here.
// Text experiments run through src/pipeline/run.ts (stages, locks, executors); the other two through their
// own runners, configured by a strict YAML over their demo's settings.
import { SoupError } from '../../errors.js';
import { unknownKeyMessage } from '../../util/config.js';
import { DIFFUSION_DEMO, runDiffusionDemo, type DiffusionSettings } from './diffusion/index.js';
import { parseLocomotion, runLocomotionDemo, type LocomotionInput } from './locomotion/index.js';

export const TASK_NAMES = ['text', 'locomotion', 'diffusion'] as const;
export type TaskName = (typeof TASK_NAMES)[number];

export interface TaskRunOptions {
  /** Run dir (overrides the config's `output`). */
  out?: string;
  dryRun?: boolean;
  json?: boolean;
}

/** How `rsoup run` / `rsoup demo` start a task other than text (the text task needs the CLI's printer). */
export const TASKS: Record<Exclude<TaskName, 'text'>, { run: (config: Record<string, unknown>, where: string, o: TaskRunOptions) => Promise<unknown> }> = {
  locomotion: {
    run: (config, where, o) => {
      parseLocomotion(config, where); // named errors before anything runs
      return runLocomotionDemo({
        overrides: config as LocomotionInput,
        out: o.out,
        dryRun: o.dryRun,
        onEvent: o.json ? (e) => process.stdout.write(`${JSON.stringify(e)}\n`) : undefined,
      });
    },
  },
  diffusion: {
    run: (config, where, o) => runDiffusionDemo({ settings: diffusionSettings(config, where), out: o.out, dryRun: o.dryRun, json: o.json }),
  },
};

/** The task a config document names (`task:`, default text), and the document without that key. */
export function taskOf(doc: unknown, where: string): { task: TaskName; config: Record<string, unknown> } {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new SoupError('ERR_SOUP_CONFIG', `${where}: expected a mapping of settings`);
  const { task = 'text', ...config } = doc as Record<string, unknown>;
  if (!(TASK_NAMES as readonly unknown[]).includes(task))
    throw new SoupError('ERR_SOUP_CONFIG', `${where}: task: unknown task ${JSON.stringify(task)} (tasks: ${TASK_NAMES.join(', ')})`);
  return { task: task as TaskName, config };
}

const isPlain = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** A diffusion config over the demo's settings: every key must be one of the demo's (at any depth, named
 *  with its path and the nearest accepted key), and a value replaces the demo's with the same type. */
export function diffusionSettings(config: Record<string, unknown>, where: string): DiffusionSettings {
  const merge = <T extends object>(base: T, over: Record<string, unknown>, path: string): T => {
    const out: T = { ...base };
    for (const [k, v] of Object.entries(over)) {
      const at = path ? `${path}.${k}` : k;
      // unet takes the UNet's own fields (checked by the model when it is built)
      if (!(k in base) && path !== 'unet') throw new SoupError('ERR_SOUP_CONFIG', `${where}: ${at}: ${unknownKeyMessage(k, Object.keys(base))}`);
      const b: unknown = Reflect.get(base, k);
      if (isPlain(b) && path !== 'unet') {
        if (!isPlain(v)) throw new SoupError('ERR_SOUP_CONFIG', `${where}: ${at}: expected a mapping`);
        Reflect.set(out, k, merge(b, v, at));
      } else {
        if (b !== undefined && (Array.isArray(b) !== Array.isArray(v) || (!Array.isArray(b) && typeof b !== typeof v)))
          throw new SoupError('ERR_SOUP_CONFIG', `${where}: ${at}: expected ${Array.isArray(b) ? 'a list' : `a ${typeof b}`}, got ${JSON.stringify(v)}`);
        Reflect.set(out, k, v);
      }
    }
    return out;
  };
  return merge(structuredClone(DIFFUSION_DEMO), config, '');
}
