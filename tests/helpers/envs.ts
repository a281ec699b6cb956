// One way for env tests to make VecEnvs: every env made through the returned factory is closed after the file.
import { afterAll } from 'vitest';
import { VecEnv } from '../../src/envs/index.js';

export function envFactory(): (opts: Parameters<typeof VecEnv.create>[0]) => Promise<VecEnv> {
  const made: VecEnv[] = [];
  afterAll(async () => {
    for (const e of made) await e.close();
  });
  return async (opts) => {
    const env = await VecEnv.create(opts);
    made.push(env);
    return env;
  };
}
