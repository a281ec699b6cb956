// SPDX-License-Identifier: MIT
// Strict configs, one vocabulary of messages: every YAML/JSON config schema is a strict zod object
// (unknown keys are errors, never silently dropped), and every parser reports zod's issues through
// `zodIssues` here, so an unknown key is named with its full path (`models[1].parameters.normalise`)
// and, for a near miss, the nearest accepted key ("did you mean 'normalize'?"). See
// docs/ARCHITECTURE.md "Strict configs".
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { SoupError } from '../errors.js';

/** Optimal-string-alignment distance: Levenshtein plus adjacent transpositions (`dtpye` → `dtype` is 1). */
export function editDistance(a: string, b: string): number {
  const m = a.length,
    n = b.length;
  const d: number[][] = Array.from({ length: m + 1 }, (_, i) => Array.from({ length: n + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= m; i++) {
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[m][n];
}

const squash = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');

/** The accepted name nearest to `word`, or undefined when none is close: the same name in another case
 *  or spelling convention (`allowExtrapolation`, `allow-extrapolation` → `allow_extrapolation`), else
 *  the nearest by edit distance within 1 (names up to 4 letters), 2 (up to 8) or 3, else the shortest
 *  name that `word` (4 letters or more) begins (`init_kl` → `init_kl_coef`). */
export function nearest(word: string, candidates: Iterable<string>): string | undefined {
  const cands = [...candidates];
  const same = cands.find((c) => squash(c) === squash(word));
  if (same !== undefined) return same;
  const limit = word.length <= 4 ? 1 : word.length <= 8 ? 2 : 3;
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of cands) {
    const dist = editDistance(word.toLowerCase(), c.toLowerCase());
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  if (bestD <= limit) return best;
  if (word.length < 4) return undefined;
  return cands.filter((c) => squash(c).startsWith(squash(word))).sort((a, b) => a.length - b.length)[0];
}

/** "unknown key 'x', did you mean 'y'?" or "unknown key 'x' (accepted: a, b, c)"; `context` follows
 *  the key (" for a lexicon reward"). */
export function unknownKeyMessage(key: string, accepted: readonly string[] | undefined, context = ''): string {
  const near = accepted && nearest(key, accepted);
  if (near !== undefined) return `unknown key '${key}'${context}, did you mean '${near}'?`;
  return `unknown key '${key}'${context}${accepted?.length ? ` (accepted: ${accepted.join(', ')})` : ''}`;
}

/** A field path as users write it: `models[1].parameters.normalise`; `prefix` goes in front. */
export function fieldPath(path: readonly PropertyKey[], prefix = ''): string {
  let s = prefix;
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`;
  return s;
}

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
  valueType?: z.ZodType;
  items?: z.ZodType[];
  getter?: () => z.ZodType;
}
// zod 4 keeps a schema's definition in `_zod.def`; read through Reflect, since its public type differs per schema kind
const defOf = (s: z.ZodType): Def => Reflect.get(Reflect.get(s, '_zod') as object, 'def') as Def;

/** The schemas reached from `s` by one step of `path` (several for unions), wrappers unwrapped. */
function unwrap(s: z.ZodType): z.ZodType[] {
  const d = defOf(s);
  if (d.innerType) return unwrap(d.innerType);
  if (d.type === 'pipe' && d.in) return unwrap(d.in);
  if (d.type === 'lazy' && d.getter) return unwrap(d.getter());
  if (d.type === 'union' && d.options) return d.options.flatMap(unwrap);
  return [s];
}

function step(s: z.ZodType, key: PropertyKey): z.ZodType[] {
  return unwrap(s).flatMap((u) => {
    const d = defOf(u);
    if (d.type === 'object' && typeof key === 'string' && d.shape && key in d.shape) return [d.shape[key]];
    if (d.type === 'array' && typeof key === 'number' && d.element) return [d.element];
    if (d.type === 'tuple' && typeof key === 'number' && d.items?.[key]) return [d.items[key]];
    if (d.type === 'record' && d.valueType) return [d.valueType];
    return [];
  });
}

/** The keys an object schema accepts at `path` inside `schema` (undefined where there is no object). */
export function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] | undefined {
  let cur = [schema];
  for (const k of path) cur = cur.flatMap((s) => step(s, k));
  const keys = cur.flatMap(unwrap).flatMap((u) => (defOf(u).type === 'object' ? Object.keys(defOf(u).shape ?? {}) : []));
  return keys.length ? [...new Set(keys)] : undefined;
}

/** Every key path a schema accepts, objects flattened (`models[].parameters.weight`), leaves only, with
 *  the leaf's `.describe()` text: what help text and docs list, so that they cannot drift from the schema. */
export function schemaFields(schema: z.ZodType, prefix = ''): { key: string; description?: string }[] {
  const out: { key: string; description?: string }[] = [];
  for (const u of unwrap(schema)) {
    const d = defOf(u);
    if (d.type === 'object') {
      for (const [k, v] of Object.entries(d.shape ?? {})) {
        const p = prefix ? `${prefix}.${k}` : k;
        const sub = schemaFields(v, p);
        out.push(
          ...(sub.length
            ? sub
            : [
                {
                  key: p,
                  description:
                    v.description ??
                    unwrap(v)
                      .map((x) => x.description)
                      .find(Boolean),
                },
              ]),
        );
      }
    } else if (d.type === 'array' && d.element && prefix) {
      out.push(...schemaFields(d.element, `${prefix}[]`));
    }
  }
  return out.filter((f, i) => out.findIndex((g) => g.key === f.key) === i);
}

export const schemaKeys = (schema: z.ZodType): string[] => schemaFields(schema).map((f) => f.key);

/** One line per problem, unknown keys first (a misspelt key often also makes a required one missing;
 *  the spelling is the thing to fix). `prefix` is the path of the schema's root (e.g. `rewards[0]`). */
export function zodIssues(err: z.ZodError, schema: z.ZodType, prefix = ''): string[] {
  const unknown: string[] = [];
  const other: string[] = [];
  for (const i of err.issues) {
    if (i.code === 'unrecognized_keys') {
      const accepted = keysAt(schema, i.path);
      for (const k of i.keys) {
        let msg = unknownKeyMessage(k, accepted);
        // not near anything here, but near a key of another level (`normalize` under models[].parameters)
        if (!accepted || nearest(k, accepted) === undefined) {
          const elsewhere = schemaFields(schema)
            .map((f) => f.key)
            .filter((key) => nearest(k, [key.replace(/^.*[.\]]/, '')]) !== undefined);
          if (elsewhere.length) msg += `; did you mean ${elsewhere.map((e) => `'${fieldPath([], prefix) ? `${prefix}.${e}` : e}'`).join(' or ')}?`;
        }
        unknown.push(`${fieldPath([...i.path, k], prefix)}: ${msg}`);
      }
    } else {
      other.push(`${fieldPath(i.path, prefix) || '(root)'}: ${i.message}`);
    }
  }
  return [...unknown, ...other];
}

/** Parses `raw` with a strict `schema`, or throws ERR_SOUP_CONFIG "`where`: problems": every unknown key
 *  (one misspelling rarely comes alone), then the first other problem (every one with `all`). */
export function parseStrict<S extends z.ZodType>(schema: S, raw: unknown, where: string, opts: { prefix?: string; all?: boolean } = {}): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const lines = zodIssues(r.error, schema, opts.prefix);
  const nUnknown = r.error.issues.reduce((a, i) => a + (i.code === 'unrecognized_keys' ? i.keys.length : 0), 0);
  const msg = (opts.all ? lines : lines.slice(0, nUnknown + 1)).join('; ');
  throw new SoupError('ERR_SOUP_CONFIG', where ? `${where}: ${msg}` : msg);
}

/** A YAML (or JSON) config file's document: an unreadable file is ERR_SOUP_IO and bad YAML
 *  ERR_SOUP_CONFIG, both naming the file (`what` says which kind of file it should have been). */
export function readConfigFile(path: string, what = 'config'): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new SoupError('ERR_SOUP_IO', `cannot read ${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return parseYaml(text);
  } catch (e) {
    throw new SoupError('ERR_SOUP_CONFIG', `${path}: invalid YAML: ${(e as Error).message}`, { cause: e });
  }
}
