// SPDX-License-Identifier: MIT
// Plots: the Vega-Lite specs carry the right data, the SVG names axes/legend/labels, the PNG decodes to
// the expected size with the series colours and drawn text (fonts found), and bad input is named.
import { describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { SoupError } from '../src/index.js';
import { frontPlot, rewardVsLambdaPlot, spiderPlot } from '../src/report/index.js';
import { lambdaNotation, modelColor } from '../src/report/index.js';
import { exampleFrontData } from '../src/report/example.js';

type Row = Record<string, unknown>;
const layersOf = (spec: unknown) => (spec as { layer: Array<{ data?: { values: Row[] } }> }).layer;

function svgSize(svg: string): [number, number] {
  const m = /<svg[^>]*width="([\d.]+)" height="([\d.]+)"/.exec(svg);
  expect(m).not.toBeNull();
  return [Number(m![1]), Number(m![2])];
}

function countColour(png: PNG, hex: string, tol = 40): number {
  const r = parseInt(hex.slice(1, 3), 16);
  const g = parseInt(hex.slice(3, 5), 16);
  const b = parseInt(hex.slice(5, 7), 16);
  let n = 0;
  for (let i = 0; i < png.data.length; i += 4) {
    if (Math.abs(png.data[i] - r) + Math.abs(png.data[i + 1] - g) + Math.abs(png.data[i + 2] - b) < tol) n++;
  }
  return n;
}

/** Dark pixels in a band of rows: text (title) is the only dark thing at the top of the image. */
function darkPixelsInRows(png: PNG, y0: number, y1: number): number {
  let n = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = 0; x < png.width; x++) {
      const i = 4 * (y * png.width + x);
      if (png.data[i] < 60 && png.data[i + 1] < 60 && png.data[i + 2] < 60) n++;
    }
  }
  return n;
}

describe('frontPlot', () => {
  it('draws soups labelled by λ, MORL by μ, experts, init, the dashed LMC segment, axis names and a legend', async () => {
    const data = exampleFrontData();
    const plot = await frontPlot(data, { png: true, scale: 2 });
    const rows = (plot.spec as unknown as { data: { values: Row[] } }).data.values;
    const bySeries = (s: RegExp) => rows.filter((r) => s.test(String(r.series)));
    expect(bySeries(/Rewarded soups/)).toHaveLength(11);
    expect(bySeries(/MORL/)).toHaveLength(data.morl!.length);
    // named experts are series of their own, in their report-wide colours
    expect(bySeries(/^θ[12]$/).map((r) => r.series)).toEqual(['θ1', 'θ2']);
    expect(bySeries(/Initialisation/)).toHaveLength(1);
    const seg = bySeries(/LMC bound/);
    expect(seg.map((r) => [r.x, r.y])).toEqual(data.experts!.map((e) => [e.rewards[0], e.rewards[1]]));
    // Soup rows carry their rewards and λ labels in λ order.
    expect(bySeries(/Rewarded soups/).map((r) => r.label)).toEqual(['0', '0.1', '0.2', '0.3', '0.4', '0.5', '0.6', '0.7', '0.8', '0.9', '1']);
    expect(bySeries(/Rewarded soups/)[3].x).toBe(data.soups[3].rewards[0]);
    // The LMC layer is dashed.
    expect(JSON.stringify(plot.spec)).toContain('"strokeDash":[6,4]');

    const svg = plot.svg;
    for (const text of [
      'R1: summary reward',
      'R2: faithfulness reward',
      'Rewarded soups θ(λ) (labels: λ)',
      'MORL (labels: μ)',
      'Initialisation',
      "LMC bound: experts' segment",
      '>0.3<',
      '>0.75<',
      '>θ1<',
      '>init<',
    ]) {
      expect(svg).toContain(text);
    }
    expect(svg).toMatch(/stroke-dasharray="6,4"/);

    const png = PNG.sync.read(Buffer.from(plot.png!));
    const [w, h] = svgSize(svg);
    expect(png.width).toBe(Math.round(2 * w));
    expect(png.height).toBe(Math.round(2 * h));
    expect(countColour(png, '#1f62b4')).toBeGreaterThan(2000); // soups: curve + markers + labels
    expect(countColour(png, '#e8710a')).toBeGreaterThan(300); // MORL
    expect(countColour(png, modelColor('expert', 0))).toBeGreaterThan(100); // expert θ1
    expect(countColour(png, modelColor('expert', 1))).toBeGreaterThan(100); // expert θ2
    // Title text actually rasterised (a missing font would leave this band white).
    expect(darkPixelsInRows(png, 0, 60)).toBeGreaterThan(500);
  });

  it('draws ±1 s.e. bars around each point that has standard errors, and unnamed experts share one series', async () => {
    const data = exampleFrontData();
    const se = [0.013, 0.021];
    const plot = await frontPlot(
      {
        ...data,
        soups: data.soups.map((s) => ({ ...s, stderr: se })),
        experts: data.experts!.map((e) => ({ rewards: e.rewards })),
      },
      { png: true, scale: 2 },
    );
    const rows = (plot.spec as unknown as { data: { values: Row[] } }).data.values;
    const soup3 = rows.filter((r) => /Rewarded soups/.test(String(r.series)))[3];
    const [x, y] = [data.soups[3].rewards[0], data.soups[3].rewards[1]];
    expect([soup3.x0, soup3.x1, soup3.y0, soup3.y1]).toEqual([x - se[0], x + se[0], y - se[1], y + se[1]]);
    expect(rows.filter((r) => r.series === 'Experts θᵢ')).toHaveLength(2);
    expect(rows.filter((r) => r.series === 'Experts θᵢ').every((r) => r.x0 === undefined)).toBe(true);
    // the bars are rules in the SVG: 11 soups × 2 directions
    expect((plot.svg.match(/aria-roledescription="rule mark"/g) ?? []).length).toBeGreaterThanOrEqual(22);
    expect(plot.svg).toContain('Experts θᵢ');
    await expect(frontPlot({ ...data, soups: [{ lambda: 0, rewards: [1, 2], stderr: [0.1, NaN] }] })).rejects.toThrow(/soups\[0\]\.stderr\[1\] is NaN/);
  });

  it('rejects points that are not 2 finite rewards, naming the point', async () => {
    const data = exampleFrontData();
    await expect(frontPlot({ ...data, soups: [{ lambda: 0, rewards: [1, NaN] }] })).rejects.toThrow(/soups\[0\]\.rewards\[1\] is NaN/);
    await expect(frontPlot({ ...data, morl: [{ mu: 0, rewards: [1, 2, 3] }] })).rejects.toThrow(/morl\[0\]\.rewards must have 2 rewards/);
    await expect(frontPlot({ ...data, objectives: ['a', 'b', 'c'] })).rejects.toBeInstanceOf(SoupError);
  });
});

describe('rewardVsLambdaPlot', () => {
  it('one line per reward against λ; normalised values span [0, 1]', async () => {
    const data = exampleFrontData();
    const plot = await rewardVsLambdaPlot({ objectives: data.objectives, soups: data.soups }, { normalize: true, png: true });
    const rows = (plot.spec as unknown as { data: { values: Row[] } }).data.values;
    expect(rows).toHaveLength(22);
    const r1 = rows.filter((r) => r.reward === data.objectives[0]).map((r) => r.value as number);
    expect(Math.min(...r1)).toBe(0);
    expect(Math.max(...r1)).toBe(1);
    // Unnormalised value check at λ = 0.3.
    const raw = await rewardVsLambdaPlot({ objectives: data.objectives, soups: data.soups });
    const at = (raw.spec as unknown as { data: { values: Row[] } }).data.values.find((r) => r.lambda === 0.3 && r.reward === data.objectives[1]);
    expect(at!.value).toBe(data.soups[3].rewards[1]);
    expect(raw.png).toBeUndefined();
    expect(plot.svg).toContain('R1: summary reward');
    expect(plot.svg).toContain('λ (weight of expert 2');
    // named experts: one λ notation, error bars scaled with the normalisation
    const se = [0.02, 0.01];
    const named = await rewardVsLambdaPlot(
      { objectives: data.objectives, experts: ['expert-a', 'expert-b'], soups: data.soups.map((s) => ({ ...s, stderr: se })) },
      { normalize: true },
    );
    expect(lambdaNotation(['expert-a', 'expert-b'])).toBe('λ (weight of expert-b: θ(λ) = (1 − λ)·θ[expert-a] + λ·θ[expert-b])');
    expect(named.svg).toContain('λ = weight of expert-b (1 − λ on expert-a)');
    const nrows = (named.spec as unknown as { data: { values: Row[] } }).data.values;
    const r0 = data.soups.map((s) => s.rewards[0]);
    const range = Math.max(...r0) - Math.min(...r0);
    const at3 = nrows.find((r) => r.lambda === 0.3 && r.reward === data.objectives[0])!;
    expect((at3.hi as number) - (at3.value as number)).toBeCloseTo(se[0] / range, 12);
    expect((at3.value as number) - (at3.lo as number)).toBeCloseTo(se[0] / range, 12);
    const png = PNG.sync.read(Buffer.from(plot.png!));
    expect(darkPixelsInRows(png, 0, 50)).toBeGreaterThan(300);
  });

  it('needs a scalar λ (two experts) and matching reward counts', async () => {
    await expect(rewardVsLambdaPlot({ objectives: ['a', 'b'], soups: [{ lambda: [0.2, 0.3, 0.5], rewards: [1, 2] }] })).rejects.toThrow(
      /soups\[0\]\.lambda has 3 entries/,
    );
    await expect(rewardVsLambdaPlot({ objectives: ['a', 'b'], soups: [{ lambda: 0.5, rewards: [1] }] })).rejects.toThrow(/soups\[0\]\.rewards has 1 entries/);
  });
});

describe('spiderPlot', () => {
  it('puts each model on normalised spokes: best value at radius 1, worst at 0.1; labels name axis and range', async () => {
    const objectives = ['BLEU1', 'BLEU4', 'ROUGE', 'CIDEr'];
    const series = [
      { name: 'soup', rewards: [0.83, 0.41, 0.61, 1.4] },
      { name: 'expert A', rewards: [0.85, 0.4, 0.6, 1.35] },
      { name: 'init', rewards: [0.8, 0.39, 0.59, 1.3] },
    ];
    const plot = await spiderPlot({ objectives, series }, { png: true });
    const layers = layersOf(plot.spec);
    const polys = layers[layers.length - 1].data!.values;
    const radiusOf = (name: string, k: number) => {
      const p = polys.find((r) => r.series === name && r.order === k)!;
      return Math.hypot(p.x as number, p.y as number);
    };
    expect(radiusOf('expert A', 0)).toBeCloseTo(1, 12);
    expect(radiusOf('init', 0)).toBeCloseTo(0.1, 12);
    expect(radiusOf('soup', 0)).toBeCloseTo(0.1 + (0.9 * (0.83 - 0.8)) / 0.05, 12);
    expect(radiusOf('soup', 3)).toBeCloseTo(1, 12);
    // Closed polygons: first point repeated.
    expect(polys.filter((r) => r.series === 'soup')).toHaveLength(5);
    for (const o of objectives) expect(plot.svg).toContain(o);
    expect(plot.svg).toContain('CIDEr [1.3, 1.4]');
    expect(plot.svg).toContain('expert A');
    // colours given per model are kept (the report's one colour per model)
    const colored = await spiderPlot({
      objectives,
      series: series.map((x, i) => ({ ...x, color: ['#123456', modelColor('expert', 0), modelColor('init')][i] })),
    });
    expect(colored.svg).toContain('#123456');
    const png = PNG.sync.read(Buffer.from(plot.png!));
    expect(darkPixelsInRows(png, 0, 50)).toBeGreaterThan(300);
  });

  it('needs at least 3 rewards', async () => {
    await expect(spiderPlot({ objectives: ['a', 'b'], series: [{ name: 's', rewards: [1, 2] }] })).rejects.toThrow(/at least 3 rewards/);
    await expect(spiderPlot({ objectives: ['a', 'b', 'c'], series: [{ name: 's', rewards: [1, 2] }] })).rejects.toThrow(
      /series\[0\] \(s\)\.rewards has 2 entries/,
    );
  });
});
