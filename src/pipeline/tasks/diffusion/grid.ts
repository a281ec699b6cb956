// SPDX-License-Identifier: MIT
// The image grid of the report (captions × models, as the paper's Fig. 13): pixels drawn with pngjs
// (nearest-neighbour upscaling), labels added through an SVG rendered by resvg (src/report's svgToPng).
import { PNG } from 'pngjs';
import { svgToPng } from '../../../report/index.js';
import type { RgbImage } from '../../../data/shapes.js';

/** rows[r][c] images → one PNG, each image scaled `scale`× with a `gap`-pixel white border. */
export function gridPng(rows: RgbImage[][], scale = 4, gap = 2): { png: Buffer; width: number; height: number; cell: number } {
  const nr = rows.length,
    nc = Math.max(...rows.map((r) => r.length));
  const size = rows[0]?.[0]?.width ?? 16;
  const cell = size * scale + gap;
  const W = nc * cell + gap,
    H = nr * cell + gap;
  const png = new PNG({ width: W, height: H });
  png.data.fill(255);
  rows.forEach((row, r) =>
    row.forEach((im, c) => {
      for (let y = 0; y < im.height * scale; y++) {
        for (let x = 0; x < im.width * scale; x++) {
          const s = (Math.floor(y / scale) * im.width + Math.floor(x / scale)) * 3;
          const d = ((gap + r * cell + y) * W + (gap + c * cell + x)) * 4;
          for (let k = 0; k < 3; k++) png.data[d + k] = Math.max(0, Math.min(255, Math.round(im.data[s + k])));
          png.data[d + 3] = 255;
        }
      }
    }),
  );
  return { png: PNG.sync.write(png), width: W, height: H, cell };
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** The grid with row labels (captions) and column labels (models), as SVG and PNG. */
export function labelledGrid(rows: RgbImage[][], rowLabels: string[], colLabels: string[], title: string): { svg: string; png: Uint8Array } {
  const g = gridPng(rows);
  const left = 190,
    top = 62;
  const W = left + g.width + 10,
    H = top + g.height + 10;
  const cols = colLabels
    .map((l, c) => `<text x="${left + 2 + c * g.cell + g.cell / 2}" y="${top - 8}" font-size="11" text-anchor="middle">${esc(l)}</text>`)
    .join('');
  const rws = rowLabels
    .map((l, r) => `<text x="${left - 6}" y="${top + 2 + r * g.cell + g.cell / 2 + 4}" font-size="12" text-anchor="end">${esc(l)}</text>`)
    .join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans">
<rect width="100%" height="100%" fill="white"/><text x="${W / 2}" y="20" font-size="14" text-anchor="middle" font-weight="bold">${esc(title)}</text>
${cols}${rws}<image x="${left}" y="${top}" width="${g.width}" height="${g.height}" style="image-rendering:pixelated" xlink:href="data:image/png;base64,${g.png.toString('base64')}"/></svg>`;
  return { svg, png: svgToPng(svg, 1) };
}
