import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, readdirSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors, readSafetensors, type TensorMap } from '../src/index.js';
import { rng, randomTensor } from './helpers/random.js';
import { checkAgainst } from './helpers/reference.js';
import { rsoup, rsoupAsync } from './helpers/cli.js';
import { needs } from './helpers/fixtures.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'soup-cli-'));

/** A safetensors file from a raw header object and a data length (for malformed files). */
function rawFile(path: string, header: unknown, dataBytes: number, headerLenOverride?: bigint): void {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLenOverride ?? BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, Buffer.alloc(dataBytes, 1)]));
}

async function good(
  dir: string,
  name: string,
  seed: number,
  tensors: Record<string, [string, number[]]> = { w: ['float32', [4, 3]], v: ['float32', [5]] },
): Promise<string> {
  const r = rng(seed);
  const m: TensorMap = {};
  for (const [k, [dt, shape]] of Object.entries(tensors)) m[k] = randomTensor(dt as 'float32', shape, r);
  const p = join(dir, name);
  await writeSafetensors(p, m);
  return p;
}

function expectFailure(r: { code: number | null; stderr: string }, msg: RegExp, out: string) {
  expect(r.stderr, r.stderr).toMatch(msg);
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).not.toMatch(/Segmentation|Aborted|core dumped|at .*node:internal/);
  expect(existsSync(out)).toBe(false);
  const dir = join(out, '..');
  if (existsSync(dir)) expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
}

describe('rsoup merge: bad input gives exit 1, a message naming the file/tensor/field, and no output', () => {
  const d = tmp();
  const out = join(d, 'out.safetensors');
  const cases: [string, () => Promise<string[]> | string[], RegExp][] = [
    [
      'truncated file',
      async () => {
        writeFileSync(join(d, 't.st'), Buffer.from([1, 2, 3]));
        return [join(d, 't.st')];
      },
      /t\.st: truncated: 3 bytes/,
    ],
    [
      'header length beyond the file',
      async () => {
        rawFile(join(d, 'h.st'), { w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4, 10_000n);
        return [join(d, 'h.st')];
      },
      /h\.st: header length 10000 is beyond the file size/,
    ],
    [
      'invalid JSON',
      async () => {
        rawFile(join(d, 'j.st'), '{"w": {"dtype": "F32",', 4);
        return [join(d, 'j.st')];
      },
      /j\.st: header is not valid JSON/,
    ],
    [
      'offsets out of range',
      async () => {
        rawFile(join(d, 'o.st'), { w: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 8);
        return [join(d, 'o.st')];
      },
      /o\.st: tensor 'w': data_offsets \[4, 12\] are beyond the data buffer/,
    ],
    [
      'overlapping offsets',
      async () => {
        rawFile(join(d, 'ov.st'), { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12);
        return [join(d, 'ov.st')];
      },
      /ov\.st: tensors 'a' and 'b' overlap/,
    ],
    [
      'dtype x shape != byte length',
      async () => {
        rawFile(join(d, 'sz.st'), { w: { dtype: 'BF16', shape: [3], data_offsets: [0, 8] } }, 8);
        return [join(d, 'sz.st')];
      },
      /sz\.st: tensor 'w': BF16 \[3\] needs 6 bytes but data_offsets span 8/,
    ],
    [
      'unknown dtype',
      async () => {
        rawFile(join(d, 'u.st'), { w: { dtype: 'F12', shape: [1], data_offsets: [0, 4] } }, 4);
        return [join(d, 'u.st')];
      },
      /u\.st: tensor 'w': unknown dtype "F12"/,
    ],
    [
      'duplicate tensor names',
      async () => {
        rawFile(
          join(d, 'dup.st'),
          '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',
          8,
        );
        return [join(d, 'dup.st')];
      },
      /dup\.st: duplicate tensor name 'w'/,
    ],
  ];
  for (const [name, make, msg] of cases) {
    it(name, async () => {
      const bad = await make();
      const ok = await good(d, `ok-${name.replace(/\W/g, '')}.safetensors`, 1);
      expectFailure(rsoup(['merge', '--sources', ok, ...bad, '--weights', '0.5', '0.5', '--out', out]), msg, out);
    });
  }

  it('tensor sets, shapes or dtypes that differ across sources', async () => {
    const a = await good(d, 'a.safetensors', 1);
    const b1 = await good(d, 'b1.safetensors', 2, { w: ['float32', [4, 3]] });
    expectFailure(rsoup(['merge', '--sources', a, b1, '--weights', '0.5', '0.5', '--out', out]), /b1\.safetensors' has no tensor 'v'/, out);
    const b2 = await good(d, 'b2.safetensors', 2, { w: ['float32', [3, 4]], v: ['float32', [5]] });
    expectFailure(
      rsoup(['merge', '--sources', a, b2, '--weights', '0.5', '0.5', '--out', out]),
      /tensor 'w': shape \[3,4\] in '.*b2\.safetensors' != \[4,3\]/,
      out,
    );
    const b3 = await good(d, 'b3.safetensors', 2, { w: ['bfloat16', [4, 3]], v: ['float32', [5]] });
    expectFailure(rsoup(['merge', '--sources', a, b3, '--weights', '0.5', '0.5', '--out', out]), /tensor 'w': dtype BF16 in '.*b3\.safetensors' != F32/, out);
  });

  it('weight count, NaN weight, λ off the simplex', async () => {
    const a = await good(d, 'wa.safetensors', 1),
      b = await good(d, 'wb.safetensors', 2);
    expectFailure(rsoup(['merge', '--sources', a, b, '--weights', '1', '--out', out]), /got 1 weight for 2 sources/, out);
    expectFailure(rsoup(['merge', '--sources', a, b, '--weights', 'NaN', '1', '--out', out]), /weights\[0\] is NaN/, out);
    expectFailure(rsoup(['merge', '--sources', a, b, '--weights', '1.2', '-0.2', '--out', out]), /off the simplex.*--allow-extrapolation/, out);
    const ok = rsoup(['merge', '--sources', a, b, '--weights', '1.2', '-0.2', '--allow-extrapolation', '--out', out, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).weights).toEqual([1.2, -0.2]);
  });

  it('unwritable output', async () => {
    const a = await good(d, 'ua.safetensors', 1),
      b = await good(d, 'ub.safetensors', 2);
    writeFileSync(join(d, 'afile'), 'x');
    const o = join(d, 'afile', 'out.safetensors');
    const r = rsoup(['merge', '--sources', a, b, '--weights', '0.5', '0.5', '--out', o]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/afile\/\.out\.safetensors\.tmp-.*not a directory|ENOTDIR/i);
  });

  it('a usage error exits 2', () => {
    const r = rsoup(['merge', '--weights', '1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/need --sources/);
  });

  it('a mergekit YAML config merges like the flags', async () => {
    const a = await good(d, 'ya.safetensors', 1),
      b = await good(d, 'yb.safetensors', 2);
    const cfg = join(d, 'soup.yml');
    writeFileSync(
      cfg,
      `merge_method: linear\nmodels:\n  - model: ${a}\n    parameters:\n      weight: 1\n  - model: ${b}\n    parameters:\n      weight: 3\nparameters:\n  normalize: true\nout_dtype: bfloat16\n`,
    );
    const o = join(d, 'yaml-out.safetensors');
    const r = rsoup(['merge', cfg, o, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const got = (await readSafetensors(o)).tensors;
    const src = [(await readSafetensors(a)).tensors, (await readSafetensors(b)).tensors];
    expect(got.w.dtype).toBe('bfloat16');
    expect(checkAgainst(got.w, [src[0].w, src[1].w], [0.25, 0.75]).worst).toBeLessThanOrEqual(1);
    writeFileSync(cfg, `models:\n  - model: ${a}\n    parameters:\n      weihgt: 1\n`);
    const bad = rsoup(['merge', cfg, o + '.2']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/models\[0\]\.parameters\.weihgt: unknown key 'weihgt', did you mean 'weight'\?/);
  });
});

const isRoot = process.getuid?.() === 0;

describe('rsoup merge: interruptions and full disks', () => {
  it('a full disk (1 MiB tmpfs) fails cleanly with nothing left behind (needs root to mount; CI runs as root)', async (ctx) => {
    needs(ctx, isRoot, 'mounting a 1 MiB tmpfs needs root (CI runs as root)');
    const d = tmp();
    const a = await good(d, 'fa.safetensors', 1, { w: ['float32', [512, 1024]] });
    const b = await good(d, 'fb.safetensors', 2, { w: ['float32', [512, 1024]] });
    const mnt = join(d, 'small');
    mkdirSync(mnt);
    execSync(`mount -t tmpfs -o size=1m tmpfs ${mnt}`);
    try {
      const o = join(mnt, 'out.safetensors');
      const r = rsoup(['merge', '--sources', a, b, '--weights', '0.5', '0.5', '--out', o]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/No space left on device/);
      // the message names the output asked for, not the temporary file the writer used
      expect(r.stderr).toContain(`writing '${o}': `);
      expect(r.stderr).not.toMatch(/\.tmp-/);
      expect(readdirSync(mnt)).toEqual([]);
    } finally {
      execSync(`umount ${mnt}`);
    }
  });

  it('SIGINT in the middle of a merge cancels it: exit 130, no output, no temporary file', async () => {
    const d = tmp();
    const big = { w: ['float32', [64, 1 << 20]] as [string, number[]] }; // 256 MiB per source
    const a = await good(d, 'sa.safetensors', 1, big);
    const b = await good(d, 'sb.safetensors', 2, big);
    const outDir = join(d, 'o');
    mkdirSync(outDir);
    const o = join(outDir, 'soup.safetensors');
    const child = rsoupAsync(['merge', '--sources', a, b, '--weights', '0.5', '0.5', '--out', o, '--threads', '1']);
    let stderr = '';
    child.stderr.on('data', (x) => (stderr += x));
    const exit = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    // wait until the native writer has created its temporary file, then interrupt
    const t0 = Date.now();
    while (!readdirSync(outDir).some((f) => f.includes('.tmp-')) && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 5));
    expect(readdirSync(outDir).some((f) => f.includes('.tmp-'))).toBe(true);
    child.kill('SIGINT');
    const code = await exit;
    expect(stderr).toMatch(/ERR_SOUP_ABORTED/);
    expect(code).toBe(130);
    expect(readdirSync(outDir)).toEqual([]);
    void readFileSync;
  });
});

describe('rsoup bench calls', () => {
  it('prints one JSON row per tensor count, cache state and call, with the overhead it measured', () => {
    const r = rsoup(['bench', 'calls', '--tensors', '8,64', '--reps', '3', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows.map((x) => `${x.tensors} ${x.state} ${x.call}`)).toEqual(
      [8, 64].flatMap((t) => ['back to back', 'after a probe'].flatMap((s) => ['interpolate()', 'prepared run()'].map((c) => `${t} ${s} ${c}`))),
    );
    for (const x of rows) {
      expect(x['overhead ms'], JSON.stringify(x)).toBeGreaterThan(0);
      expect(x['µs per array']).toBeCloseTo((x['overhead ms'] * 1e3) / (x.tensors * 3), 9);
    }
  });
});

describe('rsoup bench merge', () => {
  it('runs a small full-model group end to end: every method once, each ratio against the probe finite', () => {
    const r = rsoup(['bench', 'merge', '--regimes', 'full', '--full-gib', '0.0625', '--n', '2', '--dtypes', 'bfloat16', '--reps', '2', '--no-torch', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows[0].event).toBe('meta');
    const results = rows.filter((x) => x.event === 'result');
    expect(results.map((x) => x.method.replace(/ \(.*\)$/, ''))).toEqual([
      'probe',
      'read 2 sources',
      'soup',
      'soup prepared',
      'interpolate() new outputs',
      'new outputs, 4 KiB pages',
      'plain JS loop',
    ]);
    for (const x of results) {
      expect(x.gbps, x.method).toBeGreaterThan(0);
      if ('ofProbe' in x) expect(x.ofProbe > 0 && x.ofProbe < 10, `${x.method}: ofProbe ${x.ofProbe}`).toBe(true);
    }
    expect(r.stderr).toMatch(/PyTorch baseline skipped: --no-torch/);
    expect(r.stderr).toMatch(/full bfloat16 N=2: interpolate\(\) \d+% of probe, prepared \d+%/);
  });
});

describe('rsoup bench: bad flags are usage errors naming the flag', () => {
  it.each([
    [['bench', 'calls', '--tensors', '8,x'], /--tensors: 'x' is not a positive integer/],
    [['bench', 'calls', '--n', '0'], /--n: '0' is not a positive integer/],
    [['bench', 'calls', '--dtype', 'int8'], /--dtype: 'int8' is not one of float32, float16, bfloat16, float64/],
    [['bench', 'calls', '--dtype', 'float32,bfloat16'], /--dtype: give one value, got 2/],
    [['bench', 'merge', '--dtypes', 'float64'], /--dtypes: 'float64' is not one of float32, bfloat16/],
    [['bench', 'merge', '--regimes', 'tiny'], /--regimes: 'tiny' is not lora or full/],
    [['bench', 'merge', '--full-gib', '-1'], /--full-gib: '-1' is not a positive number/],
    [['bench', 'merge', '--reps', '2.5'], /--reps: '2.5' is not a positive integer/],
  ])('%j', (args, msg) => {
    const r = rsoup(args);
    expect(r.stderr).toMatch(msg);
    expect(r.code, r.stderr).toBe(2);
  });
});
