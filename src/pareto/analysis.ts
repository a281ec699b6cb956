// SPDX-License-Identifier: MIT
// The analysis of a set of evaluated models, assembled once for every consumer: the text, locomotion and
// diffusion reports and `rsoup pareto`. For each named point set (the soups, MORL's set, …): its Pareto
// front, cardinality, hypervolume with respect to one reference point, and the paper's lower-is-better
// hypervolume in one box; the LMC gaps of the soups against the experts, each with its standard error
// (paired over the evaluation samples when every model kept per-sample scores, else the independence
// bound); and the λ chosen for a preference. Conventions: docs/pareto.md.
import { paretoFront } from './front.js';
import { hypervolume, nadirRef, paperBox, paperHypervolume } from './hypervolume.js';
import { cardinality } from './indicators.js';
import { pairedContrast, type Paired } from './paired.js';
import { lmcGaps, selectLambda, type Candidate, type ExpertRewards, type LambdaSelection, type LmcReport, type LmcRow, type Preference } from './soups.js';
import { invalid, type Points, type SenseOption } from './validate.js';
import { SoupError } from '../errors.js';

/** The reports' reference point when none is given: the nadir of the points minus this share of the range. */
export const REF_MARGIN = 0.1;

// ---- paired statistics ---------------------------------------------------------------------------------

/** A model as contrasts see it: mean rewards, their standard errors and, where kept, the per-sample scores. */
export interface Scored {
  rewards: ArrayLike<number>;
  stderr?: ArrayLike<number>;
  /** perSample[k][p]: reward k on evaluation sample p (a prompt, an episode, a caption), the same samples
   *  (and seeds) for every model. */
  perSample?: ReadonlyArray<ArrayLike<number>>;
}

export interface Contrasts {
  /** Whether contrasts are paired (every model kept per-sample scores). */
  paired: boolean;
  /** What the standard errors are, for a report. */
  rule: string;
  /** Σ cᵢ R_k(mᵢ) on reward k: paired over the samples (`idx`: a subset of them), else the independence bound. */
  contrast(k: number, terms: ReadonlyArray<readonly [number, Scored]>, idx?: readonly number[]): Paired;
  /** The bound that treats the models as independent: mean Σ cᵢ R̄_k(mᵢ), se √(Σ (cᵢ seᵢ)²). */
  independent(k: number, terms: ReadonlyArray<readonly [number, Scored]>): Paired;
}

/**
 * Contrasts between the `models` of one evaluation: paired when every model has per-sample scores (or as
 * `o.paired` says), else the independence bound over `o.samples` evaluation samples.
 */
export function contrasts(models: ReadonlyArray<Scored>, o: { samples: number; paired?: boolean }): Contrasts {
  const paired = o.paired ?? models.every((m) => !!m.perSample);
  const independent = (k: number, terms: ReadonlyArray<readonly [number, Scored]>): Paired => {
    const mean = terms.reduce((a, [c, e]) => a + c * e.rewards[k], 0);
    const se = Math.sqrt(terms.reduce((a, [c, e]) => a + (c * (e.stderr?.[k] ?? 0)) ** 2, 0));
    return { mean, se, n: o.samples, z: se > 0 ? mean / se : mean === 0 ? 0 : mean > 0 ? Infinity : -Infinity };
  };
  return {
    paired,
    rule: paired ? 'paired: standard error of the per-prompt differences' : 'independence bound (no per-prompt scores)',
    contrast: (k, terms, idx) =>
      paired
        ? pairedContrast(
            terms.map(([c, e]) => [c, e.perSample![k]]),
            idx,
          )
        : independent(k, terms),
    independent,
  };
}

// ---- the analysis ------------------------------------------------------------------------------------------

export interface SetAnalysis {
  /** Points in the set. */
  count: number;
  /** Indices (into the set) of its non-dominated points, ascending. */
  front: number[];
  /** Distinct non-dominated points. */
  cardinality: number;
  /** Hypervolume with respect to the analysis' reference point (0 when no point dominates it). */
  hypervolume: number;
  /** The paper's lower-is-better hypervolume in the box; null when the box is flat. */
  paperHypervolume: number | null;
}

/** An LMC row with the standard error of each gap (`contrast[k]`: the gap as a contrast, paired or not). */
export interface LmcAnalysisRow extends LmcRow {
  contrast: Paired[];
}

export interface Analysis<K extends string = string> {
  ref: number[];
  /** True when the reference point was given, false when it is the nadir rule's. */
  refGiven: boolean;
  /** The paper hypervolume's box (best and worst of each objective over `boxSets`); undefined when flat. */
  box?: { utopia: number[]; lower: number[] };
  sets: Record<K, SetAnalysis>;
  /** Present when soups and experts were given (lmcGaps' errors, e.g. for no soups, as AnalysisError). */
  lmc?: Omit<LmcReport, 'rows'> & { rows: LmcAnalysisRow[] };
  /** Present when a preference was given (utilities over maximised objectives; rewards as given). */
  selection?: LambdaSelection;
}

/** A soup: its λ, rewards and what contrasts need (stderr, per-sample scores). */
export type SoupModel = Candidate & Omit<Scored, 'rewards'>;
/** An expert: its rewards and what contrasts need. */
export type ExpertModel = Scored & { name?: string };

export interface AnalysisInput<K extends string = string> {
  /** Named point sets, each analysed on its own (front, hypervolumes); keeps its order. */
  sets: Record<K, Points>;
  /** The hypervolume reference point; default: nadirRef(`refPoints`) with margin REF_MARGIN. */
  ref?: ArrayLike<number>;
  /** The points the default reference point is taken over (default: every set's points). */
  refPoints?: Points;
  /** 'max' (default), 'min' or one per objective. */
  sense?: SenseOption;
  /** The point sets whose bounding box the paper hypervolume uses (default: every set). */
  boxSets?: ReadonlyArray<Points>;
  /** LMC gaps of these soups against `experts` (λ's entries in the experts' order). */
  soups?: ReadonlyArray<SoupModel>;
  experts?: ReadonlyArray<ExpertModel | ExpertRewards>;
  /** LMC gaps ≥ −tolerance count as holding (default 0). */
  tolerance?: number;
  /** How LMC gaps get their standard errors (default: contrasts over the soups and experts, paired when
   *  all kept per-sample scores, over as many samples as the first has). */
  contrasts?: Contrasts;
  /** λ selection over the soups for this preference (minimised objectives are flipped first). */
  preference?: Preference;
}

/** Thrown for an LMC input the gaps cannot be computed from (e.g. a λ of the wrong length); names the part. */
export class AnalysisError extends SoupError {
  constructor(
    readonly part: 'lmc' | 'selection',
    cause: SoupError,
  ) {
    super(cause.code, cause.message, { cause });
  }
}

/** soups / MORL hypervolume, ∞ when MORL's is 0. */
export const hypervolumeRatio = (soups: number, morl: number): number => (morl > 0 ? soups / morl : Infinity);

export function analyse<K extends string>(input: AnalysisInput<K>): Analysis<K> {
  const names = Object.keys(input.sets) as K[];
  if (!names.length) throw invalid('analyse: sets is empty; pass at least one named point set');
  const all = names.flatMap((n) => [...input.sets[n]]);
  const sense = input.sense;
  const ref = input.ref !== undefined ? Array.from(input.ref) : nadirRef(input.refPoints ?? all, { sense, margin: REF_MARGIN });
  let box: Analysis['box'];
  try {
    box = paperBox(input.boxSets ?? names.map((n) => input.sets[n]), { sense });
  } catch {
    box = undefined; // every point equal on some objective: no box, no paper hypervolume
  }
  const sets = {} as Record<K, SetAnalysis>;
  for (const n of names) {
    const pts = input.sets[n];
    sets[n] = {
      count: pts.length,
      front: pts.length ? paretoFront(pts, { sense }).indices : [],
      cardinality: cardinality(pts, { sense }),
      hypervolume: hypervolume(pts, { ref, sense, allowZero: true }),
      paperHypervolume: box ? paperHypervolume(pts, { ...box, sense }) : null,
    };
  }
  const out: Analysis<K> = { ref, refGiven: input.ref !== undefined, box, sets };
  const part = <T>(p: 'lmc' | 'selection', f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw e instanceof SoupError ? new AnalysisError(p, e) : e;
    }
  };
  const soups = input.soups ?? [];
  if (input.soups !== undefined && input.experts !== undefined) {
    const experts = input.experts;
    const rep = part('lmc', () =>
      lmcGaps(
        soups.map((s) => ({ lambda: s.lambda, rewards: s.rewards, name: s.name })),
        experts,
        { tolerance: input.tolerance },
      ),
    );
    const scored = (e: ExpertModel | ExpertRewards): Scored =>
      e !== null && typeof e === 'object' && 'rewards' in e ? (e as Scored) : { rewards: e as ArrayLike<number> };
    const ex = experts.map(scored);
    const c = input.contrasts ?? contrasts([...soups, ...ex], { samples: soups[0].perSample?.[0]?.length ?? 0 });
    const rows = rep.rows.map((row) => ({
      ...row,
      contrast: row.gaps.map((_, k) => c.contrast(k, [[1, soups[row.index]], ...ex.map((e, i): [number, Scored] => [-row.lambda[i], e])])),
    }));
    out.lmc = { ...rep, rows };
  }
  if (soups.length && input.preference !== undefined) {
    const pref = input.preference;
    const signs = Array.isArray(sense) ? sense.map((s) => (s === 'max' ? 1 : -1)) : undefined;
    const flip = (r: ArrayLike<number>) => Array.from(r, (v, k) => (signs ? signs[k] * v : sense === 'min' ? -v : v));
    const sel = part('selection', () =>
      selectLambda(
        soups.map((s) => ({ lambda: s.lambda, rewards: flip(s.rewards), name: s.name })),
        pref,
      ),
    );
    // flip is its own inverse: the chosen models' rewards as given
    out.selection = {
      ...sel,
      best: { ...sel.best, rewards: flip(sel.best.rewards) },
      ...(sel.muRule ? { muRule: { ...sel.muRule, rewards: flip(sel.muRule.rewards) } } : {}),
    };
  }
  return out;
}
