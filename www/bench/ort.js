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
