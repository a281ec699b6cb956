// SPDX-License-Identifier: MIT
// rsoup pareto RESULTS.jsonl --objectives a,b --ref x,y [--sense max] [--prefer w,...] [--svg F] [--png F]
//   [--plots-dir DIR] [--json]
// Each line of RESULTS.jsonl is one evaluated model:
//   { "name", "kind": "soup"|"morl"|"expert"|"init", "lambda"?, "mu"?, "rewards": { "a": …, "b": … } }
// Prints, per kind, the Pareto front and both hypervolumes (standard w.r.t. --ref; the paper's
// lower-is-better one in the box spanned by all models), the LMC gaps of the soups, the λ chosen for
// --prefer (and the λ = μ̂ rule), and draws the plots. Human report on stdout, or JSON lines with --json.
// Exit codes: 1 for bad data (the message names the line and field), 2 for bad flags.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { SoupError } from '../../errors.js';
import { analyse, AnalysisError, nadirRef, type Sense } from '../../pareto/index.js';
import { frontPlot, rewardVsLambdaPlot, spiderPlot, coefficientLabel, type Plot } from '../../report/index.js';
import { jsonLine, reportError, UsageError } from '../output.js';

const KINDS = ['soup', 'morl', 'expert', 'init'] as const;
type Kind = (typeof KINDS)[number];

export interface ResultModel {
  line: number;
  name: string;
  kind: Kind;
  lambda?: number | number[];
  mu?: number | number[];
  rewards: Record<string, number>;
}

export interface ParetoCommandOptions {
  objectives: string;
  ref: string;
  sense?: string;
  prefer?: string;
  svg?: string;
  png?: string;
  plotsDir?: string;
  json?: boolean;
  tolerance?: string;
}

const NON_FINITE = '\u0000nonfinite:';

/** JSON.parse that also accepts the bare NaN / Infinity tokens Python's json.dumps writes, as markers. */
function parseLine(text: string): unknown {
  const patched = text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (tok) => (tok.startsWith('"') ? tok : JSON.stringify(NON_FINITE + tok)));
  return JSON.parse(patched);
}

function describe(v: unknown): string {
  if (typeof v === 'string' && v.startsWith(NON_FINITE)) return v.slice(NON_FINITE.length);
  if (v === undefined) return 'missing';
  return JSON.stringify(v);
}

function coeff(v: unknown, where: string, field: string): number | number[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number')) return v as number[];
  const bad = Array.isArray(v) ? v.findIndex((x) => typeof x !== 'number') : -1;
  const what = bad >= 0 ? `${field}[${bad}] is ${describe((v as unknown[])[bad])}` : `${field} is ${describe(v)}`;
  throw new SoupError('ERR_SOUP_FORMAT', `${where}: ${what}; expected a finite number or an array of finite numbers`);
}

/** Reads RESULTS.jsonl ('-' = stdin). Throws SoupError (ERR_SOUP_FORMAT / ERR_SOUP_IO) naming file:line. */
export function readResults(file: string): ResultModel[] {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new SoupError('ERR_SOUP_IO', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const out: ResultModel[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    let obj: Record<string, unknown>;
    try {
      obj = parseLine(raw) as Record<string, unknown>;
    } catch (err) {
      throw new SoupError('ERR_SOUP_FORMAT', `${file}:${line}: not valid JSON (${(err as Error).message})`);
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new SoupError('ERR_SOUP_FORMAT', `${file}:${line}: expected a JSON object`);
    const name = typeof obj.name === 'string' && obj.name !== '' ? obj.name : `line ${line}`;
    const where = `${file}:${line} (${JSON.stringify(name)})`;
    if (!KINDS.includes(obj.kind as Kind))
      throw new SoupError('ERR_SOUP_FORMAT', `${where}: kind is ${describe(obj.kind)}; expected one of ${KINDS.join(', ')}`);
    const r = obj.rewards;
    if (r === null || typeof r !== 'object' || Array.isArray(r))
      throw new SoupError('ERR_SOUP_FORMAT', `${where}: rewards is ${describe(r)}; expected an object { reward name: value }`);
    const lambda = coeff(obj.lambda, where, 'lambda');
    const mu = coeff(obj.mu, where, 'mu');
    for (const [f, v] of [
      ['lambda', lambda],
      ['mu', mu],
    ] as const) {
      const vals = v === undefined ? [] : typeof v === 'number' ? [v] : v;
      if (vals.some((x) => !Number.isFinite(x))) throw new SoupError('ERR_SOUP_FORMAT', `${where}: ${f} is not finite`);
    }
    if (obj.kind === 'soup' && lambda === undefined)
      throw new SoupError('ERR_SOUP_FORMAT', `${where}: a soup needs lambda (a number λ for [1 − λ, λ], or one weight per expert)`);
    out.push({ line, name, kind: obj.kind as Kind, lambda, mu, rewards: r as Record<string, number> });
  });
  if (out.length === 0) throw new SoupError('ERR_SOUP_FORMAT', `${file}: no models (expected one JSON object per line)`);
  return out;
}

function numberList(flag: string, s: string, n: number): number[] {
  const parts = s.split(',').map((x) => x.trim());
  if (parts.length !== n) throw new UsageError(`${flag} has ${parts.length} values but --objectives names ${n}`);
  return parts.map((p, k) => {
    const v = p === '' ? NaN : Number(p);
    if (!Number.isFinite(v)) throw new UsageError(`${flag}: value ${k + 1} (${JSON.stringify(p)}) is not a finite number`);
    return v;
  });
}

function parseFlags(opts: ParetoCommandOptions): { objectives: string[]; ref: number[]; sense: Sense[]; prefer: number[]; tolerance: number } {
  const objectives = opts.objectives.split(',').map((s) => s.trim());
  if (objectives.some((o) => o === '')) throw new UsageError(`--objectives has an empty name: ${JSON.stringify(opts.objectives)}`);
  if (new Set(objectives).size !== objectives.length) throw new UsageError(`--objectives names a reward twice: ${opts.objectives}`);
  const ref = numberList('--ref', opts.ref, objectives.length);
  const senseParts = (opts.sense ?? 'max').split(',').map((s) => s.trim());
  const sense = (senseParts.length === 1 ? objectives.map(() => senseParts[0]) : senseParts) as Sense[];
  if (sense.length !== objectives.length) throw new UsageError(`--sense has ${sense.length} values but --objectives names ${objectives.length}`);
  sense.forEach((s) => {
    if (s !== 'max' && s !== 'min') throw new UsageError(`--sense: ${JSON.stringify(s)} is not 'max' or 'min'`);
  });
  const prefer = opts.prefer ? numberList('--prefer', opts.prefer, objectives.length) : objectives.map(() => 1 / objectives.length);
  if (prefer.some((v) => v < 0) || prefer.every((v) => v === 0)) throw new UsageError('--prefer weights must be >= 0 and not all 0');
  const tolerance = Number(opts.tolerance ?? '0');
  if (!Number.isFinite(tolerance) || tolerance < 0) throw new UsageError(`--tolerance must be a number >= 0, got ${opts.tolerance}`);
  return { objectives, ref, sense, prefer, tolerance };
}

/** The reward vectors in --objectives order; unknown objective names are usage errors (exit 2). */
function rewardVectors(models: ResultModel[], file: string, objectives: string[]): number[][] {
  const known = new Set(models.flatMap((m) => Object.keys(m.rewards)));
  for (const o of objectives) {
    if (!known.has(o))
      throw new UsageError(`unknown objective ${JSON.stringify(o)} in --objectives: the rewards in ${file} are ${[...known].join(', ') || '(none)'}`);
  }
  return models.map((m) =>
    objectives.map((o) => {
      const v = m.rewards[o];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new SoupError('ERR_SOUP_FORMAT', `${file}:${m.line} (${JSON.stringify(m.name)}): rewards.${o} is ${describe(v)}; expected a finite number`);
      }
      return v;
    }),
  );
}

/** Expert order for λ: by a one-hot (or scalar 0/1) lambda when every expert has one, else file order. */
function orderExperts(experts: ResultModel[], file: string): ResultModel[] {
  if (!experts.every((e) => e.lambda !== undefined)) return experts;
  const slot = (e: ResultModel): number => {
    const l = e.lambda!;
    const v = typeof l === 'number' ? [1 - l, l] : l;
    const i = v.findIndex((x) => x === 1);
    if (i < 0 || v.some((x, k) => k !== i && x !== 0)) {
      throw new SoupError(
        'ERR_SOUP_FORMAT',
        `${file}:${e.line} (${JSON.stringify(e.name)}): an expert's lambda must be one-hot (or 0/1 for two experts), got ${JSON.stringify(l)}`,
      );
    }
    return i;
  };
  const out: ResultModel[] = [];
  for (const e of experts) {
    const i = slot(e);
    if (out[i])
      throw new SoupError('ERR_SOUP_FORMAT', `${file}:${e.line}: experts ${JSON.stringify(out[i].name)} and ${JSON.stringify(e.name)} have the same lambda`);
    out[i] = e;
  }
  if (out.length !== experts.length || out.some((e) => e === undefined)) {
    throw new SoupError('ERR_SOUP_FORMAT', `${file}: the experts' lambdas do not cover positions 1..${experts.length}`);
  }
  return out;
}

const fmt = (v: number) => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 1e-3 && Math.abs(v) < 1e6 ? v.toFixed(4) : v.toExponential(3));

function writePlot(plot: Plot, svgPath: string | undefined, pngPath: string | undefined, written: string[]): void {
  try {
    if (svgPath) {
      writeFileSync(svgPath, plot.svg);
      written.push(svgPath);
    }
    if (pngPath && plot.png) {
      writeFileSync(pngPath, plot.png);
      written.push(pngPath);
    }
  } catch (err) {
    throw new SoupError('ERR_SOUP_IO', `cannot write the plot: ${(err as Error).message}`, { cause: err });
  }
}

/** The command body: throws UsageError (exit 2) for bad flags, SoupError (exit 1) for bad data. */
export async function paretoCommand(file: string, opts: ParetoCommandOptions): Promise<void> {
  const flags = parseFlags(opts);
  const { objectives, ref, sense } = flags;
  const models = readResults(file);
  const vectors = rewardVectors(models, file, objectives);
  const byKind = (k: Kind) => models.map((m, i) => ({ m, v: vectors[i] })).filter((x) => x.m.kind === k);
  const out: string[] = [];
  const json = opts.json === true;
  const say = (s = '') => out.push(s);

  // The ref must be worse than at least one model on every objective, else every hypervolume is 0: a flag error.
  if (!vectors.some((v) => v.every((x, k) => (sense[k] === 'max' ? x > ref[k] : x < ref[k])))) {
    throw new UsageError(
      `--ref ${ref.join(',')} is not strictly dominated by any model (sense ${sense.join(',')}), so every hypervolume would be 0; ` +
        `pick a ref worse than the models, e.g. --ref ${nadirRef(vectors, { sense })
          .map((v) => Number(v.toPrecision(4)))
          .join(',')}`,
    );
  }
  const soups = byKind('soup');
  const experts = orderExperts(
    byKind('expert').map((x) => x.m),
    file,
  );
  const expertVec = experts.map((e) => vectors[models.indexOf(e)]);
  const withLmc = soups.length > 0 && experts.length >= 2;

  // The one analysis (src/pareto/analysis.ts): per kind and over all models, the front and both
  // hypervolumes (the paper's box spans every model); the soups' LMC gaps; the λ for --prefer.
  const kinds = (['soup', 'morl', 'all'] as const).filter((k) => k === 'all' || byKind(k).length > 0);
  const items = (k: (typeof kinds)[number]) => (k === 'all' ? models.map((m, i) => ({ m, v: vectors[i] })) : byKind(k));
  const cands = soups.map((x) => ({ lambda: x.m.lambda!, rewards: x.v, name: x.m.name }));
  let a;
  try {
    a = analyse({
      sets: Object.fromEntries(kinds.map((k) => [k, items(k).map((x) => x.v)])) as Record<(typeof kinds)[number], number[][]>,
      ref,
      sense,
      boxSets: [vectors],
      soups: cands,
      experts: withLmc ? expertVec : undefined,
      tolerance: flags.tolerance,
      preference: flags.prefer,
    });
  } catch (err) {
    if (err instanceof AnalysisError && err.part === 'lmc')
      throw new SoupError(
        'ERR_SOUP_FORMAT',
        `${file}: LMC check: ${err.message} (soups are in file order; experts are ${experts.map((e) => e.name).join(', ')})`,
      );
    throw err;
  }
  const box = a.box;

  say(`${models.length} models from ${file}; objectives ${objectives.join(', ')} (sense ${sense.join(',')}); ref [${ref.join(', ')}]`);
  if (box)
    say(
      `paper hypervolume box (lower is better): lower [${box.lower.map(fmt).join(', ')}], utopia [${box.utopia.map(fmt).join(', ')}] = worst/best of each objective over all models`,
    );
  for (const kind of kinds) {
    const its = items(kind);
    const set = a.sets[kind];
    const members = set.front.map((i) => ({
      name: its[i].m.name,
      kind: its[i].m.kind,
      rewards: Object.fromEntries(objectives.map((o, k) => [o, its[i].v[k]])),
    }));
    if (json) {
      jsonLine({ type: 'front', kind, count: set.count, cardinality: set.cardinality, front: members });
      jsonLine({ type: 'hypervolume', kind, hypervolume: set.hypervolume, ref, paperHypervolume: set.paperHypervolume, box: box ?? null });
    } else {
      say();
      say(
        `${kind === 'all' ? 'all models' : kind}: ${set.count} models, ${members.length} on the front; hypervolume ${fmt(set.hypervolume)}${set.paperHypervolume === null ? '' : `, paper hypervolume ${fmt(set.paperHypervolume)} (lower is better)`}`,
      );
      for (const f of members) say(`  ${f.name.padEnd(24)} ${objectives.map((o) => `${o}=${fmt(f.rewards[o])}`).join('  ')}`);
    }
  }

  if (a.lmc) {
    const rep = a.lmc;
    if (json) {
      jsonLine({
        type: 'lmc',
        experts: experts.map((e) => e.name),
        holds: rep.holds,
        fractionHolds: rep.fractionHolds,
        minGap: Object.fromEntries(objectives.map((o, k) => [o, rep.minGap[k]])),
        rows: rep.rows.map((r) => ({ name: r.name, lambda: r.lambda, gaps: Object.fromEntries(objectives.map((o, k) => [o, r.gaps[k]])), holds: r.holds })),
      });
    } else {
      say();
      say(
        `LMC (Hypothesis 1: R_k(θ(λ)) ≥ Σ λ_i R_k(θ_i)) against experts ${experts.map((e) => e.name).join(', ')}: ${rep.holds ? 'holds' : 'does NOT hold'} for ${(100 * rep.fractionHolds).toFixed(1)}% of (soup, reward) pairs`,
      );
      for (const r of rep.rows)
        say(
          `  λ=${coefficientLabel(r.lambda).padEnd(8)} ${(r.name ?? '').padEnd(20)} gaps ${objectives.map((o, k) => `${o}=${fmt(r.gaps[k])}`).join('  ')}${r.holds ? '' : '  ✗'}`,
        );
    }
  } else if (!json) {
    say();
    say(`LMC check skipped: needs soups and at least 2 experts (found ${soups.length} soups, ${experts.length} experts)`);
  }

  // Models the spider map shows (Fig. 2f style): experts, init, the chosen soup(s), the best MORL model.
  const spotlight = new Set<ResultModel>([...experts, ...byKind('init').map((x) => x.m)]);
  const utility = (v: number[]) => v.reduce((acc, x, k) => acc + flags.prefer[k] * (sense[k] === 'max' ? x : -x), 0);
  const morlBest = byKind('morl').sort((p, q) => utility(q.v) - utility(p.v))[0];
  if (a.selection) {
    // utilities are over maximised rewards (minimised objectives flipped); rewards as in the file
    const sel = a.selection;
    spotlight.add(soups[sel.best.index].m);
    if (sel.muRule) spotlight.add(soups[sel.muRule.index].m);
    if (json) {
      jsonLine({ type: 'selection', prefer: flags.prefer, best: sel.best, muRule: sel.muRule ?? null });
    } else {
      say();
      say(`λ selection for the preference μ̂ = [${flags.prefer.map(fmt).join(', ')}] (Σ μ̂_k R_k):`);
      say(`  argmax over evaluated soups: ${sel.best.name} (λ=${coefficientLabel(sel.best.lambda)}), utility ${fmt(sel.best.utility)}`);
      if (sel.muRule) {
        say(
          `  λ = μ̂ rule: ${sel.muRule.name} (λ=${coefficientLabel(sel.muRule.lambda)}, ${sel.muRule.distance < 1e-12 ? 'exact' : `nearest, distance ${fmt(sel.muRule.distance)}`}), utility ${fmt(sel.muRule.utility)}, regret ${fmt(sel.muRule.regret)}`,
        );
      }
    }
  }

  // Plots.
  const wantPng = Boolean(opts.png) || Boolean(opts.plotsDir);
  const written: string[] = [];
  if (opts.svg || opts.png || opts.plotsDir) {
    const get = (k: Kind) => byKind(k);
    let main: Plot;
    let mainName: string;
    if (objectives.length === 2) {
      main = await frontPlot(
        {
          objectives,
          soups: get('soup').map((x) => ({ lambda: x.m.lambda!, rewards: x.v, name: x.m.name })),
          morl: get('morl').map((x, i) => ({ mu: x.m.mu ?? i, rewards: x.v, name: x.m.name })),
          experts: experts.map((e) => ({ rewards: vectors[models.indexOf(e)], name: e.name })),
          init: get('init')[0] ? { rewards: get('init')[0].v, name: get('init')[0].m.name } : undefined,
        },
        { png: wantPng },
      );
      mainName = 'front';
    } else {
      if (morlBest) spotlight.add(morlBest.m);
      const shown = models.filter((m) => spotlight.has(m));
      const series = (shown.length >= 2 ? shown : models).map((m) => ({ name: `${m.name} (${m.kind})`, rewards: vectors[models.indexOf(m)] }));
      main = await spiderPlot({ objectives, series }, { png: wantPng, title: 'Spider map: experts, init, chosen soups, best MORL (axes min-max normalised)' });
      mainName = 'spider';
    }
    writePlot(main, opts.svg, opts.png, written);
    if (opts.plotsDir) {
      try {
        mkdirSync(opts.plotsDir, { recursive: true });
      } catch (err) {
        throw new SoupError('ERR_SOUP_IO', `cannot create ${opts.plotsDir}: ${(err as Error).message}`, { cause: err });
      }
      writePlot(main, join(opts.plotsDir, `${mainName}.svg`), join(opts.plotsDir, `${mainName}.png`), written);
      const scalar = soups.filter((s) => typeof s.m.lambda === 'number' || (s.m.lambda as number[]).length === 2);
      if (scalar.length === soups.length && soups.length > 0) {
        const rvl = await rewardVsLambdaPlot({ objectives, soups: soups.map((s) => ({ lambda: s.m.lambda!, rewards: s.v })) }, { png: true });
        writePlot(rvl, join(opts.plotsDir, 'reward-vs-lambda.svg'), join(opts.plotsDir, 'reward-vs-lambda.png'), written);
      }
    }
    if (json) for (const p of written) jsonLine({ type: 'plot', path: p });
    else if (written.length) {
      say();
      say(`plots: ${written.join(', ')}`);
    }
  }
  if (!json) process.stdout.write(`${out.join('\n')}\n`);
}

export function register(program: Command): void {
  program
    .command('pareto')
    .description('Pareto fronts, hypervolumes, LMC gaps and λ selection for evaluated soups / MORL / experts, with plots')
    .argument('<results>', "JSON-lines file, one evaluated model per line: {name, kind: soup|morl|expert|init, lambda?, mu?, rewards: {...}} ('-' for stdin)")
    .requiredOption('--objectives <names>', 'comma-separated reward names to analyse, e.g. a,b')
    .requiredOption('--ref <values>', 'hypervolume reference point, one value per objective (worse than the models)')
    .option('--sense <s>', "'max' (rewards), 'min', or one per objective", 'max')
    .option('--prefer <weights>', 'linear preference μ̂ over the objectives for λ selection (default uniform)')
    .option('--tolerance <t>', 'LMC gaps >= -t count as holding', '0')
    .option('--svg <file>', 'write the front plot (spider map for 3+ objectives) as SVG')
    .option('--png <file>', 'write the front plot (spider map for 3+ objectives) as PNG')
    .option('--plots-dir <dir>', 'write every plot (front or spider, reward vs λ) as SVG and PNG into DIR')
    .option('--json', 'JSON lines on stdout instead of the human report')
    .action(async (file: string, opts: ParetoCommandOptions) => {
      try {
        await paretoCommand(file, opts);
      } catch (err) {
        if (err instanceof UsageError) {
          reportError(err);
          process.exitCode = 2;
          return;
        }
        throw err;
      }
    });
}
