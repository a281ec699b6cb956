// SPDX-License-Identifier: MIT
// Prometheus metrics of one server (its own prom-client registry, so several servers in one process
// never share counters): requests by route and status, generated tokens, batch rows, queue depth, and
// histograms of request latency, time to first token and step time.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SchedulerMetrics } from './scheduler.js';

export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'rsoup_requests_total',
    help: 'HTTP requests by route and status code',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  readonly tokens = new Counter({ name: 'rsoup_generated_tokens_total', help: 'tokens generated', registers: [this.registry] });
  readonly completions = new Counter({
    name: 'rsoup_completions_total',
    help: 'completions by mode and finish reason',
    labelNames: ['mode', 'finish_reason'] as const,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({ name: 'rsoup_queue_depth', help: 'requests waiting for a batch row', registers: [this.registry] });
  readonly active = new Gauge({ name: 'rsoup_active_sequences', help: 'sequences in the batch', registers: [this.registry] });
  readonly batchRows = new Gauge({
    name: 'rsoup_batch_rows',
    help: 'rows of the batch (an ensemble request is one row per expert)',
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'rsoup_request_duration_seconds',
    help: 'completion latency, submit to last token',
    labelNames: ['mode'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly ttft = new Histogram({
    name: 'rsoup_time_to_first_token_seconds',
    help: 'submit to first token',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly step = new Histogram({
    name: 'rsoup_step_duration_seconds',
    help: 'one native batched step (prefill or decode)',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly stepRows = new Histogram({
    name: 'rsoup_step_batch_size',
    help: 'rows per native step',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'rsoup_' });
  }

  scheduler(): SchedulerMetrics {
    return {
      onFirstToken: (s) => this.ttft.observe(s),
      onTokens: (n) => this.tokens.inc(n),
      onStep: (s, rows) => {
        this.step.observe(s);
        this.stepRows.observe(rows);
      },
      onState: (st) => {
        this.queueDepth.set(st.queued);
        this.active.set(st.active);
        this.batchRows.set(st.rows);
      },
    };
  }
}
