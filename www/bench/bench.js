// The benchmark page (issue #6): one library on one backend per page load, the same trained
// networks, identical x0 for everyone, a correctness check before any timing. Driven by
// scripts/bench-browser.mjs; by hand: serve with `node scripts/serve.mjs --isolated` (after
// `bash scripts/bench-setup.sh`) and open bench.html?peer=ort&backend=wasm&threads=2, then
// `await bench.run({ model: 'moons', n: 4096, steps: 8 })` in the console.
//
// Every runner integrates dx/dt = v(x, t) from t = 0 to 1 with Heun's method (two network
// evaluations a step) on a fixed grid, keeps its tensors where the library computes (GPU
// buffers for the WebGPU backends) and reads the result back once at the end.
import init, { Sampler } from '../pkg/pushforward.js';
import { normals } from './philox.js';
import { onnxRunner, onnxVelocityRunner } from './ort.js';
import { tfjsRunner } from './tfjs.js';
import { plainRunner } from './plain.js';
import { parseSafetensors, flopsPerRow } from './nets.js';

const q = new URLSearchParams(location.search);
const peer = q.get('peer') || 'ours';
const backend = q.get('backend') || 'cpu';
const threads = Number(q.get('threads') || 1);
// `format=onnx`: our sampler loads the declared velocity network's .onnx file (issue #14) and ORT
// runs the same file per network evaluation.
const onnx = q.get('format') === 'onnx';
const log = (s) => { document.getElementById('log').textContent += `\n${s}`; };

const models = {};
async function model(name) {
  if (!models[name]) {
    const bytes = new Uint8Array(await (await fetch(`models/${name}.safetensors`)).arrayBuffer());
    models[name] = { name, bytes, ...parseSafetensors(bytes) };
  }
  return models[name];
}

/** Our sampler as a runner: it draws the same x0 itself from the seed (Philox, STREAM_INIT). */
async function oursRunner(m, which) {
  // CPU: `threads` workers (0 = as many as navigator.hardwareConcurrency, capped at 8).
  const bytes = onnx && which !== 'reference' ? new Uint8Array(await (await fetch(`bench/models/${m.name}.onnx`)).arrayBuffer()) : m.bytes;
  const backend = which === 'reference' ? 'cpu' : which;
  const s = await Sampler.create({ model: bytes, backend, workers: backend === 'cpu' ? (threads > 0 ? threads : 'auto') : 0 });
  return {
    adapter: s.info().adapter,
    async solve(w) {
      const opts = { n: w.n, solver: 'heun', steps: w.steps, seed: w.seed, returnSamples: true };
      if (w.guidance !== undefined) Object.assign(opts, { label: 'all', guidance: w.guidance });
      return (await s.sample(opts)).samples;
    },
    dispose() { s.dispose(); },
  };
}

async function makeRunner(m) {
  switch (peer) {
    case 'ours': return oursRunner(m, backend);
    case 'ort': return onnx ? onnxVelocityRunner(m, backend, threads) : onnxRunner(m, backend, threads);
    case 'tfjs': return tfjsRunner(m, backend);
    case 'plain': return plainRunner(m);
    default: throw new Error(`unknown peer ${peer}`);
  }
}

/** The work item with everything a peer needs besides the network: x0, labels, shapes. */
function workOf(m, { n, steps, seed = 1, guidance }) {
  const d = m.cfg.data;
  const shape = d.kind === 'image' ? [d.channels, d.height, d.width] : [m.cfg.arch.data_dim];
  const len = shape.reduce((a, b) => a * b, 1);
  const k = m.cfg.num_classes;
  const w = { n, steps, seed, shape, x0: normals(seed, n * len) };
  if (k > 0) { w.guidance = guidance ?? 1; w.labels = Int32Array.from({ length: n }, (_, i) => i % k); w.nullClass = k; }
  return w;
}

const runners = {};
let reference = null;
async function runnerFor(name) {
  if (!runners[name]) {
    const m = await model(name);
    const t0 = performance.now();
    runners[name] = { runner: await makeRunner(m), createMs: performance.now() - t0 };
  }
  return runners[name];
}

function maxAbs(a) { let r = 0; for (const v of a) r = Math.max(r, Math.abs(v)); return r; }
function maxAbsDiff(a, b) { let r = 0; for (let i = 0; i < a.length; i++) r = Math.max(r, Math.abs(a[i] - b[i])); return r; }

/**
 * Correctness before timing: the same Heun solve from the same x0 by this runner and by our wasm
 * CPU sampler (the reference). One step (x1 − x0 = h/2·(v(x0, 0) + v(x0 + h·v(x0, 0), 1)): two
 * network evaluations) must agree to 1e-4 relative (max |Δ| / max |ours|); a longer solve is
 * reported too (errors compound along the trajectory, so it is informational).
 */
async function check({ model: name, n, steps, guidance }) {
  const m = await model(name);
  if (reference?.name !== name) {
    reference?.dispose();
    // The reference is always our sampler on the .safetensors file.
    reference = Object.assign(await oursRunner(m, 'reference'), { name });
  }
  const { runner } = await runnerFor(name);
  const out = {};
  for (const [key, s] of [['oneStep', 1], ['solve', steps]]) {
    const w = workOf(m, { n, steps: s, seed: 7, guidance });
    const want = await reference.solve(w);
    const got = await runner.solve(w);
    const dWant = want.map((v, i) => v - w.x0[i]);
    const dGot = got.map((v, i) => v - w.x0[i]);
    out[key] = { steps: s, rel: maxAbsDiff(dGot, dWant) / maxAbs(dWant), finite: got.every(Number.isFinite) };
  }
  out.pass = out.oneStep.finite && out.oneStep.rel <= 1e-4;
  log(`check ${name} n=${n}: 1-step rel ${out.oneStep.rel.toExponential(2)}, ${steps}-step rel ${out.solve.rel.toExponential(2)} → ${out.pass ? 'PASS' : 'FAIL'}`);
  return out;
}

/**
 * Timed solves (wall clock: upload, solve, readback) with seeds seed, seed+1, …; with `warmup`,
 * one untimed solve first (its time is reported apart: the first call includes shader and
 * pipeline compilation). The driver interleaves single runs across pages, so load from other
 * processes falls on every library alike.
 */
async function run({ model: name, n, steps, guidance, runs = 5, warmup = true, seed = 2 }) {
  const m = await model(name);
  const entry = await runnerFor(name);
  const { runner, createMs } = entry;
  const fresh = !entry.reported;
  entry.reported = true;
  let firstMs = null;
  if (warmup) {
    const w = workOf(m, { n, steps, seed: 1, guidance });
    const t0 = performance.now();
    const first = await runner.solve(w);
    firstMs = performance.now() - t0;
    if (!first.every(Number.isFinite)) throw new Error('non-finite samples');
  }
  const ms = [];
  for (let i = 0; i < runs; i++) {
    const wi = workOf(m, { n, steps, seed: seed + i, guidance });
    const t0 = performance.now();
    await runner.solve(wi);
    ms.push(performance.now() - t0);
  }
  const guided = m.cfg.num_classes > 0;
  const flops = flopsPerRow(m.cfg) * n * (guided ? 2 : 1) * 2 * steps;
  log(`${name} n=${n} heun ${steps}:${firstMs != null ? ` first ${firstMs.toFixed(0)} ms,` : ''} runs ${ms.map((v) => v.toFixed(0)).join(' ')}`);
  return { ms, firstMs, createMs: fresh ? createMs : null, flops, nfe: 2 * steps, adapter: runner.adapter };
}

/** Best-of-3 GFLOP/s of the library's own dense matmul (s×s·s×s) on this backend, if it has one. */
async function matmul(s = 512) {
  const { runner } = Object.values(runners)[0] || {};
  if (!runner?.matmulMs) return null;
  await runner.matmulMs(s);
  let best = Infinity;
  for (let i = 0; i < 3; i++) best = Math.min(best, await runner.matmulMs(s));
  return { size: s, ms: best, gflops: (2 * s ** 3) / best / 1e6 };
}

/**
 * The core's 4-lane SIMD peak as wasm reaches it: a hand-assembled module runs 12 independent
 * accumulator chains `acc = acc · m + a` over f32x4 (12 chains hide the latency and keep every
 * FP pipe busy; 12 + 2 constants fit V8's 15 vector registers), 8 flops per lane per step.
 * Two variants: multiply then add (`f32x4.mul` + `f32x4.add`, what the simd128 build runs) and
 * `f32x4.relaxed_madd` (one FMA where the CPU has it), the latter only where relaxed SIMD
 * validates. Best of 3 runs of 2·10⁷ steps each (~0.1–0.3 s). Issue #16 asks the MLP to reach 70%
 * of the better of the two in one worker.
 */
function fmaPeak() {
  const CHAINS = 12, STEPS = 20_000_000;
  const leb = (n) => { const o = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; o.push(b); } while (n); return o; };
  const f32x4 = (v) => { const b = new Uint8Array(16); const d = new DataView(b.buffer); for (let i = 0; i < 4; i++) d.setFloat32(4 * i, v, true); return [0xfd, ...leb(0x0c), ...b]; };
  const SIMD = (op) => [0xfd, ...leb(op)];
  const module = (relaxed) => {
    // locals: 0 = steps (i32 param), 1..12 = accumulators, 13 = multiplier, 14 = addend.
    const body = [1, 14, 0x7b];
    for (let j = 1; j <= CHAINS; j++) body.push(...f32x4(1 + j / 64), 0x21, j);
    body.push(...f32x4(0.999_999_9), 0x21, 13, ...f32x4(1e-7), 0x21, 14);
    body.push(0x02, 0x40, 0x03, 0x40); // block, loop
    body.push(0x20, 0, 0x45, 0x0d, 1); // br_if exit when steps == 0
    for (let j = 1; j <= CHAINS; j++) {
      if (relaxed) body.push(0x20, j, 0x20, 13, 0x20, 14, ...SIMD(0x105)); // f32x4.relaxed_madd(acc, m, a)
      else body.push(0x20, j, 0x20, 13, ...SIMD(0xe6), 0x20, 14, ...SIMD(0xe4)); // f32x4.add(f32x4.mul(acc, m), a)
      body.push(0x21, j);
    }
    body.push(0x20, 0, 0x41, 1, 0x6b, 0x21, 0, 0x0c, 0, 0x0b, 0x0b); // steps -= 1; br loop; end; end
    body.push(0x20, 1);
    for (let j = 2; j <= CHAINS; j++) body.push(0x20, j, ...SIMD(0xe4));
    body.push(...SIMD(0x1f), 0, 0x0b); // f32x4.extract_lane 0; end
    const code = [...leb(body.length), ...body];
    const sections = [
      [1, [1, 0x60, 1, 0x7f, 1, 0x7d]], // type: (i32) -> f32
      [3, [1, 0]],
      [7, [1, 4, ...new TextEncoder().encode('peak'), 0, 0]],
      [10, [1, ...code]],
    ];
    return new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...sections.flatMap(([id, c]) => [id, ...leb(c.length), ...c])]);
  };
  const out = {};
  for (const [name, relaxed] of [['mulAdd', false], ['relaxedMadd', true]]) {
    const bytes = module(relaxed);
    if (!WebAssembly.validate(bytes)) { out[name] = null; continue; }
    const peak = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports.peak;
    peak(1000);
    let best = Infinity;
    for (let i = 0; i < 3; i++) { const t0 = performance.now(); peak(STEPS); best = Math.min(best, performance.now() - t0); }
    out[name] = (STEPS * CHAINS * 4 * 2) / best / 1e6; // GFLOP/s
  }
  return out;
}

async function adapterInfo() {
  if (!navigator.gpu) return null;
  const a = await navigator.gpu.requestAdapter();
  if (!a) return null;
  const i = a.info || {};
  return { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, fallback: a.isFallbackAdapter ?? i.isFallbackAdapter };
}

// `?wasm=simd128|relaxed` forces one of the two builds (else the bindings pick by feature).
if (q.get('wasm')) globalThis.PUSHFORWARD_WASM_BUILD = q.get('wasm');
await init();
window.bench = { check, run, matmul, fmaPeak, adapterInfo, crossOriginIsolated: self.crossOriginIsolated };
document.body.dataset.ready = '1';
log(`ready: peer=${peer} backend=${backend} threads=${threads} crossOriginIsolated=${self.crossOriginIsolated}`);
