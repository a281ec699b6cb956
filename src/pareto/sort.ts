// SPDX-License-Identifier: MIT
// Sorting a Float64Array of keys together with an Int32Array payload, ascending. Array.prototype.sort
// with a comparator costs ~0.5 s for 10^6 points here; this introsort (quicksort, heapsort fallback,
// insertion sort for short runs) keeps the 2-D hypervolume of 10^6 points well under a second.

/** Sorts keys[lo..hi) ascending in place, applying the same permutation to idx. */
export function sortByKey(keys: Float64Array, idx: Int32Array, lo = 0, hi = keys.length): void {
  const depth = 2 * Math.floor(Math.log2(Math.max(2, hi - lo)));
  introsort(keys, idx, lo, hi - 1, depth);
}

/** Ranks of n keys: sorts `keys(i)` ascending and returns the sorted keys, the index at each rank and
 *  each index's rank (the 3-D front and the 3-D hypervolume both sweep a staircase of ranks). */
export function rankBy(n: number, key: (i: number) => number): { sorted: Float64Array; byRank: Int32Array; rank: Int32Array } {
  const sorted = new Float64Array(n);
  const byRank = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    sorted[i] = key(i);
    byRank[i] = i;
  }
  sortByKey(sorted, byRank);
  const rank = new Int32Array(n);
  for (let r = 0; r < n; r++) rank[byRank[r]] = r;
  return { sorted, byRank, rank };
}

function swap(k: Float64Array, x: Int32Array, i: number, j: number): void {
  const t = k[i];
  k[i] = k[j];
  k[j] = t;
  const u = x[i];
  x[i] = x[j];
  x[j] = u;
}

function insertion(k: Float64Array, x: Int32Array, lo: number, hi: number): void {
  for (let i = lo + 1; i <= hi; i++) {
    const kv = k[i];
    const xv = x[i];
    let j = i - 1;
    while (j >= lo && k[j] > kv) {
      k[j + 1] = k[j];
      x[j + 1] = x[j];
      j--;
    }
    k[j + 1] = kv;
    x[j + 1] = xv;
  }
}

function siftDown(k: Float64Array, x: Int32Array, lo: number, root: number, n: number): void {
  for (;;) {
    let c = 2 * root + 1;
    if (c >= n) return;
    if (c + 1 < n && k[lo + c + 1] > k[lo + c]) c++;
    if (k[lo + root] >= k[lo + c]) return;
    swap(k, x, lo + root, lo + c);
    root = c;
  }
}

function heapsort(k: Float64Array, x: Int32Array, lo: number, hi: number): void {
  const n = hi - lo + 1;
  for (let i = (n >> 1) - 1; i >= 0; i--) siftDown(k, x, lo, i, n);
  for (let end = n - 1; end > 0; end--) {
    swap(k, x, lo, lo + end);
    siftDown(k, x, lo, 0, end);
  }
}

function introsort(k: Float64Array, x: Int32Array, lo: number, hi: number, depth: number): void {
  while (hi - lo > 16) {
    if (depth-- === 0) {
      heapsort(k, x, lo, hi);
      return;
    }
    // Median of three moved to lo, then Hoare partition: equal keys split evenly, no O(n^2) on ties.
    const mid = (lo + hi) >>> 1;
    if (k[mid] < k[lo]) swap(k, x, mid, lo);
    if (k[hi] < k[lo]) swap(k, x, hi, lo);
    if (k[hi] < k[mid]) swap(k, x, hi, mid);
    swap(k, x, lo, mid);
    const pivot = k[lo];
    let i = lo;
    let j = hi + 1;
    for (;;) {
      do i++;
      while (k[i] < pivot);
      do j--;
      while (k[j] > pivot);
      if (i >= j) break;
      swap(k, x, i, j);
    }
    swap(k, x, lo, j);
    // Recurse into the smaller side, loop on the larger: stack depth O(log n).
    if (j - lo < hi - j) {
      introsort(k, x, lo, j - 1, depth);
      lo = j + 1;
    } else {
      introsort(k, x, j + 1, hi, depth);
      hi = j - 1;
    }
  }
  insertion(k, x, lo, hi);
}

/** Whether some point of `kept` weakly dominates `p` (each objective k: s[k]·q[k] ≥ s[k]·p[k]; s = +1 for
 *  maximisation, the default). The scans of the d ≥ 4 front and of the hypervolume's row pruning. */
export function weaklyDominatedBy(p: ArrayLike<number>, kept: Iterable<ArrayLike<number>>, d: number, s?: ArrayLike<number>): boolean {
  for (const q of kept) {
    let ge = true;
    for (let k = 0; k < d; k++) {
      if ((s ? s[k] : 1) * (q[k] - p[k]) < 0) {
        ge = false;
        break;
      }
    }
    if (ge) return true;
  }
  return false;
}
