// SPDX-License-Identifier: MIT
// Pareto analysis: fronts, exact hypervolume (standard and the paper's lower-is-better variant),
// morl-baselines indicators, the LMC check and λ selection. Conventions: docs/pareto.md.
export type { Sense, SenseOption, Points } from './validate.js';
export { dominates, paretoFront, type ParetoOptions, type ParetoFront } from './front.js';
export {
  hypervolume,
  paperHypervolume,
  paperBox,
  nadirRef,
  type HypervolumeOptions,
  type PaperHypervolumeOptions,
} from './hypervolume.js';
export {
  expectedUtility,
  maximumUtilityLoss,
  igd,
  sparsity,
  cardinality,
  defaultUtilityWeights,
  type IndicatorOptions,
  type UtilityOptions,
} from './indicators.js';
export { lambdaGrid, simplexGrid, dirichletSample, seededRandom } from './lambda.js';
export {
  lmcGaps,
  selectLambda,
  lambdaVector,
  type Candidate,
  type ExpertRewards,
  type LmcRow,
  type LmcReport,
  type Preference,
  type Selected,
  type MuRuleSelection,
  type LambdaSelection,
} from './soups.js';
export { meanStderr, pairedContrast, sampleSd, validationTestSplit, type Paired } from './paired.js';
export {
  analyse,
  contrasts,
  hypervolumeRatio,
  AnalysisError,
  REF_MARGIN,
  type Analysis,
  type AnalysisInput,
  type Contrasts,
  type ExpertModel,
  type LmcAnalysisRow,
  type Scored,
  type SetAnalysis,
  type SoupModel,
} from './analysis.js';
