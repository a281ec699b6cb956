// SPDX-License-Identifier: MIT
// Worker thread of a VecEnv: its own MuJoCo WASM module and model, stepping envs [lo, hi) of the
// shared buffers when the main thread bumps the generation counter (protocol in vec.ts).
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { loadMujoco } from './mujoco.js';
import { EnvShard, loadEnvModel, makeBuffers, type EnvDims } from './shard.js';
import type { EnvConfig } from './specs.js';
import { CMD_CLOSE, CMD_RESET, CMD_STEP, C_CMD, C_DONE, C_ERR, C_GEN } from './protocol.js';

interface Init {
  cfg: EnvConfig;
  data: SharedArrayBuffer;
  dims: EnvDims;
  ctrl: SharedArrayBuffer;
  seed: SharedArrayBuffer;
  lo: number;
  hi: number;
  port: MessagePort;
}

async function main(): Promise<void> {
  const init = workerData as Init;
  const ctrl = new Int32Array(init.ctrl);
  const seed = new Float64Array(init.seed);
  let shard: EnvShard;
  try {
    const mj = await loadMujoco();
    const model = loadEnvModel(mj, init.cfg);
    shard = new EnvShard(mj, model, init.cfg, makeBuffers(init.data, init.dims), init.lo, init.hi);
  } catch (err) {
    parentPort!.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err), code: (err as { code?: string }).code });
    return;
  }
  parentPort!.postMessage({ type: 'ready' });
  let gen = 0;
  for (;;) {
    Atomics.wait(ctrl, C_GEN, gen);
    gen = Atomics.load(ctrl, C_GEN);
    const cmd = Atomics.load(ctrl, C_CMD);
    if (cmd === CMD_CLOSE) break;
    try {
      if (cmd === CMD_STEP) shard.step();
      else if (cmd === CMD_RESET) shard.reset(Number.isNaN(seed[0]) ? undefined : seed[0]);
    } catch (err) {
      init.port.postMessage({ message: err instanceof Error ? err.message : String(err), code: (err as { code?: string }).code });
      Atomics.store(ctrl, C_ERR, 1);
    }
    Atomics.add(ctrl, C_DONE, 1);
    Atomics.notify(ctrl, C_DONE);
  }
  shard.dispose();
  shard.model.delete();
  init.port.close();
}

void main();
