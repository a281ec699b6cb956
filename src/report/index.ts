// SPDX-License-Identifier: MIT
// Plots: Vega-Lite specs rendered headless to SVG (vega) and PNG (resvg-js). Conventions: docs/pareto.md.
export { renderSpec, svgToPng, PLOT_CONFIG, PLOT_FONT, type Plot, type RenderOptions, type TopLevelSpec } from './render.js';
export {
  frontPlot,
  rewardVsLambdaPlot,
  spiderPlot,
  coefficientLabel,
  coefficientScalar,
  modelColor,
  lambdaNotation,
  type PlotOptions,
  type Coefficients,
  type FrontPlotData,
  type RewardVsLambdaData,
  type SpiderPlotData,
} from './plots.js';
