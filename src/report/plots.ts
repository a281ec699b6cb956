// SPDX-License-Identifier: MIT
// The rewarded-soups figures as Vega-Lite specs: the front (paper Fig. 1b), reward against λ (Fig. 4b)
// and a spider map for N >= 3 rewards (Fig. 2f). Each returns { spec, svg, png? }.
import { SoupError } from '../errors.js';
import { PLOT_CONFIG, renderSpec, type Plot, type RenderOptions, type TopLevelSpec } from './render.js';

export interface PlotOptions extends RenderOptions {
  title?: string;
  width?: number;
  height?: number;
}

/** λ or μ: a scalar t (two experts / rewards: [1 - t, t]) or a vector. */
export type Coefficients = number | ArrayLike<number>;

export interface FrontPlotData {
  /** The two reward names: x axis, y axis. */
  objectives: [string, string] | string[];
  /** Evaluated soups θ(λ); drawn as a curve in λ order, each point labelled by λ. */
  soups: ReadonlyArray<{ lambda: Coefficients; rewards: ArrayLike<number>; name?: string }>;
  /** MORL models trained on Σ μ_i R_i; each point labelled by μ. */
  morl?: ReadonlyArray<{ mu: Coefficients; rewards: ArrayLike<number>; name?: string }>;
  /** The experts θ_i (the dashed segment between them is the LMC lower bound). */
  experts?: ReadonlyArray<{ rewards: ArrayLike<number>; name?: string }>;
  /** The shared pre-trained initialisation. */
  init?: { rewards: ArrayLike<number>; name?: string };
}

const SERIES = {
  soup: 'Rewarded soups θ(λ) (labels: λ)',
  morl: 'MORL (labels: μ)',
  expert: 'Experts θᵢ',
  init: 'Initialisation',
  lmc: "LMC bound: experts' segment",
} as const;

// Legend symbols: a dashed stroke for the LMC segment, markers for the rest.
const SHAPES: Record<string, string> = {
  [SERIES.soup]: 'circle',
  [SERIES.morl]: 'square',
  [SERIES.expert]: 'diamond',
  [SERIES.init]: 'cross',
  [SERIES.lmc]: 'M-1,0H-0.45M-0.2,0H0.2M0.45,0H1',
};
const COLORS: Record<string, string> = {
  [SERIES.soup]: '#1f62b4',
  [SERIES.morl]: '#e8710a',
  [SERIES.expert]: '#2a9d3a',
  [SERIES.init]: '#444444',
  [SERIES.lmc]: '#777777',
};

function bad(message: string): SoupError {
  return new SoupError('ERR_SOUP_INVALID_ARG', message);
}

function finite(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`${what} is ${String(v)}; expected a finite number`);
  return v;
}

function xy(r: ArrayLike<number> | undefined, what: string): [number, number] {
  if (!r || typeof r !== 'object' || r.length !== 2) {
    throw bad(`${what} must have 2 rewards (one per plotted objective), got ${r && typeof r === 'object' ? r.length : String(r)}`);
  }
  return [finite(r[0], `${what}[0]`), finite(r[1], `${what}[1]`)];
}

/** The scalar used to order and label: t itself, or the last entry of a 2-vector [1 - t, t]. */
export function coefficientScalar(c: Coefficients): number | undefined {
  if (typeof c === 'number') return c;
  if (c.length === 2) return c[1];
  return undefined;
}

/** Short label: "0.3" for a scalar or a 2-vector, "(0.2, 0.3, 0.5)" otherwise. */
export function coefficientLabel(c: Coefficients): string {
  const t = coefficientScalar(c);
  const fmt = (v: number) => String(Number(v.toFixed(3)));
  return t !== undefined ? fmt(t) : `(${Array.from(c as ArrayLike<number>, fmt).join(', ')})`;
}

function checkObjectives(objectives: unknown, n: number | undefined, what: string): string[] {
  if (!Array.isArray(objectives) || objectives.some((o) => typeof o !== 'string' || o.length === 0)) {
    throw bad(`${what}.objectives must be an array of reward names`);
  }
  if (n !== undefined && objectives.length !== n) throw bad(`${what}.objectives has ${objectives.length} names but ${n} are needed`);
  return objectives as string[];
}

/**
 * The paper's Fig. 1(b): the soups' curve (points labelled by λ), MORL points (labelled by μ) joined in
 * μ order, the experts, the initialisation and the dashed segment between experts (the LMC lower
 * bound). Axes are named by the rewards, the legend names every mark.
 */
export async function frontPlot(data: FrontPlotData, opts: PlotOptions = {}): Promise<Plot> {
  const [xName, yName] = checkObjectives(data?.objectives, 2, 'frontPlot data');
  if (!Array.isArray(data.soups)) throw bad('frontPlot data.soups must be an array');
  type Row = { x: number; y: number; series: string; label: string; order: number; group: string; side: string };
  const rows: Row[] = [];
  data.soups.forEach((s, i) => {
    const [x, y] = xy(s.rewards, `soups[${i}].rewards`);
    const t = coefficientScalar(s.lambda);
    rows.push({ x, y, series: SERIES.soup, label: coefficientLabel(s.lambda), order: t ?? i, group: 'soup', side: '' });
  });
  (data.morl ?? []).forEach((s, i) => {
    const [x, y] = xy(s.rewards, `morl[${i}].rewards`);
    const t = coefficientScalar(s.mu);
    rows.push({ x, y, series: SERIES.morl, label: coefficientLabel(s.mu), order: t ?? i, group: 'morl', side: '' });
  });
  const experts = (data.experts ?? []).map((e, i) => ({ xy: xy(e.rewards, `experts[${i}].rewards`), name: e.name ?? `θ${i + 1}` }));
  experts.forEach((e, i) => rows.push({ x: e.xy[0], y: e.xy[1], series: SERIES.expert, label: e.name, order: i, group: 'expert', side: '' }));
  if (data.init) {
    const [x, y] = xy(data.init.rewards, 'init.rewards');
    rows.push({ x, y, series: SERIES.init, label: data.init.name ?? 'init', order: 0, group: 'init', side: '' });
  }
  // Expert and init labels go on the side away from the centre of the data, where the curves are not.
  const cx = rows.reduce((a, r) => a + r.x, 0) / rows.length;
  const cy = rows.reduce((a, r) => a + r.y, 0) / rows.length;
  for (const r of rows) {
    if (r.series === SERIES.expert || r.series === SERIES.init) r.side = `${r.x >= cx ? 'right' : 'left'}-${r.y >= cy ? 'up' : 'down'}`;
  }
  // Dashed segments between every pair of experts (one pair for N = 2).
  for (let i = 0; i < experts.length; i++) {
    for (let j = i + 1; j < experts.length; j++) {
      const g = `lmc-${i}-${j}`;
      rows.push({ x: experts[i].xy[0], y: experts[i].xy[1], series: SERIES.lmc, label: '', order: 0, group: g, side: '' });
      rows.push({ x: experts[j].xy[0], y: experts[j].xy[1], series: SERIES.lmc, label: '', order: 1, group: g, side: '' });
    }
  }
  const present = (Object.values(SERIES) as string[]).filter((s) => rows.some((r) => r.series === s));
  const color = { field: 'series', type: 'nominal', title: null, scale: { domain: present, range: present.map((s) => COLORS[s]) } };
  const shape = { field: 'series', type: 'nominal', title: null, scale: { domain: present, range: present.map((s) => SHAPES[s]) } };
  const x = { field: 'x', type: 'quantitative', title: xName, scale: { zero: false, nice: true, padding: 28 } };
  const y = { field: 'y', type: 'quantitative', title: yName, scale: { zero: false, nice: true, padding: 28 } };
  const onlySeries = (...s: string[]) => ({ filter: { field: 'series', oneOf: s } });
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title ?? `Pareto front: ${xName} vs ${yName}`,
    width: opts.width ?? 520,
    height: opts.height ?? 380,
    config: PLOT_CONFIG,
    data: { values: rows },
    encoding: { x, y },
    layer: [
      {
        transform: [onlySeries(SERIES.lmc)],
        mark: { type: 'line', strokeDash: [6, 4], strokeWidth: 1.5 },
        encoding: { color, detail: { field: 'group' }, order: { field: 'order' } },
      },
      {
        transform: [onlySeries(SERIES.soup, SERIES.morl)],
        mark: { type: 'line', strokeWidth: 2 },
        encoding: { color, detail: { field: 'group' }, order: { field: 'order' } },
      },
      {
        transform: [{ filter: { not: { field: 'series', equal: SERIES.lmc } } }],
        mark: { type: 'point', filled: false, strokeWidth: 2, size: 70, opacity: 1 },
        encoding: {
          color,
          shape,
          size: { condition: { test: `datum.series === '${SERIES.expert}'`, value: 160 }, value: 70 },
        },
      },
      {
        // Soup labels below-left, towards the experts' segment (usually empty when LMC holds);
        // MORL labels above-right, outside both fronts.
        transform: [onlySeries(SERIES.soup)],
        mark: { type: 'text', dx: -9, dy: 12, fontSize: 11, align: 'right' },
        encoding: { text: { field: 'label' }, color },
      },
      {
        transform: [onlySeries(SERIES.morl)],
        mark: { type: 'text', dx: 10, dy: -10, fontSize: 11, align: 'left' },
        encoding: { text: { field: 'label' }, color },
      },
      ...(['right-up', 'right-down', 'left-up', 'left-down'] as const).map((side) => ({
        transform: [{ filter: { field: 'side', equal: side } }],
        mark: {
          type: 'text',
          dx: side.startsWith('right') ? 10 : -10,
          dy: side.endsWith('up') ? -14 : 16,
          align: side.startsWith('right') ? 'left' : 'right',
          fontSize: 12,
          fontWeight: 'bold',
        },
        encoding: { text: { field: 'label' }, color },
      })),
    ],
  } as unknown as TopLevelSpec;
  return renderSpec(spec, opts);
}

export interface RewardVsLambdaData {
  /** Reward names, one per entry of each soup's `rewards`. */
  objectives: string[];
  /** Soups of two experts: λ a scalar or [1 - λ, λ]. */
  soups: ReadonlyArray<{ lambda: Coefficients; rewards: ArrayLike<number> }>;
}

/**
 * The paper's Fig. 4(b): every evaluated reward against λ (two experts). With `normalize`, each reward
 * is min-max scaled to [0, 1] over the soups so rewards of different scales share the axis.
 */
export async function rewardVsLambdaPlot(data: RewardVsLambdaData, opts: PlotOptions & { normalize?: boolean } = {}): Promise<Plot> {
  const names = checkObjectives(data?.objectives, undefined, 'rewardVsLambdaPlot data');
  if (!Array.isArray(data.soups) || data.soups.length === 0) throw bad('rewardVsLambdaPlot data.soups is empty');
  const pts = data.soups.map((s, i) => {
    const t = coefficientScalar(s.lambda);
    if (t === undefined) throw bad(`soups[${i}].lambda has ${(s.lambda as ArrayLike<number>).length} entries; reward-vs-λ plots need two experts (a scalar λ)`);
    finite(t, `soups[${i}].lambda`);
    if (!s.rewards || s.rewards.length !== names.length) {
      throw bad(`soups[${i}].rewards has ${s.rewards?.length} entries but objectives names ${names.length}`);
    }
    return { t, r: Array.from(s.rewards, (v, k) => finite(v, `soups[${i}].rewards[${k}]`)) };
  });
  const rows: Array<{ lambda: number; reward: string; value: number }> = [];
  names.forEach((name, k) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const p of pts) {
      lo = Math.min(lo, p.r[k]);
      hi = Math.max(hi, p.r[k]);
    }
    for (const p of pts) {
      const v = opts.normalize ? (hi > lo ? (p.r[k] - lo) / (hi - lo) : 0.5) : p.r[k];
      rows.push({ lambda: p.t, reward: name, value: v });
    }
  });
  const color = { field: 'reward', type: 'nominal', title: 'reward', sort: names };
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title ?? 'Rewards of the soups against λ',
    width: opts.width ?? 480,
    height: opts.height ?? 320,
    config: PLOT_CONFIG,
    data: { values: rows },
    encoding: {
      x: { field: 'lambda', type: 'quantitative', title: 'λ (weight of expert 2: θ = (1 − λ)θ₁ + λθ₂)', scale: { domain: [Math.min(0, ...pts.map((p) => p.t)), Math.max(1, ...pts.map((p) => p.t))] } },
      y: { field: 'value', type: 'quantitative', title: opts.normalize ? 'reward (min-max normalised over the soups)' : 'reward', scale: { zero: false } },
      color,
    },
    layer: [
      { mark: { type: 'line', strokeWidth: 2 }, encoding: { order: { field: 'lambda' } } },
      { mark: { type: 'point', filled: true, size: 45 } },
    ],
  } as unknown as TopLevelSpec;
  return renderSpec(spec, opts);
}

export interface SpiderPlotData {
  /** N >= 3 reward names: one axis each. */
  objectives: string[];
  /** Models to compare (soups, MORL, experts...), one polygon each. */
  series: ReadonlyArray<{ name: string; rewards: ArrayLike<number> }>;
}

/**
 * The paper's Fig. 2(f) spider map for N >= 3 rewards. Each axis is min-max normalised over the plotted
 * series (worst at the centre ring 0, best at ring 1) and labelled with its reward name and range.
 * Polar coordinates are computed here, since Vega-Lite has no radar chart.
 */
export async function spiderPlot(data: SpiderPlotData, opts: PlotOptions = {}): Promise<Plot> {
  const names = checkObjectives(data?.objectives, undefined, 'spiderPlot data');
  const K = names.length;
  if (K < 3) throw bad(`spiderPlot needs at least 3 rewards, got ${K}; use frontPlot for 2`);
  if (!Array.isArray(data.series) || data.series.length === 0) throw bad('spiderPlot data.series is empty');
  const vals = data.series.map((s, i) => {
    if (!s.rewards || s.rewards.length !== K) throw bad(`series[${i}] (${s.name}).rewards has ${s.rewards?.length} entries but there are ${K} objectives`);
    return Array.from(s.rewards, (v, k) => finite(v, `series[${i}].rewards[${k}]`));
  });
  const lo = names.map((_, k) => Math.min(...vals.map((v) => v[k])));
  const hi = names.map((_, k) => Math.max(...vals.map((v) => v[k])));
  // Radius 0.1 for the worst value keeps polygons off the centre point.
  const radius = (v: number, k: number) => 0.1 + 0.9 * (hi[k] > lo[k] ? (v - lo[k]) / (hi[k] - lo[k]) : 1);
  const angle = (k: number) => -Math.PI / 2 + (2 * Math.PI * k) / K;
  const at = (r: number, k: number) => ({ x: r * Math.cos(angle(k)), y: -r * Math.sin(angle(k)) });
  const grid: Array<{ x: number; y: number; ring: string; order: number }> = [];
  for (const ring of [0.1, 0.325, 0.55, 0.775, 1]) {
    for (let k = 0; k <= K; k++) grid.push({ ...at(ring, k % K), ring: String(ring), order: k });
  }
  const spokes: Array<{ x: number; y: number; spoke: number; order: number }> = [];
  for (let k = 0; k < K; k++) {
    spokes.push({ x: 0, y: 0, spoke: k, order: 0 }, { ...at(1, k), spoke: k, order: 1 });
  }
  const fmt = (v: number) => String(Number(v.toPrecision(3)));
  const labels = names.map((n, k) => {
    const p = at(1.16, k);
    return { ...p, text: `${n} [${fmt(lo[k])}, ${fmt(hi[k])}]`, align: Math.abs(p.x) < 1e-9 ? 'center' : p.x > 0 ? 'left' : 'right' };
  });
  const polys: Array<{ x: number; y: number; series: string; order: number }> = [];
  data.series.forEach((s, i) => {
    for (let k = 0; k <= K; k++) polys.push({ ...at(radius(vals[i][k % K], k % K), k % K), series: s.name, order: k });
  });
  const size = opts.width ?? 420;
  // Equal units on both axes; the y range hugs the labels (an odd number of axes leaves the bottom empty).
  const xDomain = [-1.55, 1.55];
  const yDomain = [Math.min(...labels.map((l) => l.y)) - 0.15, Math.max(...labels.map((l) => l.y)) + 0.15];
  const height = opts.height ?? Math.round((size * (yDomain[1] - yDomain[0])) / (xDomain[1] - xDomain[0]));
  const axisOff = {
    x: { field: 'x', type: 'quantitative', axis: null, scale: { domain: xDomain, nice: false } },
    y: { field: 'y', type: 'quantitative', axis: null, scale: { domain: yDomain, nice: false } },
  };
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title ?? 'Spider map (each axis min-max normalised over the plotted models)',
    width: size,
    height,
    config: { ...PLOT_CONFIG, view: { stroke: null } },
    layer: [
      { data: { values: grid }, mark: { type: 'line', color: '#d0d0d0', strokeWidth: 1 }, encoding: { ...axisOff, detail: { field: 'ring' }, order: { field: 'order' } } },
      { data: { values: spokes }, mark: { type: 'line', color: '#bdbdbd', strokeWidth: 1 }, encoding: { ...axisOff, detail: { field: 'spoke' }, order: { field: 'order' } } },
      ...(['left', 'center', 'right'] as const).map((align) => ({
        data: { values: labels.filter((l) => l.align === align) },
        mark: { type: 'text', fontSize: 12, fontWeight: 'bold', baseline: 'middle', align },
        encoding: { ...axisOff, text: { field: 'text' } },
      })),
      {
        data: { values: polys },
        mark: { type: 'line', strokeWidth: 2 },
        encoding: { ...axisOff, color: { field: 'series', type: 'nominal', title: 'model', sort: data.series.map((s) => s.name) }, order: { field: 'order' } },
      },
      {
        data: { values: polys },
        mark: { type: 'point', filled: true, size: 30 },
        encoding: { ...axisOff, color: { field: 'series', type: 'nominal', title: 'model', sort: data.series.map((s) => s.name) } },
      },
    ],
  } as unknown as TopLevelSpec;
  return renderSpec(spec, opts);
}
