// <pushforward-sampler> — embed a live flow-matching sampler in any page with one tag:
//
//   <script type="module" src="https://your.host/path/pushforward-sampler.js"></script>
//   <pushforward-sampler model="models/moons.safetensors" solver="heun" steps="8" points="20000" controls></pushforward-sampler>
//
// Optional attributes: seed, label and guidance (class-conditional models), backend (auto, webgpu,
// cpu), noise (SDE noise level, with solver="euler"), density (draw the learned log p(x) under the
// samples, 2-D models).
//
// The wasm bundle is found next to this script (import.meta.url), so the pair works from any
// static host and sub-path; `model` resolves against the page, like <img src>. Every element
// on a page shares one wasm instance (and, with the WebGPU backend, one GPUDevice), and each
// initialises only when it scrolls into view.

const pkgUrl = new URL('./pkg/pushforward.js', import.meta.url);
let modulePromise = null;
function loadModule() {
  modulePromise ??= import(pkgUrl.href).then(async (m) => { await m.default(); return m; });
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
  static observedAttributes = ['model', 'solver', 'steps', 'points', 'seed', 'label', 'guidance'];

  constructor() {
    super();
    this.sampler = null;
    this.busy = false;
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${STYLE}</style><div class="wrap"><canvas width="512" height="512"></canvas>
      <div class="bar" hidden>
        <select class="solver"><option>euler</option><option>midpoint</option><option>heun</option><option>rk4</option><option>dopri5</option></select>
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
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) { this.observer.disconnect(); this.init(); }
    }, { rootMargin: '200px' });
    this.observer.observe(this);
  }

  disconnectedCallback() {
    this.observer?.disconnect();
    this.sampler?.dispose();
    this.sampler = null;
  }

  attributeChangedCallback(name, oldValue, newValue) {
    if (oldValue === newValue || !this.sampler) return;
    if (name === 'model') this.init(); else this.run();
  }

  status(text, isError = false) {
    this.statusEl.textContent = text;
    this.statusEl.classList.toggle('error', isError);
  }

  async init() {
    const model = this.getAttribute('model');
    if (!model) { this.status('no model attribute', true); return; }
    try {
      this.status('loading…');
      const { Sampler } = await loadModule();
      // A fresh canvas per sampler: a canvas keeps its first context type (2d or webgpu).
      const fresh = this.canvas.cloneNode();
      const next = await Sampler.create({ canvas: fresh, model: new URL(model, document.baseURI).href, backend: this.getAttribute('backend') || 'auto' });
      this.canvas.replaceWith(fresh);
      this.canvas = fresh;
      this.sampler?.dispose();
      this.sampler = next;
      this.dispatchEvent(new CustomEvent('ready', { detail: this.sampler.info() }));
      await this.run();
    } catch (e) {
      this.status(`could not load ${model}: ${e.message || e}`, true);
      this.dispatchEvent(new CustomEvent('error', { detail: String(e.message || e) }));
    }
  }

  async run() {
    if (!this.sampler || this.busy) return;
    this.busy = true;
    const px = Math.round((this.canvas.clientWidth || 512) * (window.devicePixelRatio || 1));
    if (this.canvas.width !== px) { this.canvas.width = px; this.canvas.height = px; }
    const info = this.sampler.info();
    const num = (k, d) => (this.hasAttribute(k) ? Number(this.getAttribute(k)) : d);
    const opts = {
      solver: this.getAttribute('solver') || 'heun',
      steps: num('steps', 8),
      seed: num('seed', 0),
      noise: num('noise', 0),
      n: info.config.data.kind === 'image' ? num('points', (info.config.num_classes || 10) * 4) : num('points', 4096),
      onProgress: (p) => this.status(p.totalSteps ? `step ${p.step}/${p.totalSteps}` : `t = ${p.t.toFixed(3)}`),
    };
    if (info.config.num_classes > 0) {
      opts.label = this.hasAttribute('label') ? Number(this.getAttribute('label')) : 'all';
      opts.guidance = num('guidance', 2);
    }
    try {
      const r = await this.sampler.sample(opts);
      if (this.hasAttribute('density') && info.config.data.kind === 'points2d') {
        this.status('computing log p(x)…');
        await this.sampler.density({ resolution: 40, steps: 8 });
      }
      this.status(`${r.n} samples · ${opts.solver} · ${r.nfe} NFE · ${r.sampleMs.toFixed(0)} ms · ${r.backend}`);
      this.dispatchEvent(new CustomEvent('sampled', { detail: r }));
    } catch (e) {
      this.status(`sampling failed: ${e.message || e}`, true);
    } finally {
      this.busy = false;
    }
  }
}

if (!customElements.get('pushforward-sampler')) customElements.define('pushforward-sampler', PushforwardSampler);
