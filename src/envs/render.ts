// SPDX-License-Identifier: MIT
// Filmstrips of locomotion episodes drawn offline from the bodies' positions (no GPU, no GL): each row
// is one policy, each panel one instant; capsules are drawn as round-capped strokes projected onto the
// x–z plane, the camera follows the torso and ground ticks every metre show the progress. The result
// is an SVG string; `filmstripPng` rasterises it with @resvg/resvg-js.
import { Resvg } from '@resvg/resvg-js';
import { SoupError } from '../errors.js';
import type { Frame } from './shard.js';

export interface FilmstripRow {
  /** Row caption, e.g. "risky (λ = 1)". */
  label: string;
  frames: Frame[];
  /** Optional caption under the row, e.g. "Σv = 2002, Σa² = 4011". */
  note?: string;
}

export interface FilmstripOptions {
  /** Panel size in px (default 150 × 110). */
  panelWidth?: number;
  panelHeight?: number;
  /** Pixels per metre (default 55). */
  scale?: number;
  /** Width of the label column in px (default 130). */
  labelWidth?: number;
}

// body id → colour: world, torso, then the bodies in MJCF order (cheetah: back leg in oranges, front
// leg in greens; hopper: thigh, leg, foot)
const COLORS = ['#999999', '#2f3e4e', '#d46a00', '#f09a3e', '#a34f00', '#2e7d32', '#66bb6a', '#1b5e20', '#7b1fa2'];

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

const f2 = (x: number) => (Math.round(x * 100) / 100).toString();

/** The filmstrip as an SVG document. */
export function filmstripSvg(rows: FilmstripRow[], opts: FilmstripOptions = {}): string {
  if (!Array.isArray(rows) || rows.length === 0 || rows.some((r) => !Array.isArray(r?.frames) || r.frames.length === 0)) {
    throw new SoupError('ERR_SOUP_INVALID_ARG', 'filmstrip: expected at least one row, each with at least one frame');
  }
  const pw = opts.panelWidth ?? 150;
  const ph = opts.panelHeight ?? 110;
  const scale = opts.scale ?? 55;
  const lw = opts.labelWidth ?? 130;
  const cols = Math.max(...rows.map((r) => r.frames.length));
  const rowH = ph + 18;
  const width = lw + cols * pw;
  const height = rows.length * rowH + 4;
  const groundY = ph - 16;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  ];
  rows.forEach((row, ri) => {
    const y0 = ri * rowH + 2;
    out.push(`<text x="6" y="${y0 + ph / 2}" font-size="12" fill="#222">${esc(row.label)}</text>`);
    if (row.note) out.push(`<text x="6" y="${y0 + ph / 2 + 16}" font-size="9" fill="#555">${esc(row.note)}</text>`);
    row.frames.forEach((fr, ci) => {
      const x0 = lw + ci * pw;
      const id = `p${ri}_${ci}`;
      out.push(`<clipPath id="${id}"><rect x="${x0}" y="${y0}" width="${pw - 4}" height="${ph}"/></clipPath>`);
      out.push(`<g clip-path="url(#${id})"><rect x="${x0}" y="${y0}" width="${pw - 4}" height="${ph}" fill="#f4f6f8"/>`);
      const cx = x0 + (pw - 4) / 2;
      const X = (x: number) => cx + (x - fr.x) * scale;
      const Z = (z: number) => y0 + groundY - z * scale;
      out.push(`<rect x="${x0}" y="${f2(Z(0))}" width="${pw - 4}" height="${ph - groundY}" fill="#dfe6d8"/>`);
      // ground ticks every metre, labelled, so forward progress reads across panels
      const half = (pw - 4) / 2 / scale;
      for (let m = Math.ceil(fr.x - half); m <= fr.x + half; m++) {
        out.push(`<line x1="${f2(X(m))}" y1="${f2(Z(0))}" x2="${f2(X(m))}" y2="${f2(Z(0) + 5)}" stroke="#7a8a70" stroke-width="1"/>`);
        out.push(`<text x="${f2(X(m) + 2)}" y="${f2(Z(0) + 13)}" font-size="8" fill="#7a8a70">${m} m</text>`);
      }
      for (const c of fr.capsules) {
        const color = COLORS[c.body % COLORS.length];
        const sw = f2(Math.max(1, 2 * c.r * scale));
        if (c.ax === c.bx && c.az === c.bz) out.push(`<circle cx="${f2(X(c.ax))}" cy="${f2(Z(c.az))}" r="${f2(c.r * scale)}" fill="${color}"/>`);
        else
          out.push(
            `<line x1="${f2(X(c.ax))}" y1="${f2(Z(c.az))}" x2="${f2(X(c.bx))}" y2="${f2(Z(c.bz))}" stroke="${color}" stroke-width="${sw}" stroke-linecap="round"/>`,
          );
      }
      const cap = fr.time !== undefined ? `t = ${fr.time.toFixed(2)} s` : `#${ci}`;
      out.push(`<text x="${x0 + 4}" y="${y0 + 11}" font-size="9" fill="#333">${esc(cap)}  x = ${fr.x.toFixed(1)} m</text>`);
      out.push('</g>');
    });
  });
  out.push('</svg>');
  return out.join('\n');
}

/** The filmstrip as PNG bytes (SVG rasterised by resvg, system fonts for the captions). */
export function filmstripPng(rows: FilmstripRow[], opts: FilmstripOptions = {}): Buffer {
  const svg = filmstripSvg(rows, opts);
  const png = new Resvg(svg, { background: '#ffffff', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
  return Buffer.from(png);
}
