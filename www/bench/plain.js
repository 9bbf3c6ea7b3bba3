// The plain-JS baseline: the MLP and Heun's method as a competent user writes them without a
// library — Float32Array weights in PyTorch's [out, in] layout (each output a contiguous dot
// product), one point at a time, JS doubles inside. MLPs only (no convolutions).
import { timeEmbedding } from './nets.js';

export async function plainRunner(m) {
  const a = m.cfg.arch;
  if (a.kind !== 'mlp' || m.cfg.num_classes > 0) throw new Error('the plain-JS baseline is an unconditional MLP only');
  const T = m.tensors;
  const layers = [];
  for (let i = 0; i < a.depth; i++) layers.push({ w: T[`layers.${i}.weight`], b: T[`layers.${i}.bias`].data, act: true });
  layers.push({ w: T['out.weight'], b: T['out.bias'].data, act: false });
  const D = a.data_dim, E = a.time_embed_dim, W = a.width;
  const bufA = new Float64Array(Math.max(W, D + E)), bufB = new Float64Array(Math.max(W, D + E));

  /** out[n·D] = v(x, t) */
  function velocity(x, t, n, out) {
    const e = timeEmbedding(t, E, a.time_scale);
    for (let p = 0; p < n; p++) {
      let h = bufA, o = bufB;
      for (let d = 0; d < D; d++) h[d] = x[p * D + d];
      for (let j = 0; j < E; j++) h[D + j] = e[j];
      let inDim = D + E;
      for (const L of layers) {
        const [outDim] = L.w.shape, w = L.w.data, b = L.b;
        for (let j = 0; j < outDim; j++) {
          let s = b[j];
          const row = j * inDim;
          for (let k = 0; k < inDim; k++) s += w[row + k] * h[k];
          o[j] = L.act ? s / (1 + Math.exp(-s)) : s;
        }
        [h, o] = [o, h];
        inDim = outDim;
      }
      for (let d = 0; d < D; d++) out[p * D + d] = h[d];
    }
  }

  return {
    adapter: 'JS engine (scalar, 1 thread)',
    async solve(w) {
      const n = w.n, len = n * D, h = 1 / w.steps;
      const x = Float32Array.from(w.x0), k1 = new Float32Array(len), k2 = new Float32Array(len), xt = new Float32Array(len);
      for (let i = 0; i < w.steps; i++) {
        const t = i * h;
        velocity(x, t, n, k1);
        for (let j = 0; j < len; j++) xt[j] = x[j] + h * k1[j];
        velocity(xt, t + h, n, k2);
        for (let j = 0; j < len; j++) x[j] += 0.5 * h * (k1[j] + k2[j]);
      }
      return x;
    },
    dispose() {},
  };
}
