// SPDX-License-Identifier: MIT
// Client for a reward server (e.g. reward models served from Python). Protocol (docs/rewards.md):
//   POST <url>  {"samples": [{"prompt", "response", "references"?, "meta"?}, ...], "batch": <index>}
//   200         {"scores": [<number>, ...]}   (same length and order as samples)
// Batching, per-request timeout, retries with exponential backoff on network errors, timeouts, 429
// and 5xx, a concurrency limit, and errors that name the URL and the batch.
import { SoupError } from '../errors.js';
import { BatchedReward, rewardError, type BatchingOptions, type Sample, type ScoreOptions } from './types.js';

export interface HttpRewardOptions extends BatchingOptions {
  name?: string;
  url: string;
  /** Per-request timeout in ms (default 30 000). */
  timeoutMs?: number;
  /** Retries after the first attempt (default 3). */
  retries?: number;
  /** First backoff in ms (default 200), doubled per retry, capped at maxBackoffMs (default 5 000). */
  backoffMs?: number;
  maxBackoffMs?: number;
  headers?: Record<string, string>;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((res, rej) => {
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      res();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      rej(new SoupError('ERR_SOUP_ABORTED', 'aborted', { cause: signal?.reason }));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

class Permanent extends Error {}

export class HttpReward extends BatchedReward {
  readonly url: string;
  private batchCounter = 0;
  /** Attempts made (tests and logs). */
  attempts = 0;
  constructor(private readonly o: HttpRewardOptions) {
    super(o.name ?? 'http', { batchSize: 16, concurrency: 2, ...o });
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw rewardError(this.name, `'url' is not a valid URL: ${String(o.url)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw rewardError(this.name, `'url' must be http(s), got ${o.url}`);
    this.url = o.url;
  }

  protected async scoreBatch(batch: Sample[], offsets: number[], opts: ScoreOptions): Promise<number[]> {
    const batchIdx = this.batchCounter++;
    const body = JSON.stringify({ samples: batch, batch: batchIdx });
    const retries = this.o.retries ?? 3;
    const timeoutMs = this.o.timeoutMs ?? 30_000;
    let backoff = this.o.backoffMs ?? 200;
    const where = () => `POST ${this.url} failed for batch ${batchIdx} (samples ${offsets[0]}..${offsets[offsets.length - 1]}, ${batch.length} samples)`;
    let lastErr = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        await sleep(backoff, opts.signal);
        backoff = Math.min(backoff * 2, this.o.maxBackoffMs ?? 5_000);
      }
      if (opts.signal?.aborted) throw new SoupError('ERR_SOUP_ABORTED', `reward '${this.name}': aborted`, { cause: opts.signal.reason });
      this.attempts++;
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
      try {
        const res = await fetch(this.url, { method: 'POST', headers: { 'content-type': 'application/json', ...this.o.headers }, body, signal });
        const text = await res.text();
        if (!res.ok) {
          const msg = `HTTP ${res.status} ${res.statusText}: ${text.slice(0, 200)}`;
          if (res.status === 429 || res.status >= 500) {
            lastErr = msg;
            continue;
          }
          throw new Permanent(msg);
        }
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          throw new Permanent(`response is not JSON: ${text.slice(0, 200)}`);
        }
        const scores = (json as { scores?: unknown }).scores;
        if (!Array.isArray(scores) || scores.length !== batch.length) {
          throw new Permanent(`expected {"scores": [${batch.length} numbers]} but got ${text.slice(0, 200)}`);
        }
        const bad = scores.findIndex((v) => typeof v !== 'number' || !Number.isFinite(v));
        if (bad >= 0) throw new Permanent(`non-finite score ${JSON.stringify(scores[bad])} for sample ${offsets[bad]}`);
        return scores as number[];
      } catch (err) {
        if (err instanceof Permanent) throw rewardError(this.name, `${where()}: ${err.message}`);
        if (opts.signal?.aborted) throw new SoupError('ERR_SOUP_ABORTED', `reward '${this.name}': aborted`, { cause: opts.signal.reason });
        if (err instanceof SoupError) throw err;
        const e = err as Error & { cause?: { code?: string; message?: string } };
        lastErr = timeout.aborted ? `timed out after ${timeoutMs} ms` : `${e.message}${e.cause ? ` (${e.cause.code ?? e.cause.message ?? ''})` : ''}`;
      }
    }
    throw rewardError(this.name, `${where()} after ${retries + 1} attempts: ${lastErr}`);
  }
}

export function httpReward(opts: HttpRewardOptions): HttpReward {
  return new HttpReward(opts);
}
