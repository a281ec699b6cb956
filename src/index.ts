// SPDX-License-Identifier: MIT
// rewarded-soups: the public API. The root holds what merging needs and runs on any machine with the core
// addon: interpolation and file merges (soup), checkpoint formats (io), the Pareto analysis (pareto) and
// the errors. Everything else is a subpath (package.json "exports"): rewarded-soups/train, /rewards,
// /pipeline, /envs, /report, /serve. Names exported here are part of the contract.
export * from './errors.js';
export * from './io/index.js';
export * from './soup/index.js';
export * from './pareto/index.js';
