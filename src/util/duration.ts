// SPDX-License-Identifier: MIT
// One duration formatter for every progress, ETA and "done in" line: rounds once, then splits, so a
// value just under a minute boundary reads "2m00s", never "1m60s".

/**
 * Seconds as "12.3s" under a minute, "4m05s" under an hour, "1h02m03s" from there on.
 * The value is rounded first (to 0.1 s below a minute, to 1 s above) and only then split into units.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, seconds);
  const tenths = Math.round(s * 10) / 10;
  if (tenths < 60) return `${tenths.toFixed(1)}s`;
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m${sec}s` : `${m}m${sec}s`;
}
