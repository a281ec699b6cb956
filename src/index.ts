// SPDX-License-Identifier: MIT
// rewarded-soups: the public API. Each area re-exports its own index; names are part of the contract.
export * from './errors.js';
export * from './io/index.js';
export * from './soup/index.js';
export * from './pareto/index.js';
export * from './report/index.js';
export * from './rewards/index.js';
export * from './train/index.js';
export * from './envs/index.js';
export * from './pipeline/index.js';
export * from './serve/index.js';
export { coreAddon, torchAddon, hasTorch } from './native/index.js';
