// The demo page: wires the controls to one Sampler and keeps the page usable on any error.
import init, { Sampler } from './pkg/pushforward.js';

const $ = (id) => document.getElementById(id);
let canvas = $('canvas');
const status = $('status');
let sampler = null;
let busy = false;

function setStatus(text, isError = false) {
  status.textContent = text;
  status.classList.toggle('error', isError);
}

function sizeCanvas() {
  // HiDPI: draw at device pixels.
  const px = Math.round(canvas.clientWidth * (window.devicePixelRatio || 1)) || 640;
  if (canvas.width !== px) { canvas.width = px; canvas.height = px; }
}

function syncControls() {
  const info = sampler ? sampler.info() : null;
  const isImage = info?.config?.data?.kind === 'image';
  for (const el of document.querySelectorAll('.image-only')) el.hidden = !isImage;
  for (const el of document.querySelectorAll('.points-only')) el.hidden = isImage;
  // The SDE is integrated by Euler–Maruyama: the solver choice is the ODE's.
  const sde = $('dynamics').value === 'sde';
  $('solver').disabled = sde;
  for (const el of document.querySelectorAll('.sde-only')) el.hidden = !sde;
  const adaptive = !sde && $('solver').value === 'dopri5';
  for (const el of document.querySelectorAll('.adaptive-only')) el.hidden = !adaptive;
  for (const el of document.querySelectorAll('.fixed-only')) el.hidden = adaptive;
  const sel = $('label');
  const k = info?.config?.num_classes || 0;
  const names = classNames(info);
  if (sel.options.length !== k + 1 || sel.dataset.names !== names.join('\n')) {
    sel.innerHTML = '<option value="all">all (one row each)</option>';
    for (let c = 0; c < k; c++) sel.add(new Option(names[c], String(c)));
    sel.dataset.names = names.join('\n');
  }
  if (info) {
    $('r-backend').textContent = info.backend;
    $('r-reason').textContent = info.backendReason;
    // Where the weights came from (the browser cache on a second visit) and where they are kept.
    $('r-model').textContent = `${info.modelSource}; ${info.modelKeptNote}`;
  }
}

let loading = null;   // the AbortController of the model download in progress
let running = null;   // the AbortController of the solve in progress

async function load(model) {
  setStatus('loading model…');
  // The newest load wins: an older download still in flight is cancelled.
  loading?.abort();
  const mine = (loading = new AbortController());
  try {
    // A fresh canvas per sampler: a canvas keeps the first context type it was given (2d for
    // the CPU backend, webgpu for the GPU one), and a new model may land on the other backend.
    const fresh = canvas.cloneNode();
    fresh.width = canvas.width || 640;
    fresh.height = canvas.height || 640;
    performance.mark('pf:create-start');
    const next = await Sampler.create({
      canvas: fresh, model, backend: new URLSearchParams(location.search).get('backend') || 'auto',
      signal: mine.signal,
      onProgress: (p) => {
        if (p.phase !== 'download') return;
        if (p.cached) setStatus(`the model (${(p.total / 1e6).toFixed(1)} MB) loaded from the browser's cache`);
        else setStatus(`downloading the model: ${(p.loaded / 1e6).toFixed(1)}${p.total ? ` of ${(p.total / 1e6).toFixed(1)}` : ''} MB`);
      },
    });
    if (mine !== loading) { next.dispose(); return; }
    // Stop the old sampler's solve and free it (dispose is safe during a call).
    running?.abort();
    if (sampler) sampler.dispose();
    // The sampler may draw on a canvas of its own (a CPU fallback after WebGPU held `fresh`).
    canvas.replaceWith(next.canvas || fresh);
    canvas = next.canvas || fresh;
    sampler = next;
    applyDefaults();
    syncControls();
    // Reflowed (few-step) models: 2 Euler steps; the guided ones have guidance built in.
    const coupling = String(sampler.info().config.provenance?.coupling || '');
    if (coupling.startsWith('reflow')) {
      $('solver').value = 'euler'; $('steps').value = '2'; $('guidance').value = '1'; $('guidance-from').value = '0';
      syncControls();
    }
    // Flow maps (MeanFlow): the library's defaults for them (Euler, 1 step: one jump of the map);
    // and on a switch between 2-D and image models, that kind's defaults (images: AB2, 8 steps).
    const kind = sampler.info().config.data.kind;
    const kindChanged = shownKind !== null && kind !== shownKind;
    shownKind = kind;
    if (sampler.info().config.arch?.flow_map || (kindChanged && !coupling.startsWith('reflow'))) {
      const d = sampler.defaults();
      $('solver').value = d.solver; $('steps').value = String(d.steps);
      syncControls();
    }
    dropped = null;
    performance.mark('pf:created');
    await run({ preview: true });
    performance.mark('pf:drawn');
    drawOverlay();
  } catch (e) {
    if (mine !== loading) return;
    setStatus(`could not load the model: ${e.message || e}`, true);
  }
}

// Bounds (and, once, the values) of the controls come from the library's one options contract.
let defaultsApplied = false;
/** The data kind of the model on screen ('points2d' or 'image'; null before the first). */
let shownKind = null;
function applyDefaults() {
  const d = sampler.defaults();
  for (const [id, key] of [['steps', 'steps'], ['n', 'n'], ['seed', 'seed'], ['guidance', 'guidance'], ['noise', 'noise']]) {
    const el = $(id);
    if (!el || !d.limits[key]) continue;
    [el.min, el.max] = d.limits[key].map(String);
  }
  if (!defaultsApplied) {
    defaultsApplied = true;
    $('steps').value = String(d.steps);
    $('solver').value = d.solver;
  }
}

/** The most images a grid holds when the model's metadata would ask for more. */
const MAX_GRID_IMAGES = 64;

/** Points of the first frame of a freshly loaded 2-D model: the first rows of the request, on
 * screen sooner (V8 has not optimised the kernels yet), then the whole request (whose first
 * rows are these same points: noise is indexed by sample). */
const PREVIEW_POINTS = 1024;

async function run({ preview = false } = {}) {
  if (!sampler) return;
  // The newest request wins: a solve still running is cancelled.
  running?.abort();
  const mine = (running = new AbortController());
  const current = sampler;
  $('run').disabled = true;
  sizeCanvas();
  const info = current.info();
  const isImage = info.config.data.kind === 'image';
  const tol = Number($('tol').value);
  const sde = $('dynamics').value === 'sde';
  const opts = {
    solver: sde ? 'euler' : $('solver').value,
    noise: sde ? Number($('noise').value) : 0,
    steps: Number($('steps').value),
    rtol: tol, atol: tol,
    seed: Number($('seed').value),
    n: isImage ? Math.min(Math.max(info.config.num_classes, 1) * 4, MAX_GRID_IMAGES) : Number($('n').value),
    trajectories: !isImage && $('trajectories').checked,
    signal: mine.signal,
    onProgress: (p) => {
      setStatus(p.totalSteps ? `step ${p.step}/${p.totalSteps}` : `step ${p.step}, t = ${p.t.toFixed(3)}`);
      // A long run shows a bar and a cancel button (after 300 ms, so short runs do not flicker).
      if (performance.now() - started > 300) $('busy').hidden = false;
      $('progress').value = p.totalSteps ? p.step / p.totalSteps : p.t;
    },
  };
  const started = performance.now();
  if (isImage) {
    opts.label = $('label').value === 'all' ? 'all' : Number($('label').value);
    opts.guidance = Number($('guidance').value);
    opts.guidanceFrom = Number($('guidance-from').value);
    opts.guidanceTo = Number($('guidance-to').value);
    opts.cfgZeroStar = $('cfg-zero-star').checked;
  }
  try {
    if (preview && !isImage && opts.n > PREVIEW_POINTS) {
      await current.sample({ ...opts, n: PREVIEW_POINTS, trajectories: false });
      performance.mark('pf:first-drawn');
    }
    const r = await current.sample(opts);
    // The sampler may have moved to a canvas of its own, already in this one's place (WebGPU
    // taking over from the CPU once the adapter answered).
    if (current === sampler && current.canvas && current.canvas !== canvas) canvas = current.canvas;
    $('r-backend').textContent = r.backend;
    $('r-reason').textContent = current.info().backendReason;
    $('r-nfe').textContent = String(r.nfe);
    $('r-ms').textContent = `${r.sampleMs.toFixed(0)} ms (+${r.drawMs.toFixed(0)} ms draw)`;
    setStatus(`${r.n} samples · ${r.nfe} NFE · ${r.sampleMs.toFixed(0)} ms`);
    $('time').value = '1';
    if (isImage) labelGrid(r.grid, opts.label, info.config.num_classes);
    if (!isImage && $('density').checked) await showDensity();
  } catch (e) {
    // Superseded (a newer run or model) or cancelled: not an error to show.
    if (mine.signal.aborted || current !== sampler) return;
    setStatus(`sampling failed: ${e.message || e}`, true);
  } finally {
    if (running === mine) { running = null; $('run').disabled = false; $('busy').hidden = true; }
  }
}

$('cancel').addEventListener('click', () => {
  running?.abort();
  setStatus('cancelled');
});

/// The model's class names (its config's `class_names`), else the class numbers.
function classNames(info) {
  const k = info?.config?.num_classes || 0;
  const names = info?.config?.class_names;
  return Array.from({ length: k }, (_, c) => (Array.isArray(names) && names[c]) || String(c));
}

/// `text` shortened to fit `width` pixels: its first word ("Smileys & Emotion" → "Smileys"), then
/// cut with an ellipsis.
function fitText(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  const word = text.split(/[\s&,]+/)[0];
  if (ctx.measureText(word).width <= width) return word;
  let t = word;
  while (t.length > 1 && ctx.measureText(`${t}…`).width > width) t = t.slice(0, -1);
  return `${t}…`;
}

/// Class labels over an image grid (`grid` from sample()): a column per class when the labels
/// cycle, else the one class asked for; above the grid where there is room, else in the cells.
function labelGrid(grid, label, classes) {
  const ctx = overlay.getContext('2d');
  overlay.width = canvas.width; overlay.height = canvas.height;
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  if (!grid || !classes) return;
  const size = Math.max(10, Math.min(16, Math.round(grid.cellWidth / 3)));
  ctx.font = `${size}px system-ui, sans-serif`;
  ctx.textAlign = 'center';
  const above = grid.y >= size + 4;
  const caption = (text, cx, width) => {
    const cy = above ? grid.y - 4 : grid.y + size + 2;
    if (!above) { ctx.fillStyle = 'rgba(12, 12, 20, 0.7)'; ctx.fillRect(cx - width / 2, cy - size, width, size + 4); }
    ctx.fillStyle = '#fd9f6c';
    ctx.fillText(text, cx, cy);
  };
  const info = sampler?.info();
  const names = classNames(info);
  if (label === 'all') {
    for (let j = 0; j < grid.cols; j++) {
      const text = fitText(ctx, names[j % classes] ?? String(j % classes), grid.cellWidth - 2);
      caption(text, grid.x + (j + 0.5) * grid.cellWidth, ctx.measureText(text).width + 6);
    }
  } else {
    const named = Array.isArray(info?.config?.class_names);
    const text = label === classes ? 'unconditional' : named ? names[label] : `class ${label}`;
    caption(text, grid.x + (grid.cols * grid.cellWidth) / 2, ctx.measureText(text).width + 8);
  }
}

// The model's log-density by the exact divergence integrated back to noise, drawn under the
// samples; the readout shows ∫p over the plot box (≈ 1 when the box holds the distribution).
async function showDensity() {
  setStatus('computing log p(x) on a 64×64 grid…');
  const d = await sampler.density({ resolution: 64, steps: 12 });
  $('r-density').textContent = `∫p = ${d.integral.toFixed(3)} over the box · ${d.ms.toFixed(0)} ms`;
  setStatus(`log-density drawn (${d.width}×${d.height} cells)`);
}

// ---- the interactive layer (2-D models): click or drag to drop a noise point and follow its
// path to the data; the flow field v(x, t) as arrows at the time slider's t. Drawn on a 2-D
// overlay canvas, so it works over either backend's canvas.
const overlay = $('overlay');
let dropped = null; // [x, y] in data coordinates
let overlayBusy = false;

function plotBox() {
  const info = sampler?.info();
  return info?.config?.data?.kind === 'points2d' ? info.config.data.range : null;
}

function toData(ev, range) {
  const r = overlay.getBoundingClientRect();
  const fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
  return [range[0][0] + fx * (range[0][1] - range[0][0]), range[1][1] - fy * (range[1][1] - range[1][0])];
}

function toPixel(p, range) {
  return [(p[0] - range[0][0]) / (range[0][1] - range[0][0]) * overlay.width,
    (range[1][1] - p[1]) / (range[1][1] - range[1][0]) * overlay.height];
}

async function drawOverlay() {
  const range = plotBox();
  // Image models: the overlay holds the grid's class labels (labelGrid), left as they are.
  if (!range) return;
  const ctx = overlay.getContext('2d');
  overlay.width = canvas.width; overlay.height = canvas.height;
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  if (overlayBusy) return;
  overlayBusy = true;
  try {
    const px = overlay.width / 640;
    if ($('field').checked) {
      const res = 20, t = Number($('time').value);
      const v = await sampler.velocityField({ t, resolution: res });
      ctx.strokeStyle = 'rgba(190, 220, 255, 0.55)'; ctx.lineWidth = 1.2 * px;
      const cell = overlay.width / res;
      let vmax = 1e-6;
      for (let i = 0; i < v.length; i += 2) vmax = Math.max(vmax, Math.hypot(v[i], v[i + 1]));
      for (let r = 0; r < res; r++) for (let c = 0; c < res; c++) {
        const i = 2 * (r * res + c), s = 0.45 * cell / vmax;
        const x = (c + 0.5) * cell, y = (r + 0.5) * cell, dx = v[i] * s, dy = -v[i + 1] * s;
        ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + dx, y + dy);
        const a = Math.atan2(dy, dx), h = 3 * px;
        ctx.lineTo(x + dx - h * Math.cos(a - 0.5), y + dy - h * Math.sin(a - 0.5));
        ctx.moveTo(x + dx, y + dy);
        ctx.lineTo(x + dx - h * Math.cos(a + 0.5), y + dy - h * Math.sin(a + 0.5));
        ctx.stroke();
      }
    }
    if (dropped) {
      const sde = $('dynamics').value === 'sde';
      const r = await sampler.pathsFrom(new Float32Array(dropped), { solver: sde ? 'euler' : $('solver').value, steps: Math.max(Number($('steps').value), 16) });
      ctx.strokeStyle = '#ffffff'; ctx.lineWidth = 2 * px; ctx.beginPath();
      for (let k = 0; k < r.times.length; k++) {
        const [x, y] = toPixel([r.paths[2 * k], r.paths[2 * k + 1]], range);
        if (k === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      }
      ctx.stroke();
      const dot = (p, color) => { const [x, y] = toPixel(p, range); ctx.fillStyle = color; ctx.beginPath(); ctx.arc(x, y, 5 * px, 0, 2 * Math.PI); ctx.fill(); };
      const last = r.times.length - 1;
      dot(dropped, '#7fd4ff');
      dot([r.paths[2 * last], r.paths[2 * last + 1]], '#ffd27f');
      setStatus(`noise (${dropped[0].toFixed(2)}, ${dropped[1].toFixed(2)}) → data (${r.paths[2 * last].toFixed(2)}, ${r.paths[2 * last + 1].toFixed(2)})`);
    }
  } catch (e) {
    setStatus(`overlay: ${e.message || e}`, true);
  } finally { overlayBusy = false; }
}

let dragging = false;
overlay.addEventListener('pointerdown', (ev) => {
  const range = plotBox();
  if (!range || busy) return;
  dragging = true;
  overlay.setPointerCapture(ev.pointerId);
  dropped = toData(ev, range);
  drawOverlay();
});
overlay.addEventListener('pointermove', (ev) => {
  const range = plotBox();
  if (!dragging || !range || overlayBusy) return;
  dropped = toData(ev, range);
  requestAnimationFrame(drawOverlay);
});
overlay.addEventListener('pointerup', () => { dragging = false; });
$('field').addEventListener('change', drawOverlay);

async function loadFile(file) {
  if (!file) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  showInMenu(`your file: ${file.name}`);
  await load(bytes);
}

// The shipped models load as their F16 copies: half the download, samples within the
// tolerance of tests/f16_models.rs (models/README.md, "F16 copies").
const shipped = (name) => `models/f16/${name}.safetensors`;

/// The model menu names what is loaded: a shipped model, or a URL or file of the user's own.
function showInMenu(label) {
  const menu = $('model');
  let own = menu.querySelector('option[data-own]');
  if (!label) { own?.remove(); return; }
  if (!own) {
    own = new Option('', '__own__');
    own.dataset.own = '1';
    menu.add(own, 0);
  }
  own.textContent = label.length > 48 ? `${label.slice(0, 45)}…` : label;
  menu.value = '__own__';
}

$('controls').addEventListener('submit', (e) => { e.preventDefault(); run(); });
$('animate').addEventListener('click', async () => {
  if (!sampler || busy) return;
  busy = true;
  try {
    setStatus('animating noise → data…');
    await sampler.animate({ duration: 2500 });
    $('time').value = '1';
    setStatus('t = 1: samples');
  } catch (e) {
    setStatus(`animation failed: ${e.message || e}`, true);
  } finally { busy = false; }
});
$('time').addEventListener('input', () => {
  if (!sampler || busy) return;
  try { sampler.drawAt(Number($('time').value)); setStatus(`t = ${Number($('time').value).toFixed(3)}`); } catch (e) { setStatus(String(e.message || e), true); }
  if ($('field').checked) drawOverlay();
});
$('model').addEventListener('change', () => {
  if ($('model').value === '__own__') return;
  showInMenu(null);
  load(shipped($('model').value));
});
$('solver').addEventListener('change', syncControls);
$('dynamics').addEventListener('change', syncControls);
$('density').addEventListener('change', async () => {
  if (!sampler || busy) return;
  busy = true;
  try {
    if ($('density').checked) await showDensity();
    else { sampler.clearDensity(); $('r-density').textContent = '–'; }
  } catch (e) { setStatus(`density failed: ${e.message || e}`, true); } finally { busy = false; }
});
$('file').addEventListener('change', () => loadFile($('file').files[0]));
document.addEventListener('dragover', (e) => { e.preventDefault(); document.body.classList.add('dragging'); });
document.addEventListener('dragleave', () => document.body.classList.remove('dragging'));
document.addEventListener('drop', (e) => {
  e.preventDefault();
  document.body.classList.remove('dragging');
  loadFile(e.dataTransfer.files[0]);
});

// `?wasm=simd128|relaxed` forces one of the two wasm builds (else the bindings pick by feature).
const forcedBuild = new URLSearchParams(location.search).get('wasm');
if (forcedBuild) globalThis.PUSHFORWARD_WASM_BUILD = forcedBuild;
// Marks for the first-frame breakdown (scripts/bench-browser.mjs): wasm compiled, sampler
// created (model fetched, workers started), first samples drawn.
performance.mark('pf:script');
await init();
performance.mark('pf:wasm');
window.pushforward = { Sampler, get sampler() { return sampler; }, run, load };
// `?model=URL` (or the URL field) loads any model file the page can fetch.
$('url').addEventListener('change', () => {
  if (!$('url').value) return;
  showInMenu(`your URL: ${$('url').value}`);
  load($('url').value);
});
const asked = new URLSearchParams(location.search).get('model');
if (asked) { $('url').value = asked; showInMenu(`your URL: ${asked}`); }
await load(asked || shipped($('model').value));
document.body.dataset.ready = '1';
