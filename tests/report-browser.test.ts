// SPDX-License-Identifier: MIT
// report.html in a real browser (Debian's Chromium driven by puppeteer-core): no console errors, no
// horizontal overflow on a 390 px phone screen, the verdict block inside the first 1400 × 900 viewport,
// and the page's accessibility basics (lang, viewport meta, table captions, figure labels).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { writeReport, type EvalEntry } from '../src/pipeline/index.js';
import type { Fluency } from '../src/pipeline/sweep.js';
import { mulberry32 } from '../src/util/random.js';
import { needs } from './helpers/fixtures.js';

const CHROMIUM = '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'rsoup-report-'));
afterAll(() => (process.env.RSOUP_KEEP_REPORT ? undefined : rmSync(dir, { recursive: true, force: true })));

/** A two-reward sweep with per-prompt scores, fluency and samples with newlines, as run.ts writes it. */
function sweep(): EvalEntry[] {
  const P = 32;
  const rnd = mulberry32(4);
  const pp = (m: number[]) => m.map((v) => Array.from({ length: P }, () => v + (rnd() - 0.5) * 0.2));
  const fl = (kl: number): Fluency => ({
    klPerResponse: kl,
    klPerResponseStderr: 0.2,
    klPerToken: kl / 18,
    meanLength: 18.5,
    distinct1: 0.41,
    distinct2: 0.83,
    baseNllPerToken: 3.4,
  });
  const mk = (kind: EvalEntry['kind'], name: string, means: number[], extra: Partial<EvalEntry> = {}): EvalEntry => {
    const perPrompt = pp(means);
    return {
      kind,
      name,
      perPrompt,
      rewards: perPrompt.map((x) => x.reduce((a, b) => a + b, 0) / P),
      stderr: [0.02, 0.02],
      fluency: fl(kind === 'init' ? 0 : 4),
      samples: [
        {
          prompt: 'A long prompt that',
          response: ' goes on\nover two lines with a very-long-unbroken-word-that-should-wrap-somewhere-on-a-phone-screen-and-not-overflow',
        },
      ],
      ...extra,
    };
  };
  return [
    mk('init', 'init', [0.1, 0.2]),
    mk('expert', 'expert-love', [0.6, 0.15], { lambda: [1, 0], mu: [1, 0] }),
    mk('expert', 'expert-computers', [0.05, 0.7], { lambda: [0, 1], mu: [0, 1] }),
    ...[
      [0.75, 0.25],
      [0.5, 0.5],
      [0.25, 0.75],
    ].map((mu) => mk('morl', `morl-${mu.join('-')}`, [0.6 * mu[0] + 0.05, 0.7 * mu[1] + 0.1], { mu })),
    ...Array.from({ length: 11 }, (_, i) => i / 10).map((t) =>
      mk('soup', `soup λ=[${+(1 - t).toFixed(3)}, ${t}]`, [0.6 * (1 - t) + 0.05 * t + 0.03, 0.15 * (1 - t) + 0.7 * t + 0.03], { lambda: [1 - t, t] }),
    ),
  ];
}

describe('report.html in headless Chromium', () => {
  it('no console errors, no horizontal overflow at 390 px, the verdict in the first viewport', async (ctx) => {
    needs(ctx, existsSync(CHROMIUM), `${CHROMIUM} not found (Debian's chromium package; npm test's bootstrap installs it as root)`);
    const histories = { 'expert-love': Array.from({ length: 20 }, (_, i) => ({ step: i + 1, rewards: { love: 0.1 + i * 0.02 }, kl: i * 0.2 })) };
    await writeReport(
      dir,
      {
        name: 'browser-check',
        seed: 0,
        rewardNames: ['love', 'computers'],
        entries: sweep(),
        runs: [],
        histories,
        evalPrompts: 32,
        maxNewTokens: 24,
        evalNote: 'sampled, stopping at EOS',
        settings: { model: 'tiny LLaMA', seed: '0', date: '2026-12-07 10:00 UTC' },
      },
      { sweep: 1.5 },
      {},
    );
    writeFileSync(join(dir, 'timings.json'), '{}');
    const { default: puppeteer } = await import('puppeteer-core');
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-sync',
        '--disable-quic',
        `--user-data-dir=${mkdtempSync(join(tmpdir(), 'rsoup-chrome-'))}`,
      ],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.setViewport({ width: 1400, height: 900 });
      await page.goto(pathToFileURL(join(dir, 'report.html')).href, { waitUntil: 'load' });
      const desk = await page.evaluate(() => {
        const v = document.querySelector('section.verdict')!.getBoundingClientRect();
        return {
          verdictBottom: v.bottom,
          verdictTop: v.top,
          lang: document.documentElement.lang,
          viewport: !!document.querySelector('meta[name=viewport]'),
          captions: document.querySelectorAll('table caption').length,
          tables: document.querySelectorAll('table').length,
          unlabelled: [...document.querySelectorAll('figure')].filter((f) => !f.getAttribute('aria-label')).length,
          preWrap: getComputedStyle(document.querySelector('.samples li')!).whiteSpace,
        };
      });
      expect(desk.verdictTop).toBeGreaterThanOrEqual(0);
      expect(desk.verdictBottom).toBeLessThanOrEqual(900);
      expect(desk).toMatchObject({ lang: 'en', viewport: true, unlabelled: 0, preWrap: 'pre-wrap' });
      expect(desk.captions).toBe(desk.tables);
      await page.screenshot({ path: join(dir, 'report-desktop.png') });
      await page.setViewport({ width: 390, height: 844 });
      await page.reload({ waitUntil: 'load' });
      const phone = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
      expect(phone.scroll).toBeLessThanOrEqual(phone.client);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 120_000);
});
