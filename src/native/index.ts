// SPDX-License-Identifier: MIT
// The typed face of the two addons: where they are looked for, what they export, and why loading failed.
//   core  (node-gyp)  build/Release/soup_core.node        merges, safetensors; no libtorch needed
//   torch (cmake-js)  build-torch/Release/soup_torch.node training core, CUDA
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { SoupError } from '../errors.js';
import type { CoreAddon } from './core.js';
import type { TorchAddon } from './torch.js';

export type * from './types.js';
export type * from './core.js';
export type * from './torch.js';
export { torchFunctions } from './torch.js';
export { callNative, callNativeSync, controlFor, abortedError, type NativeCallOptions } from './call.js';

const require = createRequire(import.meta.url);
/** The package root (dist/native/.. or src/native/..). */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function loadAddon<T>(name: string, dirs: string[], remedies: string[]): T {
  const tried: string[] = [];
  const errors: string[] = [];
  for (const d of dirs) {
    const p = join(packageRoot, d, `${name}.node`);
    tried.push(p);
    if (!existsSync(p)) continue;
    try {
      return require(p) as T;
    } catch (e) {
      errors.push(`${p}: ${(e as Error).message}`);
    }
  }
  throw new SoupError(
    'ERR_SOUP_NATIVE_LOAD',
    [
      `could not load the native addon '${name}'.`,
      `Paths tried:\n  ${tried.join('\n  ')}`,
      ...(errors.length ? [`Errors:\n  ${errors.join('\n  ')}`] : []),
      `Possible remedies:\n  - ${remedies.join('\n  - ')}`,
      `Run 'rsoup doctor' for a full report.`,
    ].join('\n'),
  );
}

let core: CoreAddon | undefined;
let torch: TorchAddon | undefined;

/** The libtorch-free addon (merges, safetensors, bandwidth probe). */
export function coreAddon(): CoreAddon {
  // a build from source first (a checkout's `npm run build`, or an install without a matching prebuilt),
  // then the prebuilt that the package ships (scripts/prepack.mjs, scripts/install.mjs)
  core ??= loadAddon<CoreAddon>(
    'soup_core',
    ['build/Release', 'build/Debug', `prebuilds/${process.platform}-${process.arch}`],
    [
      "an installed package: 'npx rsoup setup' builds it from source (needs g++, make and python3)",
      "a checkout of the project: 'npm run build' (needs g++ and make)",
    ],
  );
  return core;
}

/** The libtorch addon. Sets the thread-pool environment first: libgomp and OpenBLAS read it once, at load. */
export function torchAddon(): TorchAddon {
  if (torch) return torch;
  // GNU OpenMP spin-waits by default: with anything else on the CPU, small libtorch ops get ~10x slower.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  // OpenBLAS keeps its own pool that torch::set_num_threads does not control.
  process.env.OPENBLAS_NUM_THREADS ??= String(cpus().length);
  torch = loadAddon<TorchAddon>(
    'soup_torch',
    ['build-torch/Release', 'build-torch/Debug', 'build-torch'],
    [
      "build it: 'npx rsoup setup' (an installed package) or 'npm run build' (a checkout); both need cmake, g++ and libtorch: apt-get install -y cmake g++ libtorch-dev libopenblas0-pthread",
      'a libtorch ABI mismatch shows as an undefined symbol: rebuild against the libtorch installed now',
    ],
  );
  return torch;
}

/** True when the torch addon can be loaded (without throwing). */
export function hasTorch(): boolean {
  try {
    torchAddon();
    return true;
  } catch {
    return false;
  }
}
