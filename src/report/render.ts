// SPDX-License-Identifier: MIT
// Vega-Lite spec -> SVG (vega, headless, no canvas: text widths are estimated) -> PNG (resvg-js).
// Nothing is downloaded; resvg draws text with system fonts (Debian: fonts-dejavu-core).
import { existsSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export type { TopLevelSpec } from 'vega-lite';

/** A rendered plot: the Vega-Lite spec (data inline, reproducible), its SVG, and PNG bytes when asked. */
export interface Plot {
  spec: TopLevelSpec;
  svg: string;
  png?: Uint8Array;
}

export interface RenderOptions {
  /** Also rasterise to PNG (default false). */
  png?: boolean;
  /** PNG pixels per SVG unit (default 2). */
  scale?: number;
}

/** The font every plot asks for; DejaVu Sans ships with Debian's fonts-dejavu-core. */
export const PLOT_FONT = 'DejaVu Sans';

const FONT_FILES = ['/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf'].filter((f) => existsSync(f));

/** Shared look: readable font sizes, white background. */
export const PLOT_CONFIG = {
  font: PLOT_FONT,
  background: 'white',
  axis: { labelFontSize: 12, titleFontSize: 13, grid: true, gridColor: '#e6e6e6' },
  legend: { labelFontSize: 12, titleFontSize: 12, symbolStrokeWidth: 2, labelLimit: 320 },
  title: { fontSize: 15 },
  view: { stroke: '#bbbbbb' },
} as const;

/** Renders a Vega-Lite spec. Specs are written as plain objects (layers built from data); vega-lite's
 *  compile checks them at run time, so `spec` is typed loosely here, once, instead of at every call. */
export async function renderSpec(specObject: object, opts: RenderOptions = {}): Promise<Plot> {
  const spec = specObject as TopLevelSpec;
  const vgSpec = compile(spec).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none' });
  let svg: string;
  try {
    svg = await view.toSVG();
  } finally {
    view.finalize();
  }
  const out: Plot = { spec, svg };
  if (opts.png) out.png = svgToPng(svg, opts.scale ?? 2);
  return out;
}

export function svgToPng(svg: string, scale = 2): Uint8Array {
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: {
      loadSystemFonts: true,
      fontFiles: FONT_FILES,
      defaultFontFamily: PLOT_FONT,
      sansSerifFamily: PLOT_FONT,
    },
  });
  return new Uint8Array(r.render().asPng());
}
