// SPDX-License-Identifier: MIT
// Training core: LLaMA-architecture causal LM with LoRA and a value head (libtorch, its own native
// thread), KV-cache generation, PPO with trl 0.4.x semantics.
export * from './llama.js';
export * from './ppo.js';
export * from './pretrain.js';
export { randomLlamaWeights, llamaShapes } from './testing.js';
export type { ModelHandle, TensorGroup } from './native.js';
export * from './diffusion.js';
export * from './control.js';
