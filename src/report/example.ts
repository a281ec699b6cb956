// SPDX-License-Identifier: MIT
// A small synthetic rewarded-soups result (two rewards, two experts, 11 soups, 5 MORL runs) shaped like
// the paper's Fig. 1(b): used for docs/img/front-example.png and in tests. Not real measurements.
import type { FrontPlotData } from './plots.js';

export function exampleFrontData(): FrontPlotData & { objectives: [string, string] } {
  const e1 = [0.92, 0.18];
  const e2 = [0.22, 0.88];
  const soups = Array.from({ length: 11 }, (_, i) => {
    const t = i / 10;
    // Above the experts' segment (linear mode connectivity holds), a little asymmetric.
    const bump = 0.55 * t * (1 - t);
    return { lambda: t, rewards: [(1 - t) * e1[0] + t * e2[0] + bump * (0.9 - 0.2 * t), (1 - t) * e1[1] + t * e2[1] + bump * (0.7 + 0.2 * t)] };
  });
  // MORL trades blows with the soups: a little better in the middle, worse near the ends.
  const morl = [0.25, 0.5, 0.75].map((mu) => {
    const s = soups[Math.round(mu * 10)].rewards;
    const lift = 0.035 * Math.sin(Math.PI * mu) - 0.01;
    return { mu, rewards: [s[0] + lift, s[1] + lift * 0.8] };
  });
  return {
    objectives: ['R1: summary reward', 'R2: faithfulness reward'],
    soups,
    morl,
    experts: [
      { rewards: e1, name: 'θ1' },
      { rewards: e2, name: 'θ2' },
    ],
    init: { rewards: [0.3, 0.26], name: 'init' },
  };
}
