// SPDX-License-Identifier: MIT
// The rewarded-soups figures as Vega-Lite specs: the front (paper Fig. 1b), reward against λ (Fig. 4b)
// and a spider map for N >= 3 rewards (Fig. 2f). Each returns { spec, svg, png? }.
import { SoupError } from '../errors.js';
import { PLOT_CONFIG, renderSpec, type Plot, type RenderOptions } from './render.js';

export interface PlotOptions extends RenderOptions {
  title?: string;
  width?: number;
  height?: number;
}

/** λ or μ: a scalar t (two experts / rewards: [1 - t, t]) or a vector. */
export type Coefficients = number | ArrayLike<number>;

/** Mean rewards of one evaluated model, with their standard errors when known (drawn as ±1 s.e. bars). */
interface Point {
  rewards: ArrayLike<number>;
  stderr?: ArrayLike<number>;
  name?: string;
}

export interface FrontPlotData {
  /** The two reward names: x axis, y axis. */
  objectives: [string, string] | string[];
  /** Evaluated soups θ(λ); drawn as a curve in λ order, each point labelled by λ. */
  soups: ReadonlyArray<Point & { lambda: Coefficients }>;
  /** MORL models trained on Σ μ_i R_i; each point labelled by μ. */
  morl?: ReadonlyArray<Point & { mu: Coefficients }>;
  /** The experts θ_i (the dashed segment between them is the LMC lower bound). Named experts get a
   *  legend entry and a colour each (modelColor), the same as in every other plot of a report. */
  experts?: ReadonlyArray<Point>;
  /** The shared pre-trained initialisation. */
  init?: Point;
}

const SERIES = {
  soup: 'Rewarded soups θ(λ) (labels: λ)',
  morl: 'MORL (labels: μ)',
  expert: 'Experts θᵢ',
  init: 'Initialisation',
  lmc: "LMC bound: experts' segment",
} as const;

// Each series' legend symbol (a dashed stroke for the LMC segment, markers for the rest) and colour.
const STYLE: Record<string, { shape: string; color: string }> = {
  [SERIES.soup]: { shape: 'circle', color: '#1f62b4' },
  [SERIES.morl]: { shape: 'square', color: '#e8710a' },
  [SERIES.expert]: { shape: 'diamond', color: '#2a9d3a' },
  [SERIES.init]: { shape: 'cross', color: '#444444' },
  [SERIES.lmc]: { shape: 'M-1,0H-0.45M-0.2,0H0.2M0.45,0H1', color: '#777777' },
};
// One colour per expert, the same in the front, the training curves and the spider map.
const EXPERT_COLORS = ['#2a9d3a', '#b5179e', '#8c564b', '#17becf', '#bcbd22', '#7f7f7f'];
const MORL_SHADES = ['#e8710a', '#b35400', '#f5a35c', '#7a3900', '#ffc78f'];

/** The colour of a model in every plot of a report: the initialisation grey, soups blue, expert i its
 *  own colour, MORL run i a shade of MORL's orange. */
export function modelColor(kind: 'init' | 'soup' | 'expert' | 'morl' | 'ensemble', index = 0): string {
  if (kind === 'expert') return EXPERT_COLORS[index % EXPERT_COLORS.length];
  if (kind === 'morl') return MORL_SHADES[index % MORL_SHADES.length];
  if (kind === 'init') return STYLE[SERIES.init].color;
  if (kind === 'ensemble') return '#9467bd';
  return STYLE[SERIES.soup].color;
}

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
  type Row = {
    x: number;
    y: number;
    series: string;
    label: string;
    order: number;
    group: string;
    side: string;
    x0?: number;
    x1?: number;
    y0?: number;
    y1?: number;
  };
  const withSe = (row: Row, p: Point, what: string): Row => {
    if (p.stderr === undefined) return row;
    const [sx, sy] = xy(p.stderr, `${what}.stderr`);
    return { ...row, x0: row.x - sx, x1: row.x + sx, y0: row.y - sy, y1: row.y + sy };
  };
  const rows: Row[] = [];
  data.soups.forEach((s, i) => {
    const [x, y] = xy(s.rewards, `soups[${i}].rewards`);
    const t = coefficientScalar(s.lambda);
    rows.push(withSe({ x, y, series: SERIES.soup, label: coefficientLabel(s.lambda), order: t ?? i, group: 'soup', side: '' }, s, `soups[${i}]`));
  });
  (data.morl ?? []).forEach((s, i) => {
    const [x, y] = xy(s.rewards, `morl[${i}].rewards`);
    const t = coefficientScalar(s.mu);
    rows.push(withSe({ x, y, series: SERIES.morl, label: coefficientLabel(s.mu), order: t ?? i, group: 'morl', side: '' }, s, `morl[${i}]`));
  });
  // Named experts are series of their own (their colour in every plot); unnamed ones share "Experts θᵢ".
  const named = (data.experts ?? []).length > 0 && (data.experts ?? []).every((e) => e.name);
  const expertSeries = (i: number, name: string) => (named ? name : SERIES.expert);
  const experts = (data.experts ?? []).map((e, i) => ({ xy: xy(e.rewards, `experts[${i}].rewards`), name: e.name ?? `θ${i + 1}`, point: e }));
  experts.forEach((e, i) =>
    rows.push(
      withSe({ x: e.xy[0], y: e.xy[1], series: expertSeries(i, e.name), label: e.name, order: i, group: 'expert', side: '' }, e.point, `experts[${i}]`),
    ),
  );
  if (data.init) {
    const [x, y] = xy(data.init.rewards, 'init.rewards');
    rows.push(withSe({ x, y, series: SERIES.init, label: data.init.name ?? 'init', order: 0, group: 'init', side: '' }, data.init, 'init'));
  }
  // Expert and init labels go on the side away from the centre of the data, where the curves are not.
  const cx = rows.reduce((a, r) => a + r.x, 0) / rows.length;
  const cy = rows.reduce((a, r) => a + r.y, 0) / rows.length;
  for (const r of rows) {
    if (r.group === 'expert' || r.group === 'init') r.side = `${r.x >= cx ? 'right' : 'left'}-${r.y >= cy ? 'up' : 'down'}`;
  }
  // Dashed segments between every pair of experts (one pair for N = 2).
  for (let i = 0; i < experts.length; i++) {
    for (let j = i + 1; j < experts.length; j++) {
      const g = `lmc-${i}-${j}`;
      rows.push({ x: experts[i].xy[0], y: experts[i].xy[1], series: SERIES.lmc, label: '', order: 0, group: g, side: '' });
      rows.push({ x: experts[j].xy[0], y: experts[j].xy[1], series: SERIES.lmc, label: '', order: 1, group: g, side: '' });
    }
  }
  const order = [SERIES.soup, SERIES.morl, ...(named ? experts.map((e) => e.name) : [SERIES.expert]), SERIES.init, SERIES.lmc] as string[];
  const present = order.filter((s) => rows.some((r) => r.series === s));
  const colorOf = (s: string) =>
    STYLE[s]?.color ??
    modelColor(
      'expert',
      experts.findIndex((e) => e.name === s),
    );
  const shapeOf = (s: string) => (STYLE[s] ?? STYLE[SERIES.expert]).shape;
  const color = { field: 'series', type: 'nominal', title: null, scale: { domain: present, range: present.map(colorOf) } };
  const shape = { field: 'series', type: 'nominal', title: null, scale: { domain: present, range: present.map(shapeOf) } };
  const hasSe = rows.some((r) => r.x0 !== undefined);
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
      // ±1 standard error of each mean, horizontal (x reward) and vertical (y reward)
      ...(hasSe
        ? [
            {
              transform: [{ filter: 'isValid(datum.x0)' }],
              mark: { type: 'rule', strokeWidth: 1, opacity: 0.55 },
              encoding: { x: { field: 'x0', type: 'quantitative' }, x2: { field: 'x1' }, color },
            },
            {
              transform: [{ filter: 'isValid(datum.y0)' }],
              mark: { type: 'rule', strokeWidth: 1, opacity: 0.55 },
              encoding: { y: { field: 'y0', type: 'quantitative' }, y2: { field: 'y1' }, color },
            },
          ]
        : []),
      {
        transform: [{ filter: { not: { field: 'series', equal: SERIES.lmc } } }],
        mark: { type: 'point', filled: false, strokeWidth: 2, size: 70, opacity: 1 },
        encoding: {
          color,
          shape,
          size: { condition: { test: "datum.group === 'expert'", value: 160 }, value: 70 },
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
  };
  return renderSpec(spec, opts);
}

export interface RewardVsLambdaData {
  /** Reward names, one per entry of each soup's `rewards`. */
  objectives: string[];
  /** Soups of two experts: λ a scalar or [1 - λ, λ]; `stderr` draws ±1 s.e. bars. */
  soups: ReadonlyArray<{ lambda: Coefficients; rewards: ArrayLike<number>; stderr?: ArrayLike<number> }>;
  /** The two experts' names, for the λ notation on the axis: θ(λ) = (1 − λ)·θ[first] + λ·θ[second]. */
  experts?: [string, string] | string[];
  /** One colour per reward line (a report gives reward k its expert's colour). */
  colors?: string[];
}

/** The one λ notation of a report's plots and tables, with the experts named. */
export function lambdaNotation(experts?: ArrayLike<string>): string {
  if (!experts || experts.length !== 2) return 'λ (weight of expert 2: θ = (1 − λ)θ₁ + λθ₂)';
  return `λ (weight of ${experts[1]}: θ(λ) = (1 − λ)·θ[${experts[0]}] + λ·θ[${experts[1]}])`;
}

/** The same, short enough for an axis. */
function lambdaAxisTitle(experts?: ArrayLike<string>): string {
  if (!experts || experts.length !== 2) return 'λ (weight of expert 2: θ = (1 − λ)θ₁ + λθ₂)';
  return `λ = weight of ${experts[1]} (1 − λ on ${experts[0]})`;
}

/**
 * The paper's Fig. 4(b): every evaluated reward against λ (two experts). With `normalize`, each reward
 * is min-max scaled to [0, 1] over the soups so rewards of different scales share the axis (standard
 * errors scaled alike).
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
    if (s.stderr && s.stderr.length !== names.length) throw bad(`soups[${i}].stderr has ${s.stderr.length} entries but objectives names ${names.length}`);
    return {
      t,
      r: Array.from(s.rewards, (v, k) => finite(v, `soups[${i}].rewards[${k}]`)),
      se: s.stderr ? Array.from(s.stderr, (v, k) => finite(v, `soups[${i}].stderr[${k}]`)) : undefined,
    };
  });
  const rows: Array<{ lambda: number; reward: string; value: number; lo?: number; hi?: number }> = [];
  names.forEach((name, k) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const p of pts) {
      lo = Math.min(lo, p.r[k]);
      hi = Math.max(hi, p.r[k]);
    }
    const scale = opts.normalize ? (hi > lo ? 1 / (hi - lo) : 0) : 1;
    for (const p of pts) {
      const v = opts.normalize ? (hi > lo ? (p.r[k] - lo) * scale : 0.5) : p.r[k];
      rows.push({ lambda: p.t, reward: name, value: v, ...(p.se ? { lo: v - p.se[k] * scale, hi: v + p.se[k] * scale } : {}) });
    }
  });
  const color = {
    field: 'reward',
    type: 'nominal',
    title: 'reward',
    sort: names,
    ...(data.colors?.length === names.length ? { scale: { domain: names, range: data.colors } } : {}),
  };
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title ?? 'Rewards of the soups against λ',
    width: opts.width ?? 480,
    height: opts.height ?? 320,
    config: PLOT_CONFIG,
    data: { values: rows },
    encoding: {
      x: {
        field: 'lambda',
        type: 'quantitative',
        title: lambdaAxisTitle(data.experts),
        scale: { domain: [Math.min(0, ...pts.map((p) => p.t)), Math.max(1, ...pts.map((p) => p.t))] },
      },
      y: { field: 'value', type: 'quantitative', title: opts.normalize ? 'mean reward (min-max over the soups)' : 'mean reward', scale: { zero: false } },
      color,
    },
    layer: [
      ...(pts.some((p) => p.se)
        ? [{ mark: { type: 'rule', strokeWidth: 1.2, opacity: 0.6 }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } }]
        : []),
      { mark: { type: 'line', strokeWidth: 2 }, encoding: { order: { field: 'lambda' } } },
      { mark: { type: 'point', filled: true, size: 45 } },
    ],
  };
  return renderSpec(spec, opts);
}

export interface SpiderPlotData {
  /** N >= 3 reward names: one axis each. */
  objectives: string[];
  /** Models to compare (soups, MORL, experts...), one polygon each; `color` (all or none) keeps a model's
   *  colour from the report's other plots. */
  series: ReadonlyArray<{ name: string; rewards: ArrayLike<number>; color?: string }>;
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
  const colored = data.series.every((x) => x.color);
  const seriesColor = {
    field: 'series',
    type: 'nominal',
    title: 'model',
    sort: data.series.map((x) => x.name),
    ...(colored ? { scale: { domain: data.series.map((x) => x.name), range: data.series.map((x) => x.color) } } : {}),
  };
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
      {
        data: { values: grid },
        mark: { type: 'line', color: '#d0d0d0', strokeWidth: 1 },
        encoding: { ...axisOff, detail: { field: 'ring' }, order: { field: 'order' } },
      },
      {
        data: { values: spokes },
        mark: { type: 'line', color: '#bdbdbd', strokeWidth: 1 },
        encoding: { ...axisOff, detail: { field: 'spoke' }, order: { field: 'order' } },
      },
      ...(['left', 'center', 'right'] as const).map((align) => ({
        data: { values: labels.filter((l) => l.align === align) },
        mark: { type: 'text', fontSize: 12, fontWeight: 'bold', baseline: 'middle', align },
        encoding: { ...axisOff, text: { field: 'text' } },
      })),
      {
        data: { values: polys },
        mark: { type: 'line', strokeWidth: 2 },
        encoding: { ...axisOff, color: seriesColor, order: { field: 'order' } },
      },
      {
        data: { values: polys },
        mark: { type: 'point', filled: true, size: 30 },
        encoding: { ...axisOff, color: seriesColor },
      },
    ],
  };
  return renderSpec(spec, opts);
}
