// SPDX-License-Identifier: MIT
// An ordered set of integers in [0, n): a hierarchy of 32-bit occupancy words (a shallow van Emde Boas
// layout). insert/delete/prev/next cost O(log_32 n) word operations, which is what makes the 3-D
// hypervolume sweep O(n log n) without a balanced tree.

function ctz(w: number): number {
  return 31 - Math.clz32(w & -w);
}

export class RankSet {
  private readonly levels: Uint32Array[] = [];

  constructor(n: number) {
    let size = Math.max(1, n);
    for (;;) {
      const words = (size + 31) >>> 5;
      this.levels.push(new Uint32Array(words));
      if (words === 1) break;
      size = words;
    }
  }

  add(i: number): void {
    for (const lv of this.levels) {
      const w = i >>> 5;
      const was = lv[w];
      lv[w] = was | (1 << (i & 31));
      if (was !== 0) return;
      i = w;
    }
  }

  delete(i: number): void {
    for (const lv of this.levels) {
      const w = i >>> 5;
      const now = lv[w] & ~(1 << (i & 31));
      lv[w] = now;
      if (now !== 0) return;
      i = w;
    }
  }

  /** The smallest element > i, or -1. */
  next(i: number): number {
    const L = this.levels;
    let pos = i + 1;
    let lvl = 0;
    for (;;) {
      const lv = L[lvl];
      const w = pos >>> 5;
      if (w >= lv.length) return -1;
      const bits = lv[w] & (~0 << (pos & 31));
      if (bits !== 0) {
        pos = (w << 5) + ctz(bits);
        break;
      }
      if (++lvl === L.length) return -1;
      pos = w + 1;
    }
    while (lvl > 0) {
      lvl--;
      pos = (pos << 5) + ctz(L[lvl][pos]);
    }
    return pos;
  }

  /** The largest element < i, or -1. */
  prev(i: number): number {
    const L = this.levels;
    let pos = i - 1;
    let lvl = 0;
    for (;;) {
      if (pos < 0) return -1;
      const lv = L[lvl];
      const w = pos >>> 5;
      const bits = lv[w] & (0xffffffff >>> (31 - (pos & 31)));
      if (bits !== 0) {
        pos = (w << 5) + 31 - Math.clz32(bits);
        break;
      }
      if (++lvl === L.length) return -1;
      pos = w - 1;
    }
    while (lvl > 0) {
      lvl--;
      pos = (pos << 5) + 31 - Math.clz32(L[lvl][pos]);
    }
    return pos;
  }
}
