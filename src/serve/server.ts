// SPDX-License-Identifier: MIT
// `rsoup serve`: an OpenAI-compatible completions server over one SoupEngine (fastify). Every request
// picks its own λ (and mode); the scheduler batches all of them into one native step per token.
//   POST /v1/completions  GET /v1/models  GET /v1/info  POST /v1/score  GET /healthz  GET /metrics  GET /
import { timingSafeEqual, randomInt } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { SoupError } from '../errors.js';
import type { Reward } from '../rewards/index.js';
import { loadTokenizer } from '../train/llama.js';
import { byteCodec, tokenizerCodec, type TextCodec } from './codec.js';
import { SoupEngine, SOUP_MODES, type EngineOptions, type SoupMode } from './engine.js';
import type { ServeMetrics } from './metrics.js';
import { playgroundHtml } from './playground.js';
import { readRunDir, type FrontPoint } from './rundir.js';
import { QueueFullError, Scheduler, type GenParams } from './scheduler.js';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';

export interface ServeOptions extends EngineOptions {
  /** A run dir of `rsoup run` / `rsoup demo` (base model, experts, rewards, report). */
  runDir?: string;
  /** Or: a Hugging Face base dir and PEFT adapter dirs. */
  base?: string;
  experts?: string[];
  /** Names of the experts (default: the adapter dirs' names; in a run dir expert-<reward>). */
  expertNames?: string[];
  /** Or: an engine made already (benchmarks, tests) and its codec (default: bytes). */
  engine?: SoupEngine;
  codec?: TextCodec;
  rewards?: Reward[];
  rewardNames?: string[];
  front?: FrontPoint[];
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
  /** Default 8000; 0 picks a free port. */
  port?: number;
  /** Every route but /healthz then needs `Authorization: Bearer <key>` (default: RSOUP_API_KEY). */
  apiKey?: string;
  /** Rows per native step (default 64). */
  maxBatch?: number;
  /** Requests waiting for a row before 429 (default 256). */
  maxQueue?: number;
  /** Largest max_tokens a request may ask for (default 512). */
  maxTokensCap?: number;
  /** Longest prompt in tokens (default 2048). */
  maxPromptTokens?: number;
  /** Request body limit in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** λ may leave the simplex (negative entries, sum ≠ 1) in 'soup' and 'soup-ab' (default false). */
  allowExtrapolation?: boolean;
  /** The mode when a request names none (a run dir: its sweep's interpolation; otherwise 'soup'). */
  defaultMode?: SoupMode;
  /** SIGTERM / drain(): how long in-flight requests may take (default 30 000 ms). */
  drainTimeoutMs?: number;
  /** Print one line per request on stderr. */
  log?: boolean;
}

export interface RunningServer {
  url: string;
  host: string;
  port: number;
  app: FastifyInstance;
  engine: SoupEngine;
  scheduler: Scheduler;
  metrics: ServeMetrics;
  /** Stops listening, lets in-flight requests finish (up to the deadline), frees the engine. */
  drain(timeoutMs?: number): Promise<{ completed: boolean }>;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly type = 'invalid_request_error',
  ) {
    super(message);
  }
}

const bad = (param: string, msg: string) => new HttpError(400, `${param}: ${msg}`, param);

const Prompt = z.union([
  z.string(),
  z.array(z.number().int().min(0)).min(1),
  z.array(z.string()).length(1),
  z.array(z.array(z.number().int().min(0)).min(1)).length(1),
]);

function completionSchema(cap: number) {
  return z.strictObject({
    model: z.string().min(1).max(256),
    prompt: Prompt,
    max_tokens: z
      .number()
      .int()
      .min(1)
      .max(cap, { message: `must be at most ${cap} (the server's --max-tokens-cap)` })
      .nullable()
      .optional(),
    temperature: z.number().min(0).max(2).nullable().optional(),
    top_p: z.number().gt(0).max(1).nullable().optional(),
    seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().optional(),
    stream: z.boolean().nullable().optional(),
    stop: z
      .union([z.string().min(1).max(256), z.array(z.string().min(1).max(256)).max(4)])
      .nullable()
      .optional(),
    lambda: z.array(z.number()).max(1024).optional(),
    mode: z.enum(SOUP_MODES as [SoupMode, ...SoupMode[]]).optional(),
    // OpenAI fields accepted at their defaults only
    n: z.literal(1).nullable().optional(),
    best_of: z.literal(1).nullable().optional(),
    echo: z.literal(false).nullable().optional(),
    logprobs: z.union([z.null(), z.literal(0)]).optional(),
    presence_penalty: z.literal(0).nullable().optional(),
    frequency_penalty: z.literal(0).nullable().optional(),
    logit_bias: z.union([z.null(), z.strictObject({})]).optional(),
    suffix: z.null().optional(),
    user: z.string().max(256).optional(),
    stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  });
}

const ScoreSchema = z.strictObject({
  samples: z
    .array(z.strictObject({ prompt: z.string().max(100_000), response: z.string().max(100_000) }))
    .min(1)
    .max(256)
    .optional(),
  texts: z.array(z.string().max(100_000)).min(1).max(256).optional(),
});

/** zod's first issue as "field: message" (the field is the top-level key, or the unknown key). */
function zodError(e: z.ZodError): HttpError {
  const i = e.issues[0];
  const keys = (i as { keys?: string[] }).keys;
  const path = i.path.map(String);
  if (i.code === 'unrecognized_keys' && keys?.length) return bad([...path, keys[0]].join('.'), `unknown field (not accepted by this server)`);
  const param = path.length ? path.join('.') : 'body';
  if (i.code === 'invalid_value' && path[0] === 'mode') return bad('mode', `unknown mode; use one of ${SOUP_MODES.join(', ')}`);
  return bad(param, i.message);
}

function keyOk(header: string | undefined, key: string): boolean {
  if (!header || !header.startsWith('Bearer ')) return false;
  const a = Buffer.from(header.slice(7)),
    b = Buffer.from(key);
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function serve(o: ServeOptions = {}): Promise<RunningServer> {
  const host = o.host ?? '127.0.0.1';
  const apiKey = o.apiKey ?? process.env.RSOUP_API_KEY ?? undefined;
  const cap = o.maxTokensCap ?? 512;
  const maxPrompt = o.maxPromptTokens ?? 2048;
  const drainMs = o.drainTimeoutMs ?? 30_000;
  // ---- the model -----------------------------------------------------------------------------------
  let engine = o.engine;
  let codec = o.codec;
  let rewards = o.rewards;
  let rewardNames = o.rewardNames ?? rewards?.map((r) => r.name) ?? [];
  let front = o.front;
  let defaultMode: SoupMode = o.defaultMode ?? 'soup';
  let name = 'rsoup';
  const eo: EngineOptions = { dtype: o.dtype, device: o.device, threads: o.threads, autocast: o.autocast };
  const codecFor = (dir: string, e: SoupEngine): TextCodec => {
    const tp = join(dir, 'tokenizer.json');
    return existsSync(tp) ? tokenizerCodec(loadTokenizer(tp), { bos: e.config.bosTokenId, eos: e.config.eosTokenId }) : byteCodec(e.config.vocabSize);
  };
  if (!engine) {
    if (o.runDir) {
      const rd = readRunDir(o.runDir);
      engine = await SoupEngine.load(rd.base, rd.experts, eo);
      codec ??= codecFor(rd.base, engine);
      if (!rewards) {
        const { buildRewards } = await import('../pipeline/rewards.js');
        rewards = await buildRewards(rd.rewardSpecs, rd.baseDir, join(rd.runDir, 'experiment.json'));
      }
      rewardNames = rd.rewardNames;
      front ??= rd.front;
      defaultMode = o.defaultMode ?? rd.defaultMode;
      name = rd.name;
    } else if (o.base && o.experts?.length) {
      const names = o.expertNames ?? uniqueNames(o.experts);
      if (names.length !== o.experts.length) throw new SoupError('ERR_SOUP_INVALID_ARG', `${names.length} expert names for ${o.experts.length} experts`);
      engine = await SoupEngine.load(
        o.base,
        o.experts.map((d, i) => ({ name: names[i], dir: d })),
        eo,
      );
      codec ??= codecFor(o.base, engine);
    } else {
      throw new SoupError('ERR_SOUP_INVALID_ARG', 'serve: give a run dir, or a base model dir and expert adapter dirs');
    }
  }
  codec ??= byteCodec(engine.config.vocabSize);
  if (defaultMode === 'soup-ab' && engine.abUnavailable) defaultMode = 'soup';
  const N = engine.experts.length;
  // fastify and prom-client load with the first server, not with the library
  const [{ default: Fastify }, { ServeMetrics: Metrics }] = await Promise.all([import('fastify'), import('./metrics.js')]);
  const metrics = new Metrics();
  const scheduler = new Scheduler(engine, codec, { maxBatch: o.maxBatch, maxQueue: o.maxQueue, metrics: metrics.scheduler() });
  const Completion = completionSchema(cap);
  const created = Math.floor(Date.now() / 1000);
  let draining = false;

  // ---- HTTP ----------------------------------------------------------------------------------------
  const app = Fastify({ bodyLimit: o.bodyLimit ?? 1 << 20, logger: false, return503OnClosing: true });
  app.addHook('onRequest', async (req, reply) => {
    if (apiKey && req.url !== '/healthz' && !keyOk(req.headers.authorization, apiKey)) {
      reply.header('www-authenticate', 'Bearer');
      throw new HttpError(401, 'missing or wrong API key (Authorization: Bearer <key>)', null, 'authentication_error');
    }
  });
  app.addHook('onResponse', async (req, reply) => {
    metrics.requests.inc({ route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) });
    if (o.log) process.stderr.write(`rsoup serve: ${req.method} ${req.url} ${reply.statusCode} ${reply.elapsedTime.toFixed(1)} ms\n`);
  });
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof HttpError) return reply.code(err.status).send({ error: { message: err.message, type: err.type, param: err.param, code: null } });
    if (err instanceof QueueFullError)
      return reply
        .code(429)
        .header('retry-after', '1')
        .send({ error: { message: err.message, type: 'rate_limit_error', param: null, code: 'queue_full' } });
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) process.stderr.write(`rsoup serve: internal error: ${err.stack ?? err.message}\n`);
    return reply.code(status).send({
      error: {
        message: status >= 500 ? `internal error: ${err.message}` : err.message,
        type: status >= 500 ? 'server_error' : 'invalid_request_error',
        param: null,
        code: err.code ?? null,
      },
    });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { message: `no route ${req.method} ${req.url}`, type: 'invalid_request_error', param: null, code: 'not_found' } }),
  );

  app.get('/healthz', async () => ({ status: draining ? 'draining' : 'ok', experts: N, active: scheduler.active, queued: scheduler.queued }));
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.get('/', async (_req, reply) => reply.header('content-type', 'text/html; charset=utf-8').send(playgroundHtml()));
  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());
  app.get('/v1/models', async () => ({
    object: 'list',
    data: [
      {
        id: 'soup',
        object: 'model',
        created,
        owned_by: 'rsoup',
        experts: engine.experts,
        modes: SOUP_MODES.filter((m) => m !== 'soup-ab' || !engine.abUnavailable),
        default_mode: defaultMode,
      },
      ...engine.experts.map((e) => ({ id: e, object: 'model', created, owned_by: 'rsoup' })),
    ],
  }));
  app.get('/v1/info', async () => ({
    name,
    experts: engine.experts,
    rewards: rewardNames,
    front: front ?? null,
    default_mode: defaultMode,
    modes: SOUP_MODES.filter((m) => m !== 'soup-ab' || !engine.abUnavailable),
    allow_extrapolation: o.allowExtrapolation ?? false,
    max_tokens_cap: cap,
  }));

  app.post('/v1/score', async (req) => {
    if (!rewards?.length) throw new HttpError(404, 'this server has no rewards: start it on a run dir (rsoup serve RUN_DIR)', null);
    const p = ScoreSchema.safeParse(req.body);
    if (!p.success) throw zodError(p.error);
    if (!p.data.samples === !p.data.texts) throw bad('samples', "give either 'samples' ({prompt, response}[]) or 'texts' (string[])");
    const samples = p.data.samples ?? p.data.texts!.map((t) => ({ prompt: '', response: t }));
    const scores = await Promise.all(rewards.map((r) => r.score(samples)));
    return { object: 'score', rewards: rewards.map((r) => r.name), scores: samples.map((_, i) => scores.map((s) => s[i])) };
  });

  const resolveRequest = async (body: unknown): Promise<{ p: GenParams; stream: boolean; model: string; usage: boolean }> => {
    const parsed = Completion.safeParse(body);
    if (!parsed.success) throw zodError(parsed.error);
    const b = parsed.data;
    const mode = b.mode ?? defaultMode;
    if (mode === 'soup-ab' && engine.abUnavailable) throw bad('mode', `'soup-ab' is not available with these experts: ${engine.abUnavailable}`);
    let lambda: number[];
    if (b.model === 'soup' && N === 0) {
      // no experts: one model (a merged soup, the base), no λ to choose
      if (b.lambda?.length) throw bad('lambda', 'this server serves one model without experts: no lambda');
      lambda = [];
    } else if (b.model === 'soup') {
      if (!b.lambda) throw bad('lambda', `model 'soup' needs lambda, a vector of ${N} weights (one per expert: ${engine.experts.join(', ')})`);
      if (b.lambda.length !== N) throw bad('lambda', `has ${b.lambda.length} entries, expected ${N} (one per expert: ${engine.experts.join(', ')})`);
      if (b.lambda.some((v) => !Number.isFinite(v))) throw bad('lambda', 'entries must be finite numbers');
      const sum = b.lambda.reduce((a, v) => a + v, 0);
      const extrap = (o.allowExtrapolation ?? false) && mode !== 'ensemble';
      if (!extrap) {
        if (b.lambda.some((v) => v < 0))
          throw bad(
            'lambda',
            `entries must be >= 0${mode === 'ensemble' ? " in mode 'ensemble' (mixture weights)" : ' (start the server with --allow-extrapolation to leave the simplex)'}`,
          );
        if (Math.abs(sum - 1) > 1e-6)
          throw bad(
            'lambda',
            `must sum to 1 (sums to ${sum}); λ lies on the simplex${mode === 'ensemble' ? '' : ' unless the server was started with --allow-extrapolation'}`,
          );
      } else if (b.lambda.some((v) => Math.abs(v) > 100)) {
        throw bad('lambda', 'entries must lie in [-100, 100]');
      }
      lambda = b.lambda;
    } else {
      const i = engine.experts.indexOf(b.model);
      if (i < 0) throw bad('model', `unknown model '${b.model}'; use 'soup' (with lambda) or an expert: ${engine.experts.join(', ')}`);
      if (b.lambda) throw bad('lambda', `lambda is read with model 'soup' only; model '${b.model}' is λ = e${i + 1}`);
      lambda = engine.experts.map((_, k) => (k === i ? 1 : 0));
    }
    let tokens: number[];
    const pr = b.prompt;
    if (typeof pr === 'string' || (Array.isArray(pr) && typeof pr[0] === 'string')) {
      const text = typeof pr === 'string' ? pr : (pr[0] as string);
      if (text.length > maxPrompt * 64) throw bad('prompt', `is longer than ${maxPrompt} tokens`);
      tokens = await codec!.encode(text);
      if (codec!.bos !== undefined && tokens[0] !== codec!.bos) tokens.unshift(codec!.bos);
    } else {
      tokens = (Array.isArray(pr[0]) ? pr[0] : pr) as number[];
      if (tokens.some((t) => t >= engine.config.vocabSize)) throw bad('prompt', `token ids must be below the vocabulary size ${engine.config.vocabSize}`);
    }
    if (!tokens.length) throw bad('prompt', 'is empty');
    if (tokens.length > maxPrompt) throw bad('prompt', `has ${tokens.length} tokens; at most ${maxPrompt} (--max-prompt-tokens)`);
    const stop = b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop;
    return {
      // below 1e-4 the scaled logits overflow float32: that is greedy decoding (OpenAI's temperature 0)
      p: {
        tokens,
        lambda,
        mode,
        temperature: (b.temperature ?? 1) < 1e-4 ? 0 : (b.temperature ?? 1),
        topP: b.top_p ?? 1,
        seed: b.seed ?? randomInt(2 ** 47),
        maxTokens: b.max_tokens ?? 16,
        stop,
      },
      stream: b.stream === true,
      model: b.model,
      usage: b.stream_options?.include_usage === true,
    };
  };

  const completionId = () => `cmpl-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;

  app.post('/v1/completions', async (req: FastifyRequest, reply: FastifyReply) => {
    if (draining) throw new HttpError(503, 'the server is shutting down', null, 'server_error');
    const { p, stream, model, usage } = await resolveRequest(req.body);
    if (scheduler.queued >= scheduler.maxQueue) throw new QueueFullError(scheduler.maxQueue);
    const ac = new AbortController();
    let finished = false;
    reply.raw.on('close', () => {
      if (!finished) ac.abort(); // the client went away: free its sequence
    });
    const id = completionId();
    const t0 = performance.now();
    const base = { id, object: 'text_completion', created: Math.floor(Date.now() / 1000), model };
    const usageOf = (n: number) => ({ prompt_tokens: p.tokens.length, completion_tokens: n, total_tokens: p.tokens.length + n });
    if (!stream) {
      const r = await scheduler.generate(p, { signal: ac.signal });
      finished = true;
      metrics.completions.inc({ mode: p.mode, finish_reason: r.finishReason });
      metrics.latency.observe({ mode: p.mode }, (performance.now() - t0) / 1000);
      return {
        ...base,
        choices: [{ index: 0, text: r.text, logprobs: null, finish_reason: r.finishReason }],
        usage: usageOf(r.tokens.length),
        lambda: p.lambda,
        mode: p.mode,
      };
    }
    // server-sent events: one chunk per piece of text, a last chunk with finish_reason, then [DONE]
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    const send = (obj: unknown) => {
      if (!res.destroyed) res.write(`data: ${JSON.stringify(obj)}\n\n`);
    };
    const chunk = (text: string, fr: string | null) => ({
      ...base,
      choices: [{ index: 0, text, logprobs: null, finish_reason: fr }],
      lambda: p.lambda,
      mode: p.mode,
    });
    try {
      const r = await scheduler.generate(p, { signal: ac.signal, onText: (d) => send(chunk(d, null)) });
      metrics.completions.inc({ mode: p.mode, finish_reason: r.finishReason });
      metrics.latency.observe({ mode: p.mode }, (performance.now() - t0) / 1000);
      if (r.finishReason !== 'cancelled') {
        send(chunk('', r.finishReason));
        if (usage) send({ ...base, choices: [], usage: usageOf(r.tokens.length) });
      }
      metrics.requests.inc({ route: '/v1/completions', status: '200' });
    } catch (e) {
      const qf = e instanceof QueueFullError;
      send({ error: { message: (e as Error).message, type: qf ? 'rate_limit_error' : 'server_error', param: null, code: null } });
      metrics.requests.inc({ route: '/v1/completions', status: qf ? '429' : '500' });
    } finally {
      finished = true;
      if (!res.destroyed) res.end('data: [DONE]\n\n');
    }
  });

  await app.listen({ host, port: o.port ?? 8000 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (o.port ?? 8000);
  const shown = host.includes(':') ? `[${host}]` : host;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    draining = true;
    await app.close();
    await engine.dispose();
  };
  return {
    url: `http://${shown}:${port}`,
    host,
    port,
    app,
    engine,
    scheduler,
    metrics,
    async drain(timeoutMs = drainMs) {
      draining = true;
      const closing = app.close(); // stops accepting; in-flight requests go on
      let timer: NodeJS.Timeout | undefined;
      const completed = await Promise.race([
        scheduler.drain().then(() => true),
        new Promise<boolean>((res) => (timer = setTimeout(() => res(false), timeoutMs))),
      ]);
      clearTimeout(timer);
      if (!completed) app.server.closeAllConnections();
      await closing;
      closed = true;
      await engine.dispose();
      return { completed };
    },
    close,
  };
}

function uniqueNames(dirs: string[]): string[] {
  const seen = new Map<string, number>();
  return dirs.map((d) => {
    let n = basename(d.replace(/\/+$/, '')) || 'expert';
    if (n === 'adapter') n = basename(join(d, '..')) || n; // run dirs: experts/expert-x/adapter
    const k = seen.get(n) ?? 0;
    seen.set(n, k + 1);
    return k ? `${n}-${k + 1}` : n;
  });
}
