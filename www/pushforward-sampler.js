// <pushforward-sampler> — embed a live flow-matching sampler in any page with one tag:
//
//   <script type="module" src="https://your.host/path/pushforward-sampler.js"></script>
//   <pushforward-sampler model="models/moons.safetensors" solver="heun" steps="8" points="20000" controls></pushforward-sampler>
//
// Optional attributes: seed, label, guidance, guidance-from, guidance-to and cfg-zero-star
// (class-conditional models), backend (auto, webgpu,
// cpu), noise (SDE noise level, with solver="euler"), density (draw the learned log p(x) under the
// samples, 2-D models), declaration (URL of the JSON declaration of an .onnx model whose
// metadata does not carry one; train/README.md).
//
// The wasm bundle is found next to this script (./pkg/), so the pair works from any static host
// and sub-path, and from the npm package (`import 'pushforward/element'`) through a bundler;
// `model` resolves against the page, like <img src>. Every element on a page shares one wasm
// instance (and, with the WebGPU backend, one GPUDevice), and each
// initialises only when it scrolls into view.

import init, { Sampler } from './pkg/pushforward.js';

// The bindings are imported statically (bundlers follow them and copy the wasm files they
// reference); the wasm itself is fetched and compiled once, when the first element starts.
let modulePromise = null;
function loadModule() {
  modulePromise ??= init().then(() => ({ Sampler }));
  return modulePromise;
}

const STYLE = `
  :host { display: block; max-width: 640px; font: 14px/1.4 system-ui, sans-serif; color: #e8e6f0; }
  .wrap { background: #0c0c14; border-radius: 10px; overflow: hidden; }
  canvas { display: block; width: 100%; aspect-ratio: 1; image-rendering: pixelated; }
  .bar { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; padding: 8px 10px; background: #161624; }
  .bar select, .bar input { background: #0c0c14; color: inherit; border: 1px solid #2c2c44; border-radius: 5px; padding: 3px 6px; font: inherit; width: 5.5em; }
  .bar button { background: #fd9f6c; color: #1a1020; border: 0; border-radius: 5px; padding: 4px 12px; font: inherit; font-weight: 600; cursor: pointer; }
  .status { padding: 6px 10px; color: #9a98b0; font-size: 12px; min-height: 1.4em; }
  .status.error { color: #ff7a7a; }
`;

class PushforwardSampler extends HTMLElement {
  static observedAttributes = ['model', 'declaration', 'solver', 'steps', 'points', 'seed', 'label', 'guidance', 'guidance-from', 'guidance-to', 'cfg-zero-star'];

  constructor() {
    super();
    this.sampler = null;
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${STYLE}</style><div class="wrap"><canvas width="512" height="512"></canvas>
      <div class="bar" hidden>
        <select class="solver"><option>euler</option><option>midpoint</option><option>heun</option><option>rk4</option><option>ab2</option><option>dopri5</option></select>
        <label>steps <input class="steps" type="number" min="1" max="1000"></label>
        <label>seed <input class="seed" type="number" min="0"></label>
        <button type="button">Sample</button>
      </div><div class="status" role="status">waiting to scroll into view…</div></div>`;
    this.canvas = root.querySelector('canvas');
    this.statusEl = root.querySelector('.status');
    root.querySelector('button').addEventListener('click', () => {
      this.setAttribute('solver', root.querySelector('.solver').value);
      this.setAttribute('steps', root.querySelector('.steps').value);
      this.setAttribute('seed', root.querySelector('.seed').value);
      this.run();
    });
  }

  connectedCallback() {
    const bar = this.shadowRoot.querySelector('.bar');
    bar.hidden = !this.hasAttribute('controls');
    this.shadowRoot.querySelector('.solver').value = this.getAttribute('solver') || 'heun';
    this.shadowRoot.querySelector('.steps').value = this.getAttribute('steps') || '8';
    this.shadowRoot.querySelector('.seed').value = this.getAttribute('seed') || '0';
    if (typeof IntersectionObserver === 'undefined') { this.init(); return; }
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) { this.observer.disconnect(); this.init(); }
    }, { rootMargin: '200px' });
    this.observer.observe(this);
  }

  disconnectedCallback() {
    this.observer?.disconnect();
    // Stop what runs (the download, a solve) and free the sampler; a load that finishes after
    // this sees the element gone and frees what it made.
    this.generation = (this.generation || 0) + 1;
    this.loading?.abort();
    this.running?.abort();
    this.sampler?.dispose();
    this.sampler = null;
  }

  attributeChangedCallback(name, oldValue, newValue) {
    if (oldValue === newValue || !this.sampler) return;
    if (name === 'model' || name === 'declaration') this.init(); else this.run();
  }

  status(text, isError = false) {
    this.statusEl.textContent = text;
    this.statusEl.classList.toggle('error', isError);
  }

  async init() {
    const model = this.getAttribute('model');
    if (!model) { this.status('no model attribute', true); return; }
    // The newest load wins: an older one still downloading is cancelled.
    const generation = (this.generation = (this.generation || 0) + 1);
    this.loading?.abort();
    const loading = (this.loading = new AbortController());
    try {
      this.status('loading…');
      const { Sampler } = await loadModule();
      // A fresh canvas per sampler: a canvas keeps its first context type (2d or webgpu).
      const fresh = this.canvas.cloneNode();
      // An .onnx file whose metadata does not say what it is comes with its declaration (JSON).
      const declarationUrl = this.getAttribute('declaration');
      let declaration;
      if (declarationUrl) {
        const r = await fetch(new URL(declarationUrl, document.baseURI).href, { signal: loading.signal });
        if (!r.ok) throw new Error(`declaration ${declarationUrl}: HTTP ${r.status}`);
        declaration = await r.text();
      }
      const next = await Sampler.create({
        canvas: fresh, model: new URL(model, document.baseURI).href, backend: this.getAttribute('backend') || 'auto',
        signal: loading.signal, ...(declaration ? { declaration } : {}),
        onProgress: (p) => {
          if (p.phase === 'download') this.status(p.cached ? 'loaded from the cache' : `downloading ${mb(p.loaded)}${p.total ? ` of ${mb(p.total)}` : ''} MB…`);
        },
      });
      if (generation !== this.generation) { next.dispose(); return; }
      this.running?.abort();
      this.sampler?.dispose();
      // The sampler may draw on a canvas of its own (a CPU fallback after WebGPU held `fresh`).
      this.canvas.replaceWith(next.canvas || fresh);
      this.canvas = next.canvas || fresh;
      this.sampler = next;
      this.dispatchEvent(new CustomEvent('ready', { detail: this.sampler.info() }));
      await this.run({ preview: true });
    } catch (e) {
      if (generation !== this.generation) return;
      this.status(`could not load ${model}: ${e.message || e}`, true);
      this.dispatchEvent(new CustomEvent('error', { detail: String(e.message || e) }));
    }
  }

  /** `preview` (a freshly loaded 2-D model): the request's first PREVIEW_POINTS points are drawn
   * first — on screen sooner, while V8 has not optimised the kernels yet — then the whole request,
   * whose first points they are (noise is indexed by sample). */
  async run({ preview = false } = {}) {
    const sampler = this.sampler;
    if (!sampler) return;
    // The newest request wins: a solve still running for older attributes is cancelled.
    this.running?.abort();
    const running = (this.running = new AbortController());
    const px = Math.round((this.canvas.clientWidth || 512) * (window.devicePixelRatio || 1));
    if (this.canvas.width !== px) { this.canvas.width = px; this.canvas.height = px; }
    const info = sampler.info();
    // Defaults and bounds come from the library (one options contract), not from here.
    const d = sampler.defaults();
    const num = (k, dflt) => (this.hasAttribute(k) ? Number(this.getAttribute(k)) : dflt);
    const isImage = info.config.data.kind === 'image';
    // Image grids: one row of each class, four rows (bounded, whatever the model's metadata says).
    const imageN = Math.min(Math.max(info.config.num_classes, 1) * 4, MAX_GRID_IMAGES);
    const opts = {
      solver: this.getAttribute('solver') || d.solver,
      steps: num('steps', d.steps),
      seed: num('seed', d.seed),
      noise: num('noise', d.noise),
      n: num('points', isImage ? imageN : d.n),
      signal: running.signal,
      onProgress: (p) => this.status(p.totalSteps ? `step ${p.step}/${p.totalSteps}` : `t = ${p.t.toFixed(3)}`),
    };
    if (info.config.num_classes > 0) {
      opts.label = this.hasAttribute('label') ? Number(this.getAttribute('label')) : 'all';
      // w 1.5 from t = 0.2 on: the best class agreement / Fréchet trade-off measured on the
      // shipped digits (models/README.md, "Guidance options").
      opts.guidance = num('guidance', 1.5);
      opts.guidanceFrom = num('guidance-from', this.hasAttribute('guidance') ? d.guidanceFrom : 0.2);
      opts.guidanceTo = num('guidance-to', d.guidanceTo);
      opts.cfgZeroStar = this.hasAttribute('cfg-zero-star');
    }
    try {
      if (preview && !isImage && opts.n > PREVIEW_POINTS) await sampler.sample({ ...opts, n: PREVIEW_POINTS });
      const r = await sampler.sample(opts);
      // The sampler may have moved to a canvas of its own, already in this one's place (WebGPU
      // taking over from the CPU once the adapter answered).
      if (sampler === this.sampler && sampler.canvas && sampler.canvas !== this.canvas) this.canvas = sampler.canvas;
      if (this.hasAttribute('density') && info.config.data.kind === 'points2d') {
        this.status('computing log p(x)…');
        await sampler.density({ resolution: 40, steps: 8 });
      }
      this.status(`${r.n} samples · ${opts.solver} · ${r.nfe} NFE · ${r.sampleMs.toFixed(0)} ms · ${r.backend}`);
      this.dispatchEvent(new CustomEvent('sampled', { detail: r }));
    } catch (e) {
      // A cancelled or superseded request is not an error the reader needs to see.
      if (running.signal.aborted || sampler !== this.sampler) return;
      this.status(`sampling failed: ${e.message || e}`, true);
    } finally {
      if (this.running === running) this.running = null;
    }
  }
}

/** Points of a freshly loaded 2-D model's first frame (see `run`). */
const PREVIEW_POINTS = 1024;

/** The most images an embed draws when `points` is not given. */
const MAX_GRID_IMAGES = 64;
const mb = (bytes) => (bytes / 1e6).toFixed(1);

if (!customElements.get('pushforward-sampler')) customElements.define('pushforward-sampler', PushforwardSampler);
