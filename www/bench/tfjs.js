// TensorFlow.js: the same networks rebuilt from the .safetensors weights (no conversion step),
// NHWC as TF.js wants it (the images have one channel, so x0's NCHW order is already NHWC).
// Heun in a JS loop: each step is one `tf.tidy`, tensors stay on the backend (GPU buffers on
// WebGPU) between steps, one readback (`data()`) at the end. Linear layers are
// `tf.fused.matMul` with the bias fused, convolutions `tf.fused.conv2d`; SiLU is x·sigmoid(x)
// (TF.js has no fused SiLU).
import { timeEmbedding, unetPlan } from './nets.js';

const DIST = '/node_modules/@tensorflow/';

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.appendChild(s);
  });
}

let ready = null;
async function loadTf(backend) {
  if (!ready) {
    ready = (async () => {
      await loadScript(`${DIST}tfjs/dist/tf.min.js`);
      const tf = window.tf;
      if (backend === 'wasm') {
        await loadScript(`${DIST}tfjs-backend-wasm/dist/tf-backend-wasm.min.js`);
        tf.wasm.setWasmPaths(`${DIST}tfjs-backend-wasm/dist/`);
        // One thread, like our CPU backend (the page may be cross-origin isolated for ORT).
        tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
      } else if (backend === 'webgpu') {
        await loadScript(`${DIST}tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js`);
      }
      if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend ${backend} failed to initialise`);
      await tf.ready();
      return tf;
    })();
  }
  return ready;
}

export async function tfjsRunner(m, backend) {
  const tf = await loadTf(backend);
  const cfg = m.cfg, a = cfg.arch;
  // Weights in TF.js layouts: Linear [out, in] → [in, out]; Conv2d [cout, cin, kh, kw] → [kh, kw, cin, cout].
  const P = {};
  for (const [name, t] of Object.entries(m.tensors)) {
    const raw = tf.tensor(t.data, t.shape);
    if (t.shape.length === 2 && !name.startsWith('class_emb')) { P[name] = tf.transpose(raw); raw.dispose(); }
    else if (t.shape.length === 4) { P[name] = tf.transpose(raw, [2, 3, 1, 0]); raw.dispose(); }
    else P[name] = raw;
  }
  const silu = (x) => tf.mul(x, tf.sigmoid(x));
  const linear = (x, name) => tf.fused.matMul({ a: x, b: P[`${name}.weight`], bias: P[`${name}.bias`] });

  let velocity; // (x, t, labels tensor | null, guidance) → v, inside a tidy
  if (a.kind === 'mlp') {
    velocity = (x, t) => {
      const n = x.shape[0];
      const e = tf.tensor2d(timeEmbedding(t, a.time_embed_dim, a.time_scale), [1, a.time_embed_dim]);
      let h = tf.concat([x, tf.tile(e, [n, 1])], 1);
      for (let i = 0; i < a.depth; i++) h = silu(linear(h, `layers.${i}`));
      return linear(h, 'out');
    };
  } else {
    const p = unetPlan(a), G = a.groups;
    const conv = (x, name, stride = 1, pad = 1) =>
      tf.fused.conv2d({ x, filter: P[`${name}.weight`], bias: P[`${name}.bias`], strides: stride, pad });
    const norm = (x, name) => {
      const [N, H, W, C] = x.shape;
      const xr = tf.reshape(x, [N, H * W, G, C / G]);
      const { mean, variance } = tf.moments(xr, [1, 3], true);
      const y = tf.reshape(tf.mul(tf.sub(xr, mean), tf.rsqrt(tf.add(variance, 1e-5))), [N, H, W, C]);
      return tf.add(tf.mul(y, P[`${name}.weight`]), P[`${name}.bias`]);
    };
    const block = (x, emb, b) => {
      let h = conv(silu(norm(x, `${b.name}.norm1`)), `${b.name}.conv1`);
      h = tf.add(h, tf.reshape(linear(emb, `${b.name}.temb_proj`), [x.shape[0], 1, 1, b.cout]));
      h = conv(silu(norm(h, `${b.name}.norm2`)), `${b.name}.conv2`);
      return tf.add(b.cin !== b.cout ? conv(x, `${b.name}.skip`, 1, 0) : x, h);
    };
    const unet = (x, t, y) => {
      const e = tf.tensor2d(timeEmbedding(t, p.base, a.time_scale), [1, p.base]);
      let temb = linear(silu(linear(e, 'time_mlp.0')), 'time_mlp.2');
      if (cfg.num_classes > 0) temb = tf.add(temb, tf.gather(P['class_emb.weight'], y));
      const emb = silu(temb);
      let h = conv(x, 'conv_in');
      const skips = [];
      for (const lvl of p.down) {
        for (const b of lvl.blocks) h = block(h, emb, b);
        skips.push(h);
        if (lvl.downsample) h = conv(h, lvl.downsample, 2, 1);
      }
      h = block(h, emb, p.mid);
      for (const lvl of p.up) {
        h = tf.concat([h, skips.pop()], 3);
        for (const b of lvl.blocks) h = block(h, emb, b);
        if (lvl.upsample) h = conv(tf.image.resizeNearestNeighbor(h, [2 * h.shape[1], 2 * h.shape[2]]), lvl.upsample);
      }
      return conv(silu(norm(h, 'out_norm')), 'out_conv');
    };
    velocity = (x, t, y, w) => {
      if (!y) return unet(x, t, null);
      const n = x.shape[0];
      const v = unet(tf.concat([x, x], 0), t, y);
      const [vc, vu] = tf.split(v, [n, n], 0);
      return tf.add(vu, tf.mul(w, tf.sub(vc, vu)));
    };
  }

  return {
    adapter: `TF.js ${tf.version?.tfjs || ''} ${tf.getBackend()}`,
    async solve(w) {
      const h = 1 / w.steps;
      const shape = w.shape.length === 3 ? [w.shape[1], w.shape[2], w.shape[0]] : w.shape; // NCHW (C = 1) → NHWC
      if (w.shape.length === 3 && w.shape[0] !== 1) throw new Error('NHWC reuse of x0 needs one channel');
      const y = w.labels ? tf.tensor1d(Int32Array.from([...w.labels, ...w.labels.map(() => w.nullClass)]), 'int32') : null;
      let x = tf.tensor(w.x0, [w.n, ...shape]);
      for (let i = 0; i < w.steps; i++) {
        const t = i / w.steps;
        const next = tf.tidy(() => {
          const k1 = velocity(x, t, y, w.guidance);
          const k2 = velocity(tf.add(x, tf.mul(k1, h)), t + h, y, w.guidance);
          return tf.add(x, tf.mul(tf.add(k1, k2), 0.5 * h));
        });
        x.dispose();
        x = next;
      }
      const data = await x.data();
      x.dispose();
      y?.dispose();
      return data;
    },
    /** Wall ms of one s×s·s×s tf.matMul with its readback (the adapter's matmul ceiling). */
    async matmulMs(s) {
      const A = tf.randomNormal([s, s]), B = tf.randomNormal([s, s]);
      await A.data(); await B.data();
      const t0 = performance.now();
      const C = tf.matMul(A, B);
      await C.data();
      const ms = performance.now() - t0;
      tf.dispose([A, B, C]);
      return ms;
    },
    dispose() { tf.dispose(Object.values(P)); },
  };
}
