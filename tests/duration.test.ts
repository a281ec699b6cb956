// SPDX-License-Identifier: MIT
// The one duration formatter: rounds before it splits into units, so no "1m60s" or "60.0s".
import { describe, expect, it } from 'vitest';
import { formatDuration } from '../src/util/duration.js';
import { fmtTime } from '../src/pipeline/index.js';

describe('formatDuration', () => {
  it('rounds first, then splits: 59.5 s, 119.6 s, 3599.7 s and the boundaries around them', () => {
    expect(formatDuration(59.5)).toBe('59.5s');
    expect(formatDuration(119.6)).toBe('2m00s');
    expect(formatDuration(3599.7)).toBe('1h00m00s');
    expect(formatDuration(59.94)).toBe('59.9s');
    expect(formatDuration(59.96)).toBe('1m00s');
    expect(formatDuration(119.4)).toBe('1m59s');
    expect(formatDuration(3599.4)).toBe('59m59s');
    expect(formatDuration(3723)).toBe('1h02m03s');
    expect(formatDuration(0)).toBe('0.0s');
    expect(formatDuration(-1)).toBe('0.0s');
    expect(formatDuration(Number.NaN)).toBe('?');
  });

  it('never prints 60 in a minutes or seconds field', () => {
    const bad: string[] = [];
    for (let t = 0; t < 7300; t += 0.05) if (/(^|[hm])60[ms]|^60\.0s/.test(formatDuration(t))) bad.push(`${t}: ${formatDuration(t)}`);
    expect(bad).toEqual([]);
  });

  it('is the formatter the CLI and the demos use', () => {
    expect(fmtTime).toBe(formatDuration);
  });
});
