// SPDX-License-Identifier: MIT
// The playground page served at `/`: plain HTML and JS, no CDN, works offline. A prompt box, λ sliders
// (one for N = 2; N sliders kept on the simplex for N >= 3), streamed output over the same
// /v1/completions route any client uses, and the run's front (report.json, first two rewards) with the
// position of the current λ on the sweep marked.
export function playgroundHtml(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rsoup serve — playground</title>
<link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.2em auto;max-width:980px;color:#222;padding:0 1em}
h1{font-size:1.3em;margin:.2em 0} .row{display:flex;gap:1.5em;flex-wrap:wrap} .col{flex:1 1 420px}
textarea{width:100%;height:6em;font:inherit;box-sizing:border-box} label{display:block;margin:.4em 0}
input[type=range]{width:45%;vertical-align:middle} .lam{font-family:monospace}
#out{white-space:pre-wrap;border:1px solid #ccc;border-radius:4px;padding:.6em;min-height:6em;background:#fafafa;font-family:ui-monospace,monospace}
button{font:inherit;padding:.3em 1.2em} .muted{color:#777;font-size:.9em} svg{border:1px solid #ddd;background:#fff}
</style></head><body>
<h1>rsoup serve — rewarded soup playground</h1>
<p class="muted" id="about">loading…</p>
<div class="row"><div class="col">
<label>Prompt<textarea id="prompt" placeholder="Type a prompt"></textarea></label>
<div id="sliders"></div>
<label>Mode <select id="mode"></select></label>
<label>Max tokens <input id="maxTokens" type="number" min="1" value="48" style="width:5em">
 Temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.8" style="width:4em">
 Seed <input id="seed" type="number" min="0" value="0" style="width:6em"></label>
<button id="go">Generate</button> <span id="status" class="muted"></span>
<h3>Output</h3><div id="out"></div>
</div><div class="col">
<h3>The run's front</h3>
<svg id="front" width="440" height="360" viewBox="0 0 440 360" role="img" aria-label="front"></svg>
<p class="muted" id="frontNote"></p>
</div></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let info = null, lam = [];
const fmt = (v) => (Math.round(v * 1000) / 1000).toString();

function onSimplex(i, v) {
  // move entry i to v, scale the others so that λ stays on the simplex
  const n = lam.length, rest = lam.reduce((a, x, k) => a + (k === i ? 0 : x), 0);
  const out = lam.slice(); out[i] = v;
  for (let k = 0; k < n; k++) if (k !== i) out[k] = rest > 1e-12 ? lam[k] * (1 - v) / rest : (1 - v) / (n - 1);
  return out;
}

function renderSliders() {
  const box = $('sliders'); box.textContent = '';
  const N = info.experts.length;
  if (N === 2) {
    const l = document.createElement('label');
    l.innerHTML = 'λ: <span class="muted"></span> <input type="range" id="lam" min="0" max="1" step="0.01"> <span class="muted"></span> <span class="lam" id="lamText"></span>';
    l.children[0].textContent = info.experts[0]; l.children[2].textContent = info.experts[1];
    box.appendChild(l);
    const s = $('lam'); s.value = String(lam[1]);
    s.addEventListener('input', () => { const t = Number(s.value); lam = [1 - t, t]; update(); });
  } else {
    info.experts.forEach((e, i) => {
      const l = document.createElement('label');
      l.innerHTML = '<span></span> <input type="range" min="0" max="1" step="0.01" class="lamN"> <span class="lam"></span>';
      l.children[0].textContent = e;
      const s = l.children[1]; s.id = 'lam' + i;
      s.addEventListener('input', () => { lam = onSimplex(i, Number(s.value)); update(); });
      box.appendChild(l);
    });
    const t = document.createElement('div'); t.className = 'lam'; t.id = 'lamText'; box.appendChild(t);
  }
}

function update() {
  $('lamText').textContent = 'λ = [' + lam.map(fmt).join(', ') + ']';
  if (info.experts.length !== 2) document.querySelectorAll('.lamN').forEach((s, i) => { s.value = String(lam[i]); s.nextElementSibling.textContent = fmt(lam[i]); });
  drawMark();
}

// ---- the front ---------------------------------------------------------------------------------
const W = 440, H = 360, M = 44;
let sx = null, sy = null;
function svgEl(tag, attrs, text) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const k in attrs) e.setAttribute(k, String(attrs[k]));
  if (text !== undefined) e.textContent = text;
  $('front').appendChild(e); return e;
}
function soups() { return (info.front || []).filter((m) => (m.kind === 'soup' || m.kind === 'expert') && m.lambda); }
function drawFront() {
  const svg = $('front'); svg.textContent = '';
  const pts = info.front || [];
  if (!pts.length || info.rewards.length < 2) { $('frontNote').textContent = 'No report.json in this run dir (or no run dir): no front to show.'; return; }
  const xs = pts.map((p) => p.rewards[0]), ys = pts.map((p) => p.rewards[1]);
  const pad = (a, b) => { const d = (b - a) || 1; return [a - 0.08 * d, b + 0.08 * d]; };
  const [x0, x1] = pad(Math.min(...xs), Math.max(...xs)), [y0, y1] = pad(Math.min(...ys), Math.max(...ys));
  sx = (v) => M + (v - x0) / (x1 - x0) * (W - 2 * M); sy = (v) => H - M - (v - y0) / (y1 - y0) * (H - 2 * M);
  svgEl('line', { x1: M, y1: H - M, x2: W - M, y2: H - M, stroke: '#888' });
  svgEl('line', { x1: M, y1: M, x2: M, y2: H - M, stroke: '#888' });
  svgEl('text', { x: W / 2, y: H - 10, 'text-anchor': 'middle', 'font-size': 12 }, info.rewards[0]);
  svgEl('text', { x: 12, y: H / 2, 'text-anchor': 'middle', 'font-size': 12, transform: 'rotate(-90 12 ' + (H / 2) + ')' }, info.rewards[1]);
  const s = soups().slice().sort((a, b) => a.lambda[a.lambda.length - 1] - b.lambda[b.lambda.length - 1]);
  if (s.length > 1) svgEl('polyline', { points: s.map((p) => sx(p.rewards[0]) + ',' + sy(p.rewards[1])).join(' '), fill: 'none', stroke: '#4a7', 'stroke-width': 1.5 });
  const color = { soup: '#4a7', expert: '#c33', morl: '#36c', init: '#999' };
  for (const p of pts) {
    const c = svgEl('circle', { cx: sx(p.rewards[0]), cy: sy(p.rewards[1]), r: p.kind === 'soup' ? 3.5 : 5, fill: color[p.kind] || '#555' });
    const t = document.createElementNS('http://www.w3.org/2000/svg', 'title'); t.textContent = p.name; c.appendChild(t);
  }
  svgEl('circle', { id: 'lamMark', r: 8, fill: 'none', stroke: '#f80', 'stroke-width': 3, cx: -20, cy: -20 });
  $('frontNote').textContent = 'green: soups θ(λ) of the sweep; red: experts; blue: MORL; grey: init. Orange ring: the sweep position of the current λ.';
  drawMark();
}
function markPoint() {
  const s = soups();
  if (!s.length) return null;
  if (info.experts.length === 2) {
    // linear interpolation of the sweep's rewards along λ₂
    const t = lam[1], sorted = s.filter((p) => p.lambda[1] >= 0 && p.lambda[1] <= 1).sort((a, b) => a.lambda[1] - b.lambda[1]);
    for (let k = 0; k + 1 < sorted.length; k++) {
      const a = sorted[k], b = sorted[k + 1];
      if (t >= a.lambda[1] && t <= b.lambda[1]) {
        const w = b.lambda[1] > a.lambda[1] ? (t - a.lambda[1]) / (b.lambda[1] - a.lambda[1]) : 0;
        return [a.rewards[0] + w * (b.rewards[0] - a.rewards[0]), a.rewards[1] + w * (b.rewards[1] - a.rewards[1])];
      }
    }
  }
  let best = null, bd = Infinity;
  for (const p of s) { const d = p.lambda.reduce((a, v, i) => a + (v - lam[i]) ** 2, 0); if (d < bd) { bd = d; best = p; } }
  return best ? best.rewards : null;
}
function drawMark() {
  const m = $('lamMark'); if (!m || !sx) return;
  const p = markPoint(); if (!p) return;
  m.setAttribute('cx', String(sx(p[0]))); m.setAttribute('cy', String(sy(p[1])));
}

// ---- generation (streamed over server-sent events) -----------------------------------------------
async function generate() {
  const out = $('out'); out.textContent = ''; $('status').textContent = 'generating…'; $('go').disabled = true;
  const body = { model: 'soup', prompt: $('prompt').value || ' ', lambda: lam, mode: $('mode').value, stream: true,
    max_tokens: Number($('maxTokens').value) || 16, temperature: Number($('temperature').value), seed: Number($('seed').value) || 0 };
  try {
    const r = await fetch('/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!r.ok) { const e = await r.json().catch(() => ({})); $('status').textContent = 'error ' + r.status + ': ' + ((e.error && e.error.message) || ''); return; }
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = '', n = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let k;
      while ((k = buf.indexOf('\\n\\n')) >= 0) {
        const line = buf.slice(0, k); buf = buf.slice(k + 2);
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (data === '[DONE]') { $('status').textContent = 'done (' + n + ' chunks)'; continue; }
        const j = JSON.parse(data);
        if (j.error) { $('status').textContent = 'error: ' + j.error.message; continue; }
        if (j.choices && j.choices[0]) { out.textContent += j.choices[0].text; n++; if (j.choices[0].finish_reason) $('status').textContent = 'finished: ' + j.choices[0].finish_reason; }
      }
    }
  } catch (e) {
    $('status').textContent = 'error: ' + e.message;
  } finally { $('go').disabled = false; }
}

async function main() {
  const r = await fetch('/v1/info');
  info = await r.json();
  const N = info.experts.length;
  lam = info.experts.map(() => 1 / N);
  $('about').textContent = info.name + ': ' + N + ' experts (' + info.experts.join(', ') + ')' + (info.rewards.length ? '; rewards ' + info.rewards.join(', ') : '') + '. θ(λ) is served exactly per request.';
  for (const m of info.modes) { const o = document.createElement('option'); o.value = m; o.textContent = m; if (m === info.default_mode) o.selected = true; $('mode').appendChild(o); }
  renderSliders(); drawFront(); update();
  $('go').addEventListener('click', generate);
  document.body.dataset.ready = '1';
}
main().catch((e) => { $('about').textContent = 'error: ' + e.message; });
</script></body></html>
`;
}
