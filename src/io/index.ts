// SPDX-License-Identifier: MIT
export * from './tensor.js';
export {
  readSafetensors,
  writeSafetensors,
  readHeader,
  parseHeader,
  buildHeader,
  mapTensors,
  planWindows,
  maxBufferBytes,
  checkTensor,
  MAX_HEADER_BYTES,
  type SafetensorsEntry,
  type SafetensorsHeader,
  type ReadOptions,
  type HeaderEntryInput,
} from './safetensors.js';
export {
  openCheckpoint,
  loadTensors,
  loadModelDir,
  saveModelDir,
  readPeftAdapter,
  writePeftAdapter,
  planShards,
  shardName,
  indexJson,
  describeCheckpoint,
  DEFAULT_SHARD_SIZE,
  SIDECAR_FILES,
  INDEX_NAME,
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  type Checkpoint,
  type CheckpointKind,
  type TensorLocation,
} from './checkpoint.js';
export { atomicWriteFile, atomicWriteDir, tempPathFor, tempFilesIn, removeStaleTemps, parseTempName, type TempFile } from './atomic.js';
export { realTarget, checkOutputDisjoint, type NamedInput } from './overlap.js';
