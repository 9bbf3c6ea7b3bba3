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
  if (sel.options.length !== k + 1) {
    sel.innerHTML = '<option value="all">all (one row each)</option>';
    for (let c = 0; c < k; c++) sel.add(new Option(String(c), String(c)));
  }
  if (info) { $('r-backend').textContent = info.backend; $('r-reason').textContent = info.backendReason; }
}

async function load(model) {
  setStatus('loading model…');
  try {
    // A fresh canvas per sampler: a canvas keeps the first context type it was given (2d for
    // the CPU backend, webgpu for the GPU one), and a new model may land on the other backend.
    const fresh = canvas.cloneNode();
    fresh.width = canvas.width || 640;
    fresh.height = canvas.height || 640;
    const next = await Sampler.create({ canvas: fresh, model, backend: new URLSearchParams(location.search).get('backend') || 'auto' });
    canvas.replaceWith(fresh);
    canvas = fresh;
    if (sampler) sampler.dispose();
    sampler = next;
    syncControls();
    await run();
  } catch (e) {
    setStatus(`could not load the model: ${e.message || e}`, true);
  }
}

async function run() {
  if (!sampler || busy) return;
  busy = true;
  $('run').disabled = true;
  sizeCanvas();
  const info = sampler.info();
  const isImage = info.config.data.kind === 'image';
  const tol = Number($('tol').value);
  const sde = $('dynamics').value === 'sde';
  const opts = {
    solver: sde ? 'euler' : $('solver').value,
    noise: sde ? Number($('noise').value) : 0,
    steps: Number($('steps').value),
    rtol: tol, atol: tol,
    seed: Number($('seed').value),
    n: isImage ? (info.config.num_classes || 10) * 4 : Number($('n').value),
    trajectories: !isImage && $('trajectories').checked,
    onProgress: (p) => setStatus(p.totalSteps ? `step ${p.step}/${p.totalSteps}` : `step ${p.step}, t = ${p.t.toFixed(3)}`),
  };
  if (isImage) {
    opts.label = $('label').value === 'all' ? 'all' : Number($('label').value);
    opts.guidance = Number($('guidance').value);
  }
  try {
    const r = await sampler.sample(opts);
    $('r-nfe').textContent = String(r.nfe);
    $('r-ms').textContent = `${r.sampleMs.toFixed(0)} ms (+${r.drawMs.toFixed(0)} ms draw)`;
    setStatus(`${r.n} samples · ${r.nfe} NFE · ${r.sampleMs.toFixed(0)} ms`);
    $('time').value = '1';
    if (!isImage && $('density').checked) await showDensity();
  } catch (e) {
    setStatus(`sampling failed: ${e.message || e}`, true);
  } finally {
    busy = false;
    $('run').disabled = false;
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

async function loadFile(file) {
  if (!file) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  await load(bytes);
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
});
$('model').addEventListener('change', () => load(`models/${$('model').value}.safetensors`));
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

await init();
window.pushforward = { Sampler, get sampler() { return sampler; }, run, load };
await load(`models/${$('model').value}.safetensors`);
document.body.dataset.ready = '1';
