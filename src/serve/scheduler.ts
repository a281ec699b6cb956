// SPDX-License-Identifier: MIT
// Continuous batching over a SoupEngine. Requests wait in a bounded queue; the loop, one iteration per
// decoding step: (1) removes sequences that finished or whose client went away, (2) admits queued
// requests while the batch has rows free (a prefill each, which samples the first token), (3) runs one
// batched step over every active sequence. Stop conditions are checked here: EOS, max_tokens, stop
// strings (on the decoded text; text that could still become a stop string is held back).
import { SoupError } from '../errors.js';
import type { TextCodec } from './codec.js';
import type { SoupEngine, SoupMode, StepResult } from './engine.js';

export interface GenParams {
  tokens: number[];
  lambda: number[];
  mode: SoupMode;
  temperature: number;
  topP: number;
  seed: number;
  maxTokens: number;
  stop: string[];
}

export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';

export interface GenResult {
  text: string;
  tokens: number[];
  finishReason: FinishReason;
  promptTokens: number;
  /** Seconds from submit to the first token. */
  ttft: number;
  seconds: number;
}

export interface SchedulerMetrics {
  onFirstToken?(seconds: number): void;
  onTokens?(n: number): void;
  onStep?(seconds: number, rows: number): void;
  onState?(s: { queued: number; active: number; rows: number }): void;
}

export interface SchedulerOptions {
  /** Rows per batch (a request is one row; an 'ensemble' request one per expert with λᵢ > 0). Default 64. */
  maxBatch?: number;
  /** Requests waiting for a row; a submit beyond it throws QueueFullError (HTTP 429). Default 256. */
  maxQueue?: number;
  metrics?: SchedulerMetrics;
}

export class QueueFullError extends SoupError {
  constructor(max: number) {
    super('ERR_SOUP_BUSY', `the queue is full (${max} requests waiting); retry later`);
  }
}

// Sequence ids are unique per process: schedulers may share an engine (tests, benchmarks).
let nextId = 1;

class Req {
  id: number;
  out: number[] = [];
  text = '';
  emitted = 0;
  done: FinishReason | undefined;
  removed = false;
  t0 = performance.now();
  tFirst = 0;
  rows: number;
  constructor(
    id: number,
    readonly p: GenParams,
    readonly onText: ((delta: string) => void) | undefined,
    readonly resolve: (r: GenResult) => void,
    readonly reject: (e: unknown) => void,
  ) {
    this.id = id;
    this.rows = p.mode === 'ensemble' ? Math.max(1, p.lambda.filter((v) => v > 0).length) : 1;
  }
}

export class Scheduler {
  readonly maxBatch: number;
  readonly maxQueue: number;
  #queue: Req[] = [];
  #active = new Map<number, Req>();
  #running = false;
  #idle: Array<() => void> = [];
  #holdback: number;
  #stopped = false;

  constructor(
    readonly engine: SoupEngine,
    readonly codec: TextCodec,
    readonly opts: SchedulerOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 64;
    this.maxQueue = opts.maxQueue ?? 256;
    this.#holdback = 0;
  }

  get queued(): number {
    return this.#queue.length;
  }
  get active(): number {
    return this.#active.size;
  }
  get rows(): number {
    let n = 0;
    for (const r of this.#active.values()) n += r.rows;
    return n;
  }

  /** Generates; rejects QueueFullError at once when the queue is full. `signal` aborts (client gone). */
  generate(p: GenParams, o: { onText?: (delta: string) => void; signal?: AbortSignal } = {}): Promise<GenResult> {
    if (this.#stopped) return Promise.reject(new SoupError('ERR_SOUP_BUSY', 'the server is shutting down'));
    if (this.#queue.length >= this.maxQueue) return Promise.reject(new QueueFullError(this.maxQueue));
    return new Promise<GenResult>((resolve, reject) => {
      const r = new Req(nextId++, p, o.onText, resolve, reject);
      if (nextId > 2 ** 31 - 2) nextId = 1;
      if (o.signal) {
        if (o.signal.aborted) return this.#finish(r, 'cancelled');
        o.signal.addEventListener('abort', () => this.cancel(r), { once: true });
      }
      this.#queue.push(r);
      this.#state();
      this.#kick();
    });
  }

  private cancel(r: Req): void {
    if (r.done) return;
    const qi = this.#queue.indexOf(r);
    if (qi >= 0) this.#queue.splice(qi, 1);
    this.#finish(r, 'cancelled');
    this.#state();
    this.#kick();
  }

  /** Refuses new requests; resolves when every queued and active one has finished. */
  drain(): Promise<void> {
    this.#stopped = true;
    return this.idle();
  }

  /** Resolves when nothing is queued or active. */
  idle(): Promise<void> {
    if (!this.#running && !this.#queue.length && !this.#active.size) return Promise.resolve();
    return new Promise((res) => this.#idle.push(res));
  }

  #state(): void {
    this.opts.metrics?.onState?.({ queued: this.#queue.length, active: this.#active.size, rows: this.rows });
  }

  #kick(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#loop().finally(() => {
      this.#running = false;
      this.#state();
      if (this.#queue.length || [...this.#active.values()].some((r) => !r.done)) this.#kick();
      else for (const f of this.#idle.splice(0)) f();
    });
  }

  #finish(r: Req, why: FinishReason, err?: unknown): void {
    if (r.done) return;
    r.done = why;
    if (why === 'error') {
      r.reject(err);
      return;
    }
    if (r.onText && r.text.length > r.emitted && why !== 'cancelled') r.onText(r.text.slice(r.emitted));
    r.emitted = r.text.length;
    const now = performance.now();
    r.resolve({
      text: r.text,
      tokens: r.out,
      finishReason: why,
      promptTokens: r.p.tokens.length,
      ttft: r.tFirst ? (r.tFirst - r.t0) / 1000 : 0,
      seconds: (now - r.t0) / 1000,
    });
  }

  async #deliver(res: StepResult): Promise<void> {
    let n = 0;
    const work: Promise<void>[] = [];
    res.ids.forEach((id, i) => {
      const r = this.#active.get(id);
      if (!r || r.done) return;
      const tok = res.tokens[i];
      if (tok < 0) return this.#finish(r, 'length');
      if (!r.out.length) {
        r.tFirst = performance.now();
        this.opts.metrics?.onFirstToken?.((r.tFirst - r.t0) / 1000);
      }
      if (this.codec.eos !== undefined && tok === this.codec.eos) return this.#finish(r, 'stop');
      r.out.push(tok);
      n++;
      work.push(this.#text(r));
    });
    await Promise.all(work);
    if (n) this.opts.metrics?.onTokens?.(n);
  }

  async #text(r: Req): Promise<void> {
    const text = await this.codec.decode(r.out);
    if (r.done) return;
    const stops = r.p.stop;
    let cut = -1;
    for (const s of stops) {
      const k = text.indexOf(s, Math.max(0, r.text.length - s.length));
      if (k >= 0 && (cut < 0 || k < cut)) cut = k;
    }
    if (cut >= 0) {
      r.text = text.slice(0, cut);
      return this.#finish(r, 'stop');
    }
    r.text = text;
    if (r.out.length >= r.p.maxTokens) return this.#finish(r, 'length');
    if (!r.onText) return;
    // hold back a trailing partial UTF-8 character and anything that may still grow into a stop string
    let safe = text.length;
    while (safe > 0 && text.charCodeAt(safe - 1) === 0xfffd) safe--;
    const hold = stops.reduce((a, s) => Math.max(a, s.length - 1), this.#holdback);
    safe = Math.max(r.emitted, safe - hold);
    if (safe > r.emitted) {
      r.onText(text.slice(r.emitted, safe));
      r.emitted = safe;
    }
  }

  async #loop(): Promise<void> {
    for (;;) {
      // (1) leave: finished or cancelled sequences free their rows
      const gone = [...this.#active.values()].filter((r) => r.done);
      if (gone.length) {
        for (const r of gone) this.#active.delete(r.id);
        await this.engine.remove(gone.map((r) => r.id));
        this.#state();
      }
      // (2) join: as many queued requests as the batch has rows for
      const adds: Req[] = [];
      let rows = this.rows;
      while (this.#queue.length && rows + this.#queue[0].rows <= this.maxBatch) {
        const r = this.#queue.shift()!;
        rows += r.rows;
        adds.push(r);
      }
      if (adds.length) {
        for (const r of adds) this.#active.set(r.id, r);
        this.#state();
        try {
          const t = performance.now();
          const res = await this.engine.add(
            adds.map((r) => ({
              id: r.id,
              tokens: r.p.tokens,
              lambda: r.p.lambda,
              mode: r.p.mode,
              temperature: r.p.temperature,
              topP: r.p.topP,
              seed: r.p.seed,
              maxTokens: r.p.maxTokens,
            })),
          );
          this.opts.metrics?.onStep?.((performance.now() - t) / 1000, adds.length);
          await this.#deliver(res);
        } catch (e) {
          // a prefill that fails (e.g. an id the engine refuses) fails its batch, not the server
          for (const r of adds) this.#finish(r, 'error', e);
          await this.engine.remove(adds.map((r) => r.id)).catch(() => {});
          for (const r of adds) this.#active.delete(r.id);
        }
        continue; // leave finished ones before stepping
      }
      // (3) step every live sequence once
      if (![...this.#active.values()].some((r) => !r.done)) return;
      try {
        const t = performance.now();
        const live = this.rows;
        const res = await this.engine.step();
        this.opts.metrics?.onStep?.((performance.now() - t) / 1000, live);
        await this.#deliver(res);
      } catch (e) {
        for (const r of this.#active.values()) this.#finish(r, 'error', e);
      }
    }
  }
}
