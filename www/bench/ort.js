// ONNX Runtime Web: the exported Heun-step graph (train/export_onnx.py: x_next = one whole Heun
// step, guidance inside; the two time-embedding rows of t and t + h are inputs computed here) in
// a JS loop. On the WebGPU EP the step's output stays a GPU buffer
// (`preferredOutputLocation: 'gpu-buffer'`) and is fed straight back as the next input; one
// readback (`getData`) at the end. On the wasm EP tensors are CPU memory anyway.
import { timeEmbedding } from './nets.js';

const DIST = '/node_modules/onnxruntime-web/dist/';

let ortModule = null;
async function loadOrt(ep, threads) {
  if (!ortModule) {
    ortModule = await import(`${DIST}${ep === 'webgpu' ? 'ort.webgpu.min.mjs' : 'ort.wasm.min.mjs'}`);
    const ort = ortModule.default || ortModule;
    ort.env.wasm.wasmPaths = DIST;
    ort.env.wasm.numThreads = threads; // > 1 needs a cross-origin isolated page (SharedArrayBuffer)
    ort.env.wasm.simd = true;
  }
  return ortModule.default || ortModule;
}

export async function onnxRunner(m, ep, threads) {
  const ort = await loadOrt(ep, threads);
  const graph = new Uint8Array(await (await fetch(`bench/models/${m.name}_heun_step.onnx`)).arrayBuffer());
  const opts = { executionProviders: [ep], graphOptimizationLevel: 'all' };
  if (ep === 'webgpu') opts.preferredOutputLocation = 'gpu-buffer';
  const session = await ort.InferenceSession.create(graph, opts);
  let adapter = `ONNX Runtime Web ${ort.env.versions?.web || ''} ${ep}${ep === 'wasm' ? `, ${ort.env.wasm.numThreads} thread(s)` : ''}`;
  if (ep === 'webgpu') {
    const i = ort.env.webgpu?.adapter?.info;
    if (i) adapter += ` (${[i.vendor, i.architecture, i.description].filter(Boolean).join(' ')})`;
  }
  const a = m.cfg.arch;
  const E = a.kind === 'mlp' ? a.time_embed_dim : a.base_channels;
  const embedding = (t) => new ort.Tensor('float32', timeEmbedding(t, E, a.time_scale), [1, E]);
  return {
    adapter,
    async solve(w) {
      const h = 1 / w.steps;
      const scalar = (v) => new ort.Tensor('float32', Float32Array.of(v), [1]);
      const fixed = { h: scalar(h) };
      if (w.labels) {
        fixed.y = new ort.Tensor('int64', BigInt64Array.from(w.labels, (v) => BigInt(v)), [w.n]);
        fixed.w = scalar(w.guidance);
      }
      let x = new ort.Tensor('float32', w.x0, [w.n, ...w.shape]);
      for (let i = 0; i < w.steps; i++) {
        const t = i / w.steps;
        const out = await session.run({ ...fixed, x, e0: embedding(t), e1: embedding(t + h) });
        if (i > 0) x.dispose();
        x = out.x_next;
      }
      const data = await x.getData();
      x.dispose();
      return data;
    },
    dispose() { session.release(); },
  };
}

/**
 * ONNX Runtime Web on the user's own declared velocity network (`bench/models/NAME.onnx`, made
 * by `export_onnx.py --declared`: v(x, t[, y]), the same file our sampler loads): what an ORT user
 * writes — the Heun loop in JS, one `session.run` per network evaluation, the state on the host
 * between evaluations (the update is host arithmetic), guidance as one run on [x; x] with labels
 * [y; null].
 */
export async function onnxVelocityRunner(m, ep, threads) {
  const ort = await loadOrt(ep, threads);
  const graph = new Uint8Array(await (await fetch(`bench/models/${m.name}.onnx`)).arrayBuffer());
  const session = await ort.InferenceSession.create(graph, { executionProviders: [ep], graphOptimizationLevel: 'all' });
  const adapter = `ONNX Runtime Web ${ort.env.versions?.web || ''} ${ep}${ep === 'wasm' ? `, ${ort.env.wasm.numThreads} thread(s)` : ''}, per-NFE runs`;
  const out = session.outputNames[0];
  return {
    adapter,
    async solve(w) {
      const len = w.shape.reduce((a, b) => a * b, 1);
      const n = w.n;
      const guided = !!w.labels && w.guidance !== 1;
      const rows = guided ? 2 * n : n;
      const y = w.labels
        ? new ort.Tensor('int64', BigInt64Array.from({ length: rows }, (_, i) => BigInt(i < n ? w.labels[i] : w.nullClass)), [rows])
        : null;
      const v = async (x, t) => {
        const xin = guided ? new Float32Array(2 * n * len) : x;
        if (guided) { xin.set(x); xin.set(x, n * len); }
        const feeds = { x: new ort.Tensor('float32', xin, [rows, ...w.shape]), t: new ort.Tensor('float32', new Float32Array(rows).fill(t), [rows]) };
        if (y) feeds.y = y;
        const r = await session.run(feeds);
        const o = await r[out].getData();
        r[out].dispose?.();
        if (!guided) return o;
        const mix = new Float32Array(n * len);
        for (let i = 0; i < n * len; i++) mix[i] = o[n * len + i] + w.guidance * (o[i] - o[n * len + i]);
        return mix;
      };
      let x = Float32Array.from(w.x0);
      const h = 1 / w.steps;
      for (let s = 0; s < w.steps; s++) {
        const t = s * h;
        const k1 = await v(x, t);
        const x1 = x.map((xi, i) => xi + h * k1[i]);
        const k2 = await v(x1, t + h);
        x = x.map((xi, i) => xi + (h / 2) * (k1[i] + k2[i]));
      }
      return x;
    },
    dispose() { session.release(); },
  };
}
