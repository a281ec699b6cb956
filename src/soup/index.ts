// SPDX-License-Identifier: MIT
export {
  interpolate,
  prepareInterpolation,
  allocateTensors,
  checkSameTensors,
  type InterpolateOptions,
  type InterpolateStats,
  type PreparedSoup,
  type PrepareOptions,
  type SoupRunOptions,
  type Simd,
} from './interpolate.js';
export { merge, checkSameLayout, type MergeOptions, type MergeReport, type MergeProgress } from './merge.js';
export { resolveWeights, type WeightRules } from './weights.js';
export { parseAdapter, catAdapters, baseNameFor, type LoraMode, type LoraModule, type ParsedAdapter } from './lora.js';
export { checkDevice, type Device } from './device.js';
