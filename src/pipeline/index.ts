// SPDX-License-Identifier: MIT
// The rewarded-soup experiment end to end (`rsoup run`, `rsoup demo`): base → experts → MORL → sweep →
// report, each stage cached on disk by the hash of its inputs. Design notes: docs/experiment.md.
export { loadExperiment, checkFiles, ExperimentSchema, LEXICON_TYPE, type Experiment, type ExperimentInput, type ExperimentFile } from './config.js';
export {
  runExperiment,
  planExperiment,
  fmtTime,
  plannedRuns,
  stageHashes,
  runPaths,
  type RunEvent,
  type RunOptions,
  type StageName,
  type PlannedRun,
} from './run.js';
export {
  hashOf,
  canonical,
  recordedHash,
  cachedStage,
  timedStage,
  progressEvent,
  readMarker,
  stageState,
  type HashOptions,
  type Marker,
  type StageState,
  type StageEvent,
  type ProgressEvent,
} from './stages.js';
export { runSweep, catLora, type EvalEntry, type SweepInput } from './sweep.js';
export { buildReport, writeReport, readReport, type Report, type ReportInput, type RunCost } from './report.js';
export { buildRewards, lexiconReward, lexiconFraction } from './rewards.js';
export { pretrainTiny, tinyLlamaConfig, packCorpus, type PretrainSpec, type PretrainResult } from './base.js';
export { readFortunes, trainTokenizer, byteChar, fnv1a, FORTUNE_DIR, SPECIAL_TOKENS, type Corpus } from './corpus.js';
export { runJobs, workerEnv } from './jobs.js';
export {
  tryLock,
  liveHolders,
  holderState,
  describeHolder,
  lockPath,
  lockLabel,
  locksDir,
  RunDirBusyError,
  RunLock,
  LOCK_LEASE_S,
  LOCK_HEARTBEAT_S,
  type LockInfo,
  type LockKey,
  type LockStage,
} from './lock.js';
export { BASE_FAULT_POINTS, checkFaultEnv, type BaseFaultPoint } from './fault.js';
export { runPPOJob, truncateHistory, type PPOJob, type WorkerMessage } from './worker.js';
export { DEMO_EXPERIMENT, demoExperiment } from './demo.js';
