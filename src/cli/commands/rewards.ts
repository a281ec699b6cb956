// SPDX-License-Identifier: MIT
// rsoup rewards score CONFIG --input samples.jsonl: scores each JSON line ({prompt, response,
// references?, meta?}) with every reward of CONFIG; one JSON line per sample on stdout
// ({"index": i, "scores": {name: value}}), a per-reward mean summary on stderr.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { loadRewardsFile, scoreAll, type Sample } from '../../rewards/index.js';
import { SoupError } from '../../errors.js';
import { jsonLine, progressBar, UsageError } from '../output.js';

async function readSamples(file: string): Promise<Sample[]> {
  const out: Sample[] = [];
  const rl = createInterface({ input: file === '-' ? process.stdin : createReadStream(file), crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const line of rl) {
      n++;
      if (line.trim() === '') continue;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch (err) {
        throw new SoupError('ERR_SOUP_FORMAT', `${file}:${n}: not valid JSON (${(err as Error).message})`);
      }
      const s = obj as Partial<Sample>;
      if (!s || typeof s !== 'object' || typeof s.response !== 'string')
        throw new SoupError('ERR_SOUP_FORMAT', `${file}:${n}: expected an object with a string 'response' (and 'prompt', optional 'references', 'meta')`);
      out.push({ prompt: typeof s.prompt === 'string' ? s.prompt : '', response: s.response, references: s.references, meta: s.meta });
    }
  } catch (err) {
    if (err instanceof SoupError) throw err;
    throw new SoupError('ERR_SOUP_IO', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  return out;
}

export function register(program: Command): void {
  const rewards = program.command('rewards').description('score samples with reward adapters (metrics, lexicons, ONNX/HTTP reward models)');
  rewards
    .command('score')
    .description('score a JSON-lines file of {prompt, response, references?, meta?} with the rewards declared in CONFIG')
    .argument('<config>', 'YAML/JSON file with `rewards: [{type: ..., ...}]`')
    .requiredOption('-i, --input <file>', "samples, one JSON object per line ('-' for stdin)")
    .option('-b, --batch-size <n>', 'samples per scoring call', '256')
    .action(async (config: string, opts: { input: string; batchSize: string }) => {
      const bs = Number(opts.batchSize);
      if (!Number.isInteger(bs) || bs < 1) throw new UsageError(`--batch-size must be a positive integer, got ${opts.batchSize}`);
      const list = await loadRewardsFile(config);
      const samples = await readSamples(opts.input);
      const scores = new Map<string, Float64Array>(list.map((r) => [r.name, new Float64Array(samples.length)]));
      const bar = progressBar('scoring');
      for (let i = 0; i < samples.length; i += bs) {
        const chunk = samples.slice(i, i + bs);
        const parts = await scoreAll(list, chunk);
        for (const r of list) scores.get(r.name)?.set(parts[r.name], i);
        bar.update(Math.min(1, (i + chunk.length) / samples.length));
      }
      bar.done();
      for (let i = 0; i < samples.length; i++) {
        const row: Record<string, number> = {};
        for (const r of list) row[r.name] = (scores.get(r.name) as Float64Array)[i];
        jsonLine({ index: i, scores: row });
      }
      for (const r of list) {
        const s = scores.get(r.name) as Float64Array;
        const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
        process.stderr.write(`${r.name}: mean ${mean.toFixed(6)} over ${s.length} samples\n`);
      }
    });
}
