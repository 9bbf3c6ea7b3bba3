// What a visitor does, on the wasm CPU backend, in whichever browser engine the harness starts
// (scripts/test.sh runs this file in Chromium and again in Firefox ESR): the demo loads and
// samples, the embed page's three samplers draw, a user's ONNX U-Net with attention samples what
// PyTorch computed, and abort and dispose settle a call at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch, root, readSafetensors, BROWSER } from './harness.mjs';

let b;
before(async () => { b = await launch({ webgpu: false }); });
after(async () => { await b?.close(); });

async function demo() {
  await b.page.goto(`${b.url}/?backend=cpu`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
}

test(`${BROWSER}: the demo samples on the CPU; mnist through the workers`, async () => {
  await demo();
  const r = await b.page.evaluate(async () => {
    const info = window.pushforward.sampler.info();
    const { Sampler } = window.pushforward;
    const s = await Sampler.create({ model: 'models/f16/mnist.safetensors', backend: 'cpu', workers: 2 });
    const res = await s.sample({ n: 10, steps: 4, guidance: 2, returnSamples: true });
    s.dispose();
    const lo = Math.min(...res.samples), hi = Math.max(...res.samples);
    const adapter = navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
    const webgpu = navigator.gpu ? (adapter ? 'an adapter' : 'navigator.gpu but no adapter') : 'no navigator.gpu';
    return { backend: info.backend, build: info.wasmBuild, weights: info.config.provenance.weights, nfe: res.nfe, labels: Array.from(res.labels), lo, hi, ua: navigator.userAgent, webgpu };
  });
  console.log(`${r.ua}: ${r.backend}, ${r.build} build, WebGPU here: ${r.webgpu}; mnist ${r.nfe} NFE, values ${r.lo.toFixed(2)}…${r.hi.toFixed(2)}`);
  assert.equal(r.backend, 'cpu');
  assert.equal(r.weights, 'f16, rounded from the f32 file');
  assert.deepEqual(r.labels, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // Digits: a dark background (≈ −1) and bright strokes (≈ 1), not clamped.
  assert.ok(r.lo > -3 && r.lo < -0.5 && r.hi > 0.5 && r.hi < 3, `${r.lo}…${r.hi}`);
});

test(`${BROWSER}: the embed page's samplers all draw (three 2-D, one emoji grid)`, async () => {
  await b.page.goto(`${b.url}/embed.html`);
  const done = await b.page.evaluate(async () => {
    const els = [...document.querySelectorAll('pushforward-sampler')];
    const results = els.map((el) => new Promise((resolve) => {
      el.addEventListener('sampled', (e) => resolve({ id: el.id, n: e.detail.n }), { once: true });
      el.addEventListener('error', (e) => resolve({ id: el.id, error: e.detail }), { once: true });
    }));
    for (const el of els) { el.scrollIntoView(); await new Promise((r) => setTimeout(r, 200)); }
    return Promise.all(results);
  });
  console.log(done);
  assert.equal(done.length, 4);
  assert.deepEqual(done.map((d) => d.error), done.map(() => undefined));
  assert.ok(done.every((d) => (d.id === 'emoji' ? d.n === 18 : d.n > 1000)), JSON.stringify(done));
});

test(`${BROWSER}: a user's ONNX U-Net with attention samples what PyTorch computed`, async () => {
  await demo();
  const bytes = [...fs.readFileSync(path.join(root, 'tests/fixtures/onnx/unet_attn.onnx'))];
  const samples = await b.page.evaluate(async (bytes) => {
    const s = await window.pushforward.Sampler.create({ model: new Uint8Array(bytes), backend: 'cpu', workers: 0 });
    const r = await s.sample({ n: 5, solver: 'heun', steps: 4, seed: 11, label: 'all', guidance: 2, returnSamples: true });
    s.dispose();
    return Array.from(r.samples);
  }, bytes);
  const ref = readSafetensors(path.join(root, 'tests/fixtures/onnx/unet_attn_expected.safetensors')).samples_heun4.data;
  const d = samples.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i])), 0);
  console.log(`unet_attn vs PyTorch: max |Δ| ${d.toExponential(2)}`);
  assert.ok(d <= 1e-3, `${d}`);
});

test(`${BROWSER}: abort and dispose settle a running call at once`, async () => {
  await demo();
  const r = await b.page.evaluate(async () => {
    const { Sampler } = window.pushforward;
    const msg = (p) => p.then(() => 'resolved', (e) => String(e.message || e));
    const s = await Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu', workers: 2 });
    const ac = new AbortController();
    const aborted = msg(s.sample({ n: 200_000, steps: 200, signal: ac.signal }));
    setTimeout(() => ac.abort(), 50);
    const a = await aborted;
    const running = msg(s.sample({ n: 200_000, steps: 200 }));
    await new Promise((res) => setTimeout(res, 50));
    const t0 = performance.now();
    s.dispose();
    const d = await running;
    return { a, d, ms: performance.now() - t0, after: await msg(s.sample({ n: 10 })) };
  });
  console.log(r);
  assert.match(r.a, /cancelled/);
  assert.match(r.d, /disposed/);
  assert.ok(r.ms < 1000, `dispose took ${r.ms} ms to settle the call`);
  assert.match(r.after, /disposed/);
});
