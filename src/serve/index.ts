// SPDX-License-Identifier: MIT
// `rsoup serve`: θ(λ) for any λ, chosen per request, exact, batched (docs/serve.md).
export { serve, type ServeOptions, type RunningServer } from './server.js';
export {
  SoupEngine,
  adapterModules,
  loadExpert,
  SOUP_MODES,
  type SoupMode,
  type ExpertAdapter,
  type ExpertModule,
  type EngineOptions,
  type SeqSpec,
  type StepResult,
} from './engine.js';
export { Scheduler, QueueFullError, type GenParams, type GenResult, type FinishReason, type SchedulerOptions } from './scheduler.js';
export { byteCodec, tokenizerCodec, type TextCodec } from './codec.js';
export { readRunDir, type RunDirInfo, type FrontPoint } from './rundir.js';
export type { ServeMetrics } from './metrics.js';
