// SPDX-License-Identifier: MIT
// rsoup bench serve: `rsoup serve` under load on loopback, bounded in time. A synthetic LLaMA of realistic
// shape (default d = 1024, 8 layers, 32 000 vocabulary, random weights) with N experts of rank r, and
// the same base served as one model without adapters (a merged soup has exactly the base's shapes, so
// it runs at the speed of any merged model). Each wave sends C concurrent streamed requests (prompt P
// tokens, exactly T new tokens each: EOS ignored) and measures tokens/s, time to first token (TTFT) and
// latency p50/p99; the soup waves give every request its own random λ. Waves alternate soup / merged
// (ABAB…) so both see the same machine. Then, on the idle soup server, single requests alternate a
// fresh random λ with one repeated λ: their median TTFTs (a λ change costs no merge).
import { SoupEngine, type ExpertAdapter } from '../serve/engine.js';
import { serve, type RunningServer } from '../serve/server.js';
import type { TextCodec } from '../serve/codec.js';
import type { LlamaConfig } from '../train/llama.js';
import { llamaShapes, tinyLlama } from '../train/testing.js';
import type { Tensor, TensorMap } from '../io/index.js';
import { mulberry32 } from '../util/random.js';

export interface ServeBenchOptions {
  hidden?: number;
  layers?: number;
  vocab?: number;
  intermediate?: number;
  heads?: number;
  experts?: number;
  rank?: number;
  targets?: string[];
  concurrency?: number;
  promptTokens?: number;
  maxTokens?: number;
  /** Waves of each server (soup, merged), alternated. */
  waves?: number;
  /** Fresh-λ / repeated-λ TTFT pairs. */
  ttftPairs?: number;
  threads?: number;
  /** Stop starting new waves after this many seconds (the bench is bounded in time). */
  seconds?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface WaveStats {
  server: 'soup' | 'merged';
  requests: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  ttftP50: number;
  ttftP99: number;
  latencyP50: number;
  latencyP99: number;
  /** Generated tokens after each request's first, over the time from the wave's last first token to its end. */
  decodeTokensPerSecond: number;
}

export interface ServeBenchResult {
  config: Record<string, unknown>;
  waves: WaveStats[];
  soup: WaveStats;
  merged: WaveStats;
  /** soup tokens/s ÷ merged tokens/s (medians over waves). */
  ratio: number;
  decodeRatio: number;
  /** ratio: median fresh ÷ median repeated; pairedRatio: the median of each interleaved pair's ratio. */
  ttft: { freshMedian: number; repeatedMedian: number; ratio: number; pairedRatio: number; pairs: number };
  seconds: number;
}

const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1));
  return s[i];
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n ? (n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2) : NaN;
};

/** Random float32 weights: windows of one shared random pool (no 10⁸ PRNG calls), norms near 1. */
function randomWeights(c: LlamaConfig, seed: number, scale: number): TensorMap {
  const rnd = mulberry32(seed);
  const pool = new Float32Array(1 << 22);
  for (let i = 0; i < pool.length; i++) pool[i] = (rnd() * 2 - 1) * scale;
  const out: TensorMap = {};
  for (const [name, shape] of llamaShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = new Float32Array(n);
    if (name.endsWith('norm.weight')) for (let i = 0; i < n; i++) d[i] = 1 + (rnd() * 2 - 1) * 0.1;
    else
      for (let done = 0; done < n; ) {
        const len = Math.min(n - done, pool.length >> 1);
        const at = Math.floor(rnd() * (pool.length - len));
        d.set(pool.subarray(at, at + len), done);
        done += len;
      }
    out[name] = { dtype: 'float32', shape, data: d } as Tensor;
  }
  return out;
}

function randomExperts(c: LlamaConfig, n: number, r: number, targets: string[], seed: number): ExpertAdapter[] {
  const rnd = mulberry32(seed);
  const H = c.hiddenSize,
    D = H / c.numAttentionHeads,
    I = c.intermediateSize;
  const dims: Record<string, [number, number]> = {
    q_proj: [H, c.numAttentionHeads * D],
    k_proj: [H, c.numKeyValueHeads * D],
    v_proj: [H, c.numKeyValueHeads * D],
    o_proj: [c.numAttentionHeads * D, H],
    gate_proj: [H, I],
    up_proj: [H, I],
    down_proj: [I, H],
  };
  const fill = (k: number, s: number) => Float32Array.from({ length: k }, () => (rnd() * 2 - 1) * s);
  return Array.from({ length: n }, (_, e) => {
    const modules: ExpertAdapter['modules'] = {};
    for (let l = 0; l < c.numHiddenLayers; l++) {
      for (const t of targets) {
        const [inD, outD] = dims[t];
        const mod = `model.layers.${l}.${['gate_proj', 'up_proj', 'down_proj'].includes(t) ? 'mlp' : 'self_attn'}.${t}`;
        modules[mod] = {
          A: { dtype: 'float32', shape: [r, inD], data: fill(r * inD, 1 / Math.sqrt(inD)) },
          B: { dtype: 'float32', shape: [outD, r], data: fill(outD * r, 0.01) },
          scaling: 2,
        };
      }
    }
    return { name: `expert-${e + 1}`, modules };
  });
}

function dirichlet(n: number, rnd: () => number): number[] {
  const g = Array.from({ length: n }, () => -Math.log(1 - rnd()));
  const s = g.reduce((a, b) => a + b, 0);
  const l = g.map((v) => v / s);
  l[n - 1] = 1 - l.slice(0, n - 1).reduce((a, b) => a + b, 0); // exactly on the simplex
  return l;
}

interface ReqStats {
  ttft: number;
  latency: number;
  tokens: number;
  tFirst: number;
  tEnd: number;
  times: number[];
}

/** One streamed completion; times in seconds from `t0`. */
async function streamOne(url: string, body: Record<string, unknown>, t0: number): Promise<ReqStats> {
  const start = performance.now();
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (!r.ok || !r.body) throw new Error(`bench: HTTP ${r.status}: ${await r.text()}`);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let tFirst = 0;
  let tokens = 0;
  const times: number[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let k: number;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const line = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      const j = JSON.parse(line.slice(6)) as { choices: Array<{ text: string }>; usage?: { completion_tokens: number } };
      if (j.choices.length && j.choices[0].text) {
        const now = performance.now();
        if (!tFirst) tFirst = now;
        times.push((now - t0) / 1000);
      }
      if (j.usage) tokens = j.usage.completion_tokens;
    }
  }
  const end = performance.now();
  return { ttft: (tFirst - start) / 1000, latency: (end - start) / 1000, tokens, tFirst: (tFirst - t0) / 1000, tEnd: (end - t0) / 1000, times };
}

async function wave(
  server: 'soup' | 'merged',
  s: RunningServer,
  o: Required<Pick<ServeBenchOptions, 'concurrency' | 'promptTokens' | 'maxTokens' | 'experts'>>,
  rnd: () => number,
): Promise<WaveStats> {
  const t0 = performance.now();
  const reqs = Array.from({ length: o.concurrency }, (_, i) => {
    const prompt = Array.from({ length: o.promptTokens }, () => 3 + Math.floor(rnd() * 200));
    return streamOne(
      s.url,
      {
        model: 'soup',
        prompt,
        max_tokens: o.maxTokens,
        temperature: 1,
        seed: i,
        ...(server === 'soup' ? { lambda: dirichlet(o.experts, rnd), mode: 'soup' } : {}),
      },
      t0,
    );
  });
  const rs = await Promise.all(reqs);
  const seconds = (performance.now() - t0) / 1000;
  const tokens = rs.reduce((a, r) => a + r.tokens, 0);
  // the decode phase: once every request has joined the batch (its first token out), to the end
  const lastFirst = Math.max(...rs.map((r) => r.tFirst));
  const decoded = rs.reduce((a, r) => a + r.times.filter((t) => t > lastFirst).length, 0);
  return {
    server,
    requests: rs.length,
    tokens,
    seconds,
    tokensPerSecond: tokens / seconds,
    ttftP50: q(
      rs.map((r) => r.ttft),
      0.5,
    ),
    ttftP99: q(
      rs.map((r) => r.ttft),
      0.99,
    ),
    latencyP50: q(
      rs.map((r) => r.latency),
      0.5,
    ),
    latencyP99: q(
      rs.map((r) => r.latency),
      0.99,
    ),
    decodeTokensPerSecond: decoded / Math.max(1e-9, seconds - lastFirst),
  };
}

/** The benches' LLaMA-shaped model: SwiGLU width 8/3·H rounded to 64, untied, rms_norm_eps 1e-5, EOS 2. */
function benchLlama(H: number, heads: number, layers = 8, vocab = 32000, intermediate = Math.round((H * 8) / 3 / 64) * 64): LlamaConfig {
  return tinyLlama({
    vocabSize: vocab,
    hiddenSize: H,
    intermediateSize: intermediate,
    numHiddenLayers: layers,
    numAttentionHeads: heads,
    rmsNormEps: 1e-5,
    eosTokenId: 2,
  });
}

export async function benchServe(opts: ServeBenchOptions = {}): Promise<ServeBenchResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const H = opts.hidden ?? 1024;
  const heads = opts.heads ?? 16;
  const cfg = benchLlama(H, heads, opts.layers, opts.vocab, opts.intermediate);
  const N = opts.experts ?? 4,
    r = opts.rank ?? 16;
  const targets = opts.targets ?? ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  const C = opts.concurrency ?? 64,
    P = opts.promptTokens ?? 16,
    T = opts.maxTokens ?? 32,
    W = opts.waves ?? 2,
    pairs = opts.ttftPairs ?? 30;
  const budget = (opts.seconds ?? 600) * 1000;
  const seed = opts.seed ?? 1;
  const t00 = performance.now();
  const params = llamaShapes(cfg).reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
  log(
    `bench serve: LLaMA d=${H}, ${cfg.numHiddenLayers} layers, ${cfg.numAttentionHeads} heads, MLP ${cfg.intermediateSize}, vocab ${cfg.vocabSize} (${(params / 1e6).toFixed(0)} M parameters, fp32), ${N} experts of rank ${r} on ${targets.join(',')}; ${C} concurrent requests × ${P}-token prompts × ${T} new tokens; ${opts.threads ?? 'all'} threads`,
  );
  const weights = randomWeights(cfg, seed, 0.02);
  const experts = randomExperts(cfg, N, r, targets, seed + 1);
  const eo = { threads: opts.threads };
  const soupEngine = await SoupEngine.create(cfg, weights, experts, eo);
  const mergedEngine = await SoupEngine.create(cfg, weights, [], eo);
  // one printable character per token, no EOS: exactly T tokens, one streamed chunk each
  const codec: TextCodec = {
    encode: async (t) => Array.from(Buffer.from(t), (b) => b + 3),
    decode: async (ids) => String.fromCharCode(...ids.map((i) => 33 + (i % 94))),
  };
  const big = { maxBatch: Math.max(64, C * 2), maxQueue: Math.max(256, C * 2), maxTokensCap: Math.max(512, T), port: 0 };
  const soup = await serve({ engine: soupEngine, codec, ...big });
  const merged = await serve({ engine: mergedEngine, codec, ...big });
  const rnd = mulberry32(seed + 2);
  const waves: WaveStats[] = [];
  try {
    // warm-up: one short request each (allocator, thread pool)
    await streamOne(soup.url, { model: 'soup', prompt: [5, 6, 7], max_tokens: 2, lambda: dirichlet(N, rnd) }, performance.now());
    await streamOne(merged.url, { model: 'soup', prompt: [5, 6, 7], max_tokens: 2 }, performance.now());
    for (let w = 0; w < W; w++) {
      for (const which of w % 2 ? (['merged', 'soup'] as const) : (['soup', 'merged'] as const)) {
        if (waves.length >= 2 && performance.now() - t00 > budget) break;
        const st = await wave(which, which === 'soup' ? soup : merged, { concurrency: C, promptTokens: P, maxTokens: T, experts: N }, rnd);
        waves.push(st);
        log(
          `  ${which.padEnd(6)} wave: ${st.tokens} tokens in ${st.seconds.toFixed(2)} s = ${st.tokensPerSecond.toFixed(1)} tokens/s; TTFT p50 ${st.ttftP50.toFixed(3)} s p99 ${st.ttftP99.toFixed(3)} s; latency p50 ${st.latencyP50.toFixed(2)} s p99 ${st.latencyP99.toFixed(2)} s`,
        );
      }
    }
    // TTFT of a fresh λ vs a repeated λ, interleaved, one request at a time on the idle soup server
    const fixed = dirichlet(N, rnd);
    const fresh: number[] = [],
      repeated: number[] = [];
    const prompt = Array.from({ length: P }, () => 3 + Math.floor(rnd() * 200));
    for (let i = 0; i < pairs && performance.now() - t00 < budget * 1.5; i++) {
      const order = i % 2 ? ['repeated', 'fresh'] : ['fresh', 'repeated'];
      for (const k of order) {
        const lam = k === 'fresh' ? dirichlet(N, rnd) : fixed;
        const st = await streamOne(soup.url, { model: 'soup', prompt, max_tokens: 1, lambda: lam, temperature: 0 }, performance.now());
        (k === 'fresh' ? fresh : repeated).push(st.ttft);
      }
    }
    const pick = (k: 'soup' | 'merged') => {
      const ws = waves.filter((w) => w.server === k);
      const m = (f: (w: WaveStats) => number) => median(ws.map(f));
      return {
        server: k,
        requests: ws.reduce((a, w) => a + w.requests, 0),
        tokens: ws.reduce((a, w) => a + w.tokens, 0),
        seconds: ws.reduce((a, w) => a + w.seconds, 0),
        tokensPerSecond: m((w) => w.tokensPerSecond),
        ttftP50: m((w) => w.ttftP50),
        ttftP99: m((w) => w.ttftP99),
        latencyP50: m((w) => w.latencyP50),
        latencyP99: m((w) => w.latencyP99),
        decodeTokensPerSecond: m((w) => w.decodeTokensPerSecond),
      } as WaveStats;
    };
    const s1 = pick('soup'),
      m1 = pick('merged');
    const res: ServeBenchResult = {
      config: {
        hidden: H,
        layers: cfg.numHiddenLayers,
        heads,
        intermediate: cfg.intermediateSize,
        vocab: cfg.vocabSize,
        parameters: params,
        experts: N,
        rank: r,
        targets,
        concurrency: C,
        promptTokens: P,
        maxTokens: T,
        threads: opts.threads ?? 'all',
      },
      waves,
      soup: s1,
      merged: m1,
      ratio: s1.tokensPerSecond / m1.tokensPerSecond,
      decodeRatio: s1.decodeTokensPerSecond / m1.decodeTokensPerSecond,
      ttft: {
        freshMedian: median(fresh),
        repeatedMedian: median(repeated),
        ratio: median(fresh) / median(repeated),
        pairedRatio: median(fresh.map((f, i) => f / repeated[i])),
        pairs: fresh.length,
      },
      seconds: (performance.now() - t00) / 1000,
    };
    log(
      `bench serve: ${C} requests each with its own λ: ${s1.tokensPerSecond.toFixed(1)} tokens/s vs one merged model: ${m1.tokensPerSecond.toFixed(1)} tokens/s → ratio ${res.ratio.toFixed(3)} (decode-phase ratio ${res.decodeRatio.toFixed(3)})`,
    );
    log(
      `bench serve: median TTFT fresh λ ${(res.ttft.freshMedian * 1000).toFixed(1)} ms vs repeated λ ${(res.ttft.repeatedMedian * 1000).toFixed(1)} ms (ratio ${res.ttft.ratio.toFixed(3)}; median of the ${res.ttft.pairs} interleaved pairs' ratios ${res.ttft.pairedRatio.toFixed(3)}); ${res.seconds.toFixed(1)} s in all`,
    );
    return res;
  } finally {
    await soup.close();
    await merged.close();
  }
}

export interface SoakOptions
  extends Pick<
    ServeBenchOptions,
    'hidden' | 'layers' | 'vocab' | 'heads' | 'experts' | 'rank' | 'targets' | 'promptTokens' | 'maxTokens' | 'threads' | 'seed' | 'log'
  > {
  /** Seconds of steady load (default 60). */
  seconds?: number;
  /** Requests per second, started on a fixed clock whatever the server does (default 1). */
  rate?: number;
}

export interface SoakResult {
  seconds: number;
  rate: number;
  requests: number;
  statuses: Record<string, number>;
  errors5xx: number;
  /** VmRSS (all resident pages, file-backed ones included) and RssAnon (what the process itself holds:
   *  the leak check; the weights' file pages come and go with the page cache and V8's collection of the
   *  loader's buffers), in MiB, sampled every second. */
  rssMiB: { at10s: number; atEnd: number; ratio: number; samples: number[] };
  anonMiB: { at10s: number; atEnd: number; ratio: number; samples: number[] };
  latencyP50: number;
  latencyP99: number;
  ttftP50: number;
  exitCode: number | null;
}

/**
 * The soak: `rsoup serve` as a child process on a synthetic model written to a temp dir, a steady open-loop
 * rate of requests (each with its own random λ; half streamed) for `seconds`, its RSS sampled every
 * second from /proc; then SIGTERM (the child must drain and exit 0).
 */
export async function soakServe(opts: SoakOptions = {}): Promise<SoakResult> {
  const { mkdtempSync, rmSync, readFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { spawn } = await import('node:child_process');
  const { saveModelDir, writePeftAdapter } = await import('../io/index.js');
  const { llamaConfigToHF, peftAdapterConfig } = await import('../train/llama.js');
  const { packageRoot } = await import('../native/index.js');
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const H = opts.hidden ?? 1024,
    heads = opts.heads ?? 16;
  const cfg = benchLlama(H, heads, opts.layers, opts.vocab);
  const N = opts.experts ?? 4,
    r = opts.rank ?? 16,
    T = opts.maxTokens ?? 16,
    P = opts.promptTokens ?? 16;
  const targets = opts.targets ?? ['q_proj', 'v_proj'];
  const S = opts.seconds ?? 60,
    rate = opts.rate ?? 1,
    seed = opts.seed ?? 1;
  const dir = mkdtempSync(join(tmpdir(), 'rsoup-soak-'));
  try {
    await saveModelDir(join(dir, 'base'), randomWeights(cfg, seed, 0.02), { config: llamaConfigToHF(cfg) });
    const ex = randomExperts(cfg, N, r, targets, seed + 1);
    const dirs: string[] = [];
    for (const e of ex) {
      const t: TensorMap = {};
      for (const [m, f] of Object.entries(e.modules)) {
        t[`base_model.model.${m}.lora_A.weight`] = f.A;
        t[`base_model.model.${m}.lora_B.weight`] = f.B;
      }
      const d = join(dir, e.name);
      await writePeftAdapter(d, t, peftAdapterConfig({ r, lora_alpha: 2 * r, lora_dropout: 0, target_modules: targets, use_rslora: false }));
      dirs.push(d);
    }
    const child = spawn(
      process.execPath,
      [
        join(packageRoot, 'dist', 'cli', 'main.js'),
        'serve',
        '--base',
        join(dir, 'base'),
        '--experts',
        ...dirs,
        '--port',
        '0',
        ...(opts.threads ? ['--threads', String(opts.threads)] : []),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    const url = await new Promise<string>((res, rej) => {
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /listening on (http:\/\/\S+) /.exec(err);
        if (m) res(m[1]);
      });
      child.on('exit', (code) => rej(new Error(`rsoup serve exited ${code}: ${err}`)));
    });
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const mem = (field: string) => {
      const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return m ? Number(m[1]) / 1024 : NaN;
    };
    const rss = () => mem('VmRSS');
    log(
      `soak: ${url}, ${S} s at ${rate} requests/s (${P}-token prompts, ${T} new tokens, a random λ each, half streamed); model d=${H}, ${cfg.numHiddenLayers} layers, vocab ${cfg.vocabSize}, ${N} experts r=${r}`,
    );
    const rnd = mulberry32(seed + 3);
    const statuses: Record<string, number> = {};
    const lat: number[] = [],
      ttft: number[] = [];
    const samples: number[] = [],
      anon: number[] = [];
    const pending: Promise<void>[] = [];
    const t0 = performance.now();
    let sent = 0;
    const sampler = setInterval(() => {
      samples.push(rss());
      anon.push(mem('RssAnon'));
    }, 1000);
    while (performance.now() - t0 < S * 1000) {
      const due = t0 + (sent / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      const i = sent++;
      const body = { model: 'soup', prompt: Array.from({ length: P }, () => 3 + Math.floor(rnd() * 200)), max_tokens: T, lambda: dirichlet(N, rnd), seed: i };
      pending.push(
        (i % 2
          ? streamOne(url, body, performance.now()).then((x) => {
              statuses['200'] = (statuses['200'] ?? 0) + 1;
              lat.push(x.latency);
              ttft.push(x.ttft);
            })
          : fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(
              async (res) => {
                const t = performance.now();
                await res.arrayBuffer();
                statuses[String(res.status)] = (statuses[String(res.status)] ?? 0) + 1;
                lat.push((t - t0) / 1000 - i / rate);
              },
            )
        ).catch((e: Error) => {
          const m = /HTTP (\d+)/.exec(e.message);
          statuses[m ? m[1] : 'error'] = (statuses[m ? m[1] : 'error'] ?? 0) + 1;
        }),
      );
    }
    const atEndRss = rss(),
      atEndAnon = mem('RssAnon');
    clearInterval(sampler);
    await Promise.all(pending);
    child.kill('SIGTERM');
    const code = await exited;
    const at10 = samples[Math.min(9, samples.length - 1)],
      anon10 = anon[Math.min(9, anon.length - 1)];
    const res: SoakResult = {
      seconds: S,
      rate,
      requests: sent,
      statuses,
      errors5xx: Object.entries(statuses)
        .filter(([k]) => k.startsWith('5'))
        .reduce((a, [, v]) => a + v, 0),
      rssMiB: { at10s: at10, atEnd: atEndRss, ratio: atEndRss / at10, samples },
      anonMiB: { at10s: anon10, atEnd: atEndAnon, ratio: atEndAnon / anon10, samples: anon },
      latencyP50: q(lat, 0.5),
      latencyP99: q(lat, 0.99),
      ttftP50: q(ttft, 0.5),
      exitCode: code,
    };
    log(
      `soak: ${sent} requests, statuses ${JSON.stringify(statuses)}, 5xx ${res.errors5xx}; VmRSS ${at10.toFixed(0)} MiB at 10 s, ${atEndRss.toFixed(0)} MiB at ${S} s (ratio ${res.rssMiB.ratio.toFixed(3)}), RssAnon ${anon10.toFixed(0)} → ${atEndAnon.toFixed(0)} MiB (ratio ${res.anonMiB.ratio.toFixed(3)}); latency p50 ${res.latencyP50.toFixed(2)} s p99 ${res.latencyP99.toFixed(2)} s; SIGTERM → exit ${code}`,
    );
    return res;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
