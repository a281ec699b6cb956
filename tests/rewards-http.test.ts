// SPDX-License-Identifier: MIT
// HTTP reward client against a local server on 127.0.0.1 whose misbehaviour each test scripts:
// slow responses (timeout then retry), 500s, dropped connections, exhausted retries, bad payloads.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { httpReward, rewardFromConfig, type Sample } from '../src/rewards/index.js';

type Handler = (n: number, body: { samples: Sample[]; batch: number }, req: IncomingMessage, res: ServerResponse) => void;
let server: Server;
let url: string;
let handler: Handler;
let requests = 0;
let inFlight = 0;
let maxInFlight = 0;
const times: number[] = [];

const score = (s: Sample) => s.response.length + 0.5 * s.prompt.length;
const ok = (res: ServerResponse, samples: Sample[]) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ scores: samples.map(score) }));
};

beforeAll(async () => {
  server = createServer((req, res) => {
    const n = requests++;
    times.push(performance.now());
    if (requests > 50) {
      // Bounded: a runaway retry loop would fail the test instead of spinning.
      res.writeHead(503).end('too many requests in test');
      return;
    }
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      res.on('close', () => inFlight--);
      handler(n, JSON.parse(data), req, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/score`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  requests = 0;
  maxInFlight = 0;
  times.length = 0;
});

const batch: Sample[] = Array.from({ length: 5 }, (_, i) => ({ prompt: `prompt ${i}`, response: 'r'.repeat(3 + 2 * i) }));
const want = batch.map(score);

describe('HTTP reward client', () => {
  it('batches, respects the concurrency limit and returns scores in order', async () => {
    handler = (_n, body, _req, res) => setTimeout(() => ok(res, body.samples), 40);
    const r = httpReward({ url, batchSize: 2, concurrency: 2 });
    expect(Array.from(await r.score(batch))).toEqual(want);
    expect(requests).toBe(3); // 2 + 2 + 1
    expect(maxInFlight).toBeLessThanOrEqual(2);
    expect(maxInFlight).toBeGreaterThanOrEqual(1);
  });

  it('slow server: the request times out, the retry succeeds', async () => {
    handler = (n, body, _req, res) => setTimeout(() => ok(res, body.samples), n === 0 ? 3000 : 0);
    const r = httpReward({ url, timeoutMs: 600, retries: 2, backoffMs: 10 });
    expect(Array.from(await r.score(batch))).toEqual(want);
    expect(requests).toBe(2);
    expect(r.attempts).toBe(2);
  });

  it('a 500 then success', async () => {
    handler = (n, body, _req, res) => (n === 0 ? res.writeHead(500).end('boom') : ok(res, body.samples));
    const r = httpReward({ url, retries: 3, backoffMs: 10 });
    expect(Array.from(await r.score(batch))).toEqual(want);
    expect(requests).toBe(2);
  });

  it('a dropped connection then success', async () => {
    handler = (n, body, req, res) => (n === 0 ? req.socket.destroy() : ok(res, body.samples));
    const r = httpReward({ url, retries: 3, backoffMs: 10 });
    expect(Array.from(await r.score(batch))).toEqual(want);
    expect(requests).toBe(2);
  });

  it('retries exhausted: a clear error naming the URL and the batch, with exponential backoff between attempts', async () => {
    handler = (_n, _b, _req, res) => res.writeHead(500, 'Internal Server Error').end('model crashed');
    const r = httpReward({ url, retries: 2, backoffMs: 60, batchSize: 8 });
    const err = await r.score(batch).catch((e) => e);
    expect(err.code).toBe('ERR_SOUP_REWARD');
    expect(err.message).toContain(`POST ${url} failed for batch 0 (samples 0..4, 5 samples) after 3 attempts: HTTP 500 Internal Server Error: model crashed`);
    expect(requests).toBe(3);
    // backoff 60 ms then 120 ms (lower bounds only: timers never fire early)
    expect(times[1] - times[0]).toBeGreaterThanOrEqual(55);
    expect(times[2] - times[1]).toBeGreaterThanOrEqual(115);
  });

  it('no retry on a 4xx or a malformed body; a dead server is reported after its retries', async () => {
    handler = (_n, _b, _req, res) => res.writeHead(400, 'Bad Request').end('missing field');
    await expect(httpReward({ url, retries: 3, backoffMs: 1 }).score(batch)).rejects.toThrow(/HTTP 400 Bad Request: missing field/);
    expect(requests).toBe(1);
    requests = 0;
    handler = (_n, _b, _req, res) => res.writeHead(200).end(JSON.stringify({ scores: [1, 2] }));
    await expect(httpReward({ url, retries: 3 }).score(batch)).rejects.toThrow(/expected \{"scores": \[5 numbers\]\}/);
    expect(requests).toBe(1);
    handler = (_n, _b, _req, res) => res.writeHead(200).end(JSON.stringify({ scores: [1, 2, null, 4, 5] }));
    await expect(httpReward({ url }).score(batch)).rejects.toThrow(/non-finite score null for sample 2/);
    const dead = httpReward({ url: 'http://127.0.0.1:9/score', retries: 1, backoffMs: 1 });
    await expect(dead.score(batch)).rejects.toThrow(/POST http:\/\/127\.0\.0\.1:9\/score failed for batch 0 .* after 2 attempts: fetch failed/);
  });

  it('abort signal stops the client', async () => {
    handler = (_n, body, _req, res) => setTimeout(() => ok(res, body.samples), 2000);
    const ac = new AbortController();
    const p = httpReward({ url, timeoutMs: 10_000 }).score(batch, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toMatchObject({ code: 'ERR_SOUP_ABORTED' });
  });

  it('YAML config: type http', async () => {
    handler = (_n, body, _req, res) => ok(res, body.samples);
    const r = await rewardFromConfig({ type: 'http', url, batch_size: 3, retries: 1 });
    expect(Array.from(await r.score(batch))).toEqual(want);
    expect(requests).toBe(2);
    await expect(rewardFromConfig({ type: 'http', url: 'not a url' })).rejects.toThrow(/reward\.url/);
  });
});
