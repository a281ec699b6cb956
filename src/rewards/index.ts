// SPDX-License-Identifier: MIT
// Reward adapters: one Reward interface; caption/summary metrics with the reference tools' numbers;
// lexicon text rewards; ONNX and HTTP reward models; MORL scalarisation and other combinators;
// locomotion control rewards; YAML declarations. Design notes: docs/rewards.md.
export {
  BatchedReward,
  FnReward,
  checkFinite,
  requireReferences,
  type BatchingOptions,
  type Reward,
  type Sample,
  type ScoreOptions,
} from './types.js';
export { porterStem } from './porter.js';
export * from './bleu.js';
export { rouge, rougeMulti, rougeTokenize, type RougeOptions, type RougeScore, type RougeType } from './rouge.js';
export * from './coco.js';
export { WordNet, defaultWordNet } from './wordnet.js';
export * from './meteor.js';
export * from './text.js';
export * from './metric-rewards.js';
export * from './onnx.js';
export * from './http.js';
export * from './combinators.js';
export * from './control.js';
export * from './config.js';
export * from './image.js';
export * from './image-classifier.js';
