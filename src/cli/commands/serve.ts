// SPDX-License-Identifier: MIT
// rsoup serve RUN_DIR | --base DIR --experts A B …: an OpenAI-compatible completions server where every
// request picks its own λ (docs/serve.md). Binds 127.0.0.1 unless --host; SIGTERM/SIGINT drain the
// requests in flight (up to --drain-timeout seconds) and exit 0; a second signal exits 130 at once.
import type { Command } from 'commander';
import { serve } from '../../serve/index.js';
import { SOUP_MODES, type SoupMode } from '../../serve/engine.js';
import { parseSize } from '../../soup/config.js';
import { UsageError } from '../output.js';

function int(flag: string, s: unknown, min = 1): number {
  const v = Number(s);
  if (!Number.isSafeInteger(v) || v < min) throw new UsageError(`${flag}: '${String(s)}' is not an integer >= ${min}`);
  return v;
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('serve θ(λ) for any λ per request: OpenAI-compatible /v1/completions with a lambda field, playground at /')
    .argument('[run-dir]', 'a run dir of `rsoup run` / `rsoup demo` (base model, experts, rewards, report)')
    .option('--base <dir>', 'a Hugging Face LLaMA dir (with tokenizer.json), instead of a run dir')
    .option('--experts <dirs...>', 'PEFT adapter dirs of the experts (with --base)')
    .option('--names <list>', "comma-separated expert names (default: the adapter dirs' names)")
    .option('--host <host>', 'address to bind (default 127.0.0.1: loopback only)', '127.0.0.1')
    .option('--port <n>', 'port (0: any free port)', '8000')
    .option('--api-key <key>', 'require Authorization: Bearer <key> on every route but /healthz (default: $RSOUP_API_KEY)')
    .option('--mode <mode>', `default mode: ${SOUP_MODES.join(', ')} (default: the run's sweep interpolation, else soup)`)
    .option('--allow-extrapolation', 'accept λ off the simplex (negative entries, sum ≠ 1) in soup and soup-ab modes')
    .option('--max-batch <n>', 'rows per batched step', '64')
    .option('--max-queue <n>', 'requests waiting for a row before 429', '256')
    .option('--max-tokens-cap <n>', 'largest max_tokens a request may ask for', '512')
    .option('--max-prompt-tokens <n>', 'longest prompt in tokens', '2048')
    .option('--body-limit <size>', 'request body limit (e.g. 1MiB)', '1MiB')
    .option('--drain-timeout <s>', 'seconds in-flight requests get on SIGTERM', '30')
    .option('--device <cpu|cuda>', 'where the model runs', 'cpu')
    .option('--dtype <dtype>', 'compute dtype of the base weights: float32 or bfloat16', 'float32')
    .option('--threads <n>', 'libtorch threads (default: all cores)')
    .option('--log', 'one line per request on stderr')
    .action(async (runDir: string | undefined, o: Record<string, string | string[] | boolean | undefined>) => {
      if (runDir && (o.base || o.experts)) throw new UsageError('give a run dir or --base with --experts, not both');
      if (!runDir && !(o.base && o.experts)) throw new UsageError('give a run dir (rsoup serve RUN_DIR) or --base DIR --experts A B …');
      if (o.mode !== undefined && !SOUP_MODES.includes(o.mode as SoupMode))
        throw new UsageError(`--mode: '${String(o.mode)}' is not one of ${SOUP_MODES.join(', ')}`);
      if (o.device !== 'cpu' && o.device !== 'cuda') throw new UsageError(`--device: '${String(o.device)}' is not cpu or cuda`);
      if (o.dtype !== 'float32' && o.dtype !== 'bfloat16') throw new UsageError(`--dtype: '${String(o.dtype)}' is not float32 or bfloat16`);
      const experts = o.experts as string[] | undefined;
      const names = typeof o.names === 'string' ? o.names.split(',') : undefined;
      if (names && experts && names.length !== experts.length) throw new UsageError(`--names: ${names.length} names for ${experts.length} experts`);
      const drain = Number(o.drainTimeout);
      if (!(drain >= 0)) throw new UsageError(`--drain-timeout: '${String(o.drainTimeout)}' is not a number of seconds`);
      const s = await serve({
        runDir,
        base: o.base as string | undefined,
        experts,
        expertNames: names,
        host: o.host as string,
        port: int('--port', o.port, 0),
        apiKey: (o.apiKey as string | undefined) ?? process.env.RSOUP_API_KEY,
        defaultMode: o.mode as SoupMode | undefined,
        allowExtrapolation: o.allowExtrapolation === true,
        maxBatch: int('--max-batch', o.maxBatch),
        maxQueue: int('--max-queue', o.maxQueue),
        maxTokensCap: int('--max-tokens-cap', o.maxTokensCap),
        maxPromptTokens: int('--max-prompt-tokens', o.maxPromptTokens),
        bodyLimit: parseSize(String(o.bodyLimit), '--body-limit'),
        drainTimeoutMs: drain * 1000,
        device: o.device,
        dtype: o.dtype,
        threads: o.threads ? int('--threads', o.threads) : undefined,
        log: o.log === true,
      });
      const info = s.engine.experts.join(', ');
      process.stderr.write(`rsoup serve: listening on ${s.url} (experts: ${info}; playground at ${s.url}/)\n`);
      await new Promise<void>((resolve) => {
        let n = 0;
        const onSig = (sig: NodeJS.Signals) => {
          if (++n > 1) process.exit(130);
          process.stderr.write(
            `rsoup serve: ${sig}: draining ${s.scheduler.active + s.scheduler.queued} request(s) in flight (up to ${drain} s; again to exit at once)\n`,
          );
          void s.drain().then(({ completed }) => {
            process.stderr.write(`rsoup serve: ${completed ? 'drained' : 'drain deadline passed, connections closed'}; bye\n`);
            process.off('SIGINT', onSig);
            process.off('SIGTERM', onSig);
            resolve();
          });
        };
        process.on('SIGINT', onSig);
        process.on('SIGTERM', onSig);
      });
      process.exitCode = 0;
    });
}
