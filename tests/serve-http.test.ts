// SPDX-License-Identifier: MIT
// `rsoup serve` over HTTP, driven by a client no one here wrote (the npm `openai` package), and the
// safety checks: 400 naming the field for every bad input, 1 000 malformed bodies -> 4xx never 5xx,
// the API key on every route but /healthz, loopback by default, 429 on a full queue, a client that
// disconnects frees its sequence, SIGTERM drains the requests in flight and exits 0, run-dir loading.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serve, type RunningServer } from '../src/serve/index.js';
import { readRunDir } from '../src/serve/rundir.js';
import { makeAdapter, makeBase, SERVE_CFG } from './helpers/serve.js';
import { packageRoot } from '../src/native/index.js';

const CFG = SERVE_CFG;
const tmp = mkdtempSync(join(tmpdir(), 'rsoup-serve-http-'));
const base = join(tmp, 'base');
const experts = [join(tmp, 'expert-pos'), join(tmp, 'expert-neg')];
let s: RunningServer;

beforeAll(async () => {
  await makeBase(base, CFG, 3, { tokenizer: true });
  await makeAdapter(experts[0], CFG, { r: 4, alpha: 8, targets: ['q_proj', 'v_proj'], seed: 31, scale: 0.5 });
  await makeAdapter(experts[1], CFG, { r: 4, alpha: 8, targets: ['q_proj', 'v_proj'], seed: 32, scale: 0.5 });
  s = await serve({ base, experts, port: 0, threads: 1, maxTokensCap: 1000 });
});
afterAll(async () => {
  await s?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const client = () => new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
// the extension fields ride along as extra body fields of the official client's request
type Extra = { lambda?: number[]; mode?: string };
const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

describe('serve over HTTP with the openai client', () => {
  it('completes, for the soup at any λ and for an expert by name', async () => {
    const c = client();
    const r = await c.completions.create({
      model: 'soup',
      prompt: 'The world is',
      max_tokens: 8,
      temperature: 0,
      lambda: [0.3, 0.7],
    } as OpenAI.CompletionCreateParamsNonStreaming & Extra);
    expect(r.object).toBe('text_completion');
    expect(typeof r.choices[0].text).toBe('string');
    expect(['stop', 'length']).toContain(r.choices[0].finish_reason);
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    expect(r.usage!.completion_tokens).toBeLessThanOrEqual(8);
    const e = await c.completions.create({ model: 'expert-pos', prompt: 'The world is', max_tokens: 8, temperature: 0 });
    const one = await c.completions.create({
      model: 'soup',
      prompt: 'The world is',
      max_tokens: 8,
      temperature: 0,
      lambda: [1, 0],
    } as OpenAI.CompletionCreateParamsNonStreaming & Extra);
    expect(one.choices[0].text).toBe(e.choices[0].text); // an expert's name is its one-hot λ
    const models = await c.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['soup', 'expert-pos', 'expert-neg']);
  });

  it('streams (server-sent events ending in [DONE]) the same text as the non-streamed call', async () => {
    const c = client();
    const params = { model: 'soup', prompt: 'A man', max_tokens: 24, temperature: 0.8, seed: 7, lambda: [0.5, 0.5], mode: 'soup' };
    const whole = await c.completions.create(params as OpenAI.CompletionCreateParamsNonStreaming & Extra);
    const stream = await c.completions.create({ ...params, stream: true } as OpenAI.CompletionCreateParamsStreaming & Extra);
    let text = '';
    let chunks = 0;
    let finish: string | null = null;
    for await (const ch of stream) {
      chunks++;
      text += ch.choices[0]?.text ?? '';
      finish = ch.choices[0]?.finish_reason ?? finish;
    }
    expect(chunks).toBeGreaterThan(2);
    expect(text).toBe(whole.choices[0].text);
    expect(finish).toBe(whole.choices[0].finish_reason);
    const raw = await (await post(`${s.url}/v1/completions`, { ...params, stream: true })).text();
    expect(raw.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(
      raw
        .split('\n\n')
        .filter(Boolean)
        .every((l) => l.startsWith('data: ')),
    ).toBe(true);
  });

  it('gets a 400 naming the field for a bad λ and every other bad field', async () => {
    const c = client();
    const bad = async (extra: Record<string, unknown>, field: string) => {
      const err = await c.completions
        .create({ model: 'soup', prompt: 'hi', max_tokens: 4, lambda: [0.5, 0.5], ...extra } as OpenAI.CompletionCreateParamsNonStreaming)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err, JSON.stringify(extra)).toBeInstanceOf(OpenAI.BadRequestError);
      const e = err as InstanceType<typeof OpenAI.BadRequestError>;
      expect(e.status).toBe(400);
      expect(e.message).toContain(field);
      return e.message;
    };
    expect(await bad({ lambda: [0.2, 0.3, 0.5] }, 'lambda')).toMatch(/3 entries, expected 2/);
    expect(await bad({ lambda: [1.5, -0.5] }, 'lambda')).toMatch(/>= 0/);
    expect(await bad({ lambda: [0.2, 0.2] }, 'lambda')).toMatch(/sum to 1/);
    await bad({ lambda: [NaN, 1] }, 'lambda'); // JSON sends null
    await bad({ lambda: ['a', 1] }, 'lambda');
    await bad({ lambda: undefined }, 'lambda');
    await bad({ max_tokens: 1001 }, 'max_tokens');
    await bad({ max_tokens: 0 }, 'max_tokens');
    await bad({ mode: 'average' }, 'mode');
    await bad({ temperature: -1 }, 'temperature');
    await bad({ top_p: 0 }, 'top_p');
    await bad({ model: 'gpt-4' }, 'model');
    await bad({ model: 'expert-pos' }, 'lambda'); // lambda only with model 'soup'
    await bad({ prompt: [1, 999] }, 'prompt');
    await bad({ n: 3 }, 'n');
    await bad({ lambda_: [1, 0] }, 'lambda_');
  });

  it('answers 1 000 malformed bodies with 4xx, never 5xx, and stays up', async () => {
    const bodies: Array<{ body: string; type?: string }> = [];
    const deep = (d: number) => '['.repeat(d) + ']'.repeat(d);
    const deepObj = (d: number) => '{"a":'.repeat(d) + '1' + '}'.repeat(d);
    const fields = ['model', 'prompt', 'max_tokens', 'temperature', 'top_p', 'seed', 'stream', 'stop', 'lambda', 'mode', 'n', 'echo'];
    const values = [null, true, false, -1, 0, 1e308, -1e308, 3.5, '', 'x', 'x'.repeat(5000), [], [null], [[]], {}, { a: 1 }, [1, 2, 3], ['a'], 1e-320];
    for (const f of fields)
      for (const v of values) bodies.push({ body: JSON.stringify({ model: 'soup', prompt: 'hi', lambda: [0.5, 0.5], max_tokens: 2, [f]: v }) });
    for (let d = 1; bodies.length < 600; d = ((d * 3) % 20011) + 1) bodies.push({ body: d % 2 ? deep(d) : deepObj(d) });
    const junk = [
      '',
      '{',
      '}',
      '{"model":',
      'null',
      '[]',
      '"soup"',
      '1',
      'true',
      '{"model":"soup",}',
      '\u0000',
      '{"__proto__":{"x":1}}',
      '{"constructor":{"prototype":{}}}',
      'NaN',
      '{"lambda":[1,0],"lambda":[0,1]}',
    ];
    for (let i = 0; bodies.length < 900; i++) bodies.push({ body: junk[i % junk.length] + (i > junk.length ? ' '.repeat(i % 7) : '') });
    for (let i = 0; bodies.length < 950; i++) bodies.push({ body: '{"model":"soup","prompt":"' + 'a'.repeat(1 << (20 + (i % 2))) + '"}' }); // over the body limit
    for (let i = 0; bodies.length < 1000; i++)
      bodies.push({
        body: 'model=soup&prompt=hi',
        type: ['application/x-www-form-urlencoded', 'text/plain', 'application/octet-stream', 'multipart/form-data'][i % 4],
      });
    expect(bodies.length).toBe(1000);
    const fieldVariants = fields.length * values.length;
    const statuses = new Map<number, number>();
    const all: number[] = [];
    for (let i = 0; i < bodies.length; i += 20) {
      const rs = await Promise.all(
        bodies.slice(i, i + 20).map((b) =>
          fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': b.type ?? 'application/json' }, body: b.body }).then(
            async (r) => {
              await r.arrayBuffer();
              return r.status;
            },
            () => 0,
          ),
        ),
      );
      for (const st of rs) statuses.set(st, (statuses.get(st) ?? 0) + 1);
      all.push(...rs);
    }
    // bad JSON, deep nesting, huge bodies, other content types: every one a 4xx
    expect(all.slice(fieldVariants).every((c) => c >= 400 && c < 500)).toBe(true);
    const codes = [...statuses.keys()];
    console.log(`serve malformed bodies: status counts ${JSON.stringify(Object.fromEntries(statuses))}`);
    // a few field/value variants are valid requests (stream: true, stop: 'x', seed: 0, …): 200; nothing is 5xx
    expect(
      codes.every((c) => (c >= 400 && c < 500) || c === 200),
      JSON.stringify(Object.fromEntries(statuses)),
    ).toBe(true);
    expect(statuses.get(200) ?? 0).toBeLessThan(40);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    const ok = await post(`${s.url}/v1/completions`, { model: 'soup', prompt: 'still alive', max_tokens: 2, lambda: [0.5, 0.5] });
    expect(ok.status).toBe(200);
  });

  it('a client that disconnects mid-stream frees its sequence (queue and batch back to 0)', async () => {
    const ac = new AbortController();
    const r = await post(`${s.url}/v1/completions`, { model: 'soup', prompt: 'Long', max_tokens: 1000, lambda: [0.5, 0.5], stream: true, temperature: 1 }, {});
    void ac;
    const reader = r.body!.getReader();
    await reader.read(); // first chunk
    expect(s.scheduler.active).toBe(1);
    await reader.cancel(); // closes the connection
    const t0 = Date.now();
    while ((s.scheduler.active || s.scheduler.queued) && Date.now() - t0 < 10_000) await new Promise((res) => setTimeout(res, 20));
    expect(s.scheduler.active).toBe(0);
    const m = await (await fetch(`${s.url}/metrics`)).text();
    expect(m).toMatch(/^rsoup_queue_depth 0$/m);
    expect(m).toMatch(/^rsoup_active_sequences 0$/m);
    expect(m).toMatch(/rsoup_requests_total\{route="\/v1\/completions",status="200"\}/);
    expect(m).toMatch(/rsoup_time_to_first_token_seconds_bucket/);
    expect((await s.engine.info()).sequences).toBe(0);
  });

  it('429 when the queue is full', async () => {
    const t = await serve({ engine: s.engine, codec: s.scheduler.codec, port: 0, maxBatch: 1, maxQueue: 1 });
    try {
      const rs = await Promise.all(
        Array.from({ length: 5 }, () =>
          post(`${t.url}/v1/completions`, { model: 'soup', prompt: 'x', max_tokens: 40, lambda: [0.5, 0.5] }).then(async (r) => {
            await r.arrayBuffer();
            return r.status;
          }),
        ),
      );
      expect(rs).toContain(429);
      expect(rs).toContain(200);
      expect(rs.every((x) => x === 200 || x === 429)).toBe(true);
    } finally {
      await t.app.close(); // the engine belongs to the other server
    }
  });
});

describe('serve: access', () => {
  it('with an API key, every route but /healthz refuses a request without it', async () => {
    const t = await serve({ engine: s.engine, codec: s.scheduler.codec, port: 0, apiKey: 'sekret' });
    try {
      expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
      for (const [m, p] of [
        ['GET', '/'],
        ['GET', '/v1/models'],
        ['GET', '/v1/info'],
        ['GET', '/metrics'],
        ['POST', '/v1/completions'],
        ['POST', '/v1/score'],
        ['GET', '/nope'],
      ]) {
        const r = await fetch(`${t.url}${p}`, { method: m, headers: { 'content-type': 'application/json' }, body: m === 'POST' ? '{}' : undefined });
        expect(r.status, `${m} ${p}`).toBe(401);
        const w = await fetch(`${t.url}${p}`, {
          method: m,
          headers: { 'content-type': 'application/json', authorization: 'Bearer wrong' },
          body: m === 'POST' ? '{}' : undefined,
        });
        expect(w.status, `${m} ${p} wrong key`).toBe(401);
      }
      expect((await fetch(`${t.url}/v1/models`, { headers: { authorization: 'Bearer sekret' } })).status).toBe(200);
      const c = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'sekret', maxRetries: 0 });
      const r = await c.completions.create({ model: 'expert-neg', prompt: 'ok', max_tokens: 2 });
      expect(r.choices.length).toBe(1);
      await expect(new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'nope', maxRetries: 0 }).models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    } finally {
      await t.app.close();
    }
  });

  it('binds to loopback only by default', async () => {
    const addr = s.app.server.address();
    expect(typeof addr === 'object' && addr?.address).toBe('127.0.0.1');
    const outside = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal);
    if (!outside) return console.log('serve loopback test: no non-loopback IPv4 interface here; checked the bound address only');
    const err = await new Promise<string>((res) => {
      const q = httpRequest({ host: outside.address, port: s.port, path: '/healthz', timeout: 3000 }, () => res('connected'));
      q.on('error', (e: NodeJS.ErrnoException) => res(e.code ?? 'error'));
      q.on('timeout', () => {
        q.destroy();
        res('timeout');
      });
      q.end();
    });
    expect(err).toBe('ECONNREFUSED');
  });
});

describe('rsoup serve (the CLI)', () => {
  it('SIGTERM with requests in flight: they complete, then the process exits 0', async () => {
    const child = spawn(
      process.execPath,
      [join(packageRoot, 'dist', 'cli', 'main.js'), 'serve', '--base', base, '--experts', ...experts, '--port', '0', '--threads', '1'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let err = '';
    const url = await new Promise<string>((res, rej) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /listening on (http:\/\/\S+) /.exec(err);
        if (m) res(m[1]);
      });
      child.on('exit', (code) => rej(new Error(`exited ${code}: ${err}`)));
    });
    const inflight = Array.from({ length: 3 }, (_, i) =>
      post(`${url}/v1/completions`, { model: 'soup', prompt: `request ${i}`, max_tokens: 60, lambda: [0.4, 0.6], temperature: 0.7, seed: i }).then(
        async (r) => ({ status: r.status, body: (await r.json()) as { choices: Array<{ finish_reason: string }>; usage: { completion_tokens: number } } }),
      ),
    );
    await new Promise((res) => setTimeout(res, 300));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    child.kill('SIGTERM');
    const rs = await Promise.all(inflight);
    for (const r of rs) {
      expect(r.status).toBe(200);
      expect(['stop', 'length']).toContain(r.body.choices[0].finish_reason);
    }
    expect(await exited).toBe(0);
    expect(err).toMatch(/SIGTERM: draining/);
    expect(err).toMatch(/drained/);
  });
});

describe('serve RUN_DIR', () => {
  it("reads only finished stages (naming the missing one), serves the experts, scores with the run's rewards", async () => {
    const run = join(tmp, 'run');
    const stage = (d: string, files: string[] = []) => {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, '.stage.json'), JSON.stringify({ hash: 'x', done: true, files }));
    };
    const x = {
      name: 'mini',
      baseDir: tmp,
      rewardNames: ['happy', 'topic'],
      base: { model: base },
      sweep: { interpolation: 'lora' },
      rewards: [
        { type: 'lexicon', name: 'happy', words: ['good', 'happy', 'love'] },
        { type: 'lexicon', name: 'topic', words: ['life', 'world', 'man'] },
      ],
    };
    mkdirSync(run, { recursive: true });
    writeFileSync(join(run, 'experiment.json'), JSON.stringify(x));
    expect(() => readRunDir(run)).toThrow(/stage 'base' is not finished/);
    stage(join(run, 'base'));
    expect(() => readRunDir(run)).toThrow(/stage 'experts' is not finished: expert-happy/);
    const { cpSync } = await import('node:fs');
    for (const [i, n] of ['happy', 'topic'].entries()) {
      cpSync(experts[i], join(run, 'experts', `expert-${n}`, 'adapter'), { recursive: true });
      stage(join(run, 'experts', `expert-${n}`), ['adapter/adapter_config.json']);
    }
    const models = [
      { kind: 'init', name: 'init', rewards: [0.1, 0.1] },
      { kind: 'expert', name: 'expert-happy', lambda: [1, 0], rewards: [0.5, 0.05] },
      { kind: 'expert', name: 'expert-topic', lambda: [0, 1], rewards: [0.05, 0.4] },
      { kind: 'soup', name: 'soup', lambda: [0.5, 0.5], rewards: [0.3, 0.3] },
    ];
    writeFileSync(join(run, 'report.json'), JSON.stringify({ models }));
    stage(join(run, 'sweep'));
    const info = readRunDir(run);
    expect(info.defaultMode).toBe('soup-ab');
    expect(info.front?.length).toBe(4);
    const t = await serve({ runDir: run, port: 0, threads: 1 });
    try {
      const c = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'x', maxRetries: 0 });
      expect((await c.models.list()).data.map((m) => m.id)).toEqual(['soup', 'expert-happy', 'expert-topic']);
      const r = await c.completions.create({ model: 'soup', prompt: 'Life', max_tokens: 4, lambda: [0.25, 0.75] } as OpenAI.CompletionCreateParamsNonStreaming &
        Extra);
      expect(r.choices[0].text.length).toBeGreaterThanOrEqual(0);
      const sc = (await (await post(`${t.url}/v1/score`, { texts: ['good happy life', 'the world'] })).json()) as { rewards: string[]; scores: number[][] };
      expect(sc.rewards).toEqual(['happy', 'topic']);
      expect(sc.scores[0][0]).toBeGreaterThan(sc.scores[1][0]);
      expect(sc.scores[1][1]).toBeGreaterThan(0);
      const info2 = (await (await fetch(`${t.url}/v1/info`)).json()) as { default_mode: string; front: unknown[] };
      expect(info2.default_mode).toBe('soup-ab');
      expect(info2.front.length).toBe(4);
      expect((await post(`${s.url}/v1/score`, { texts: ['x'] })).status).toBe(404); // --base servers have no rewards
    } finally {
      await t.close();
    }
  });
});
