// Backend choice: with WebGPU unavailable the CPU kernels run and the page says why; on
// SwiftShader (a software WebGPU adapter) `auto` also picks the CPU, naming the adapter.
// `auto` starts a 2-D model on the CPU and asks for the adapter after the first sample, and
// moves to a hardware adapter that answers later at the next sample (SwiftShader stands in for
// one through the test hooks `testAdapterDelayMs` and `testFallbackAsHardware`); image models
// wait for the answer. Model loading reports progress.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './harness.mjs';

async function createAndSample(b) {
  await b.page.goto(`${b.url}/`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
  return b.page.evaluate(async () => {
    const events = [];
    const s = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', onProgress: (e) => events.push(e) });
    const r = await s.sample({ n: 256, steps: 2 });
    // A 2-D model may start on the CPU before the adapter answers (`auto`'s CPU-first start);
    // the reason then says so until the answer comes.
    const t0 = performance.now();
    while (/until WebGPU's adapter answers/.test(s.info().backendReason) && performance.now() - t0 < 10_000) {
      await new Promise((res) => setTimeout(res, 50));
    }
    const info = s.info();
    const hasGpu = !!navigator.gpu;
    // What the page itself gets from WebGPU: the test's precondition (no adapter, or a software
    // one) and the name the sampler should report.
    const adapter = hasGpu ? await navigator.gpu.requestAdapter() : null;
    const ai = adapter?.info ?? {};
    const adapterName = adapter ? (ai.description || ai.device || ai.vendor || 'unnamed') : null;
    s.dispose();
    return { info, r, events, hasGpu, adapterName, readout: document.getElementById('r-reason').textContent };
  });
}

test('without WebGPU the CPU fallback runs and says so', async () => {
  const b = await launch({ webgpu: false });
  try {
    const { info, r, readout, hasGpu, adapterName } = await createAndSample(b);
    console.log(`no-WebGPU launch: navigator.gpu=${hasGpu}, adapter ${adapterName}; backend ${info.backend}: ${info.backendReason}`);
    // The launch really is without WebGPU (else this test would test nothing).
    assert.equal(adapterName, null, 'the page has a WebGPU adapter');
    assert.equal(info.backend, 'cpu');
    assert.equal(r.backend, 'cpu');
    assert.equal(r.nfe, 4);
    // The reason names the case: no navigator.gpu at all, or no adapter behind it.
    assert.match(info.backendReason, hasGpu ? /WebGPU found no adapter/ : /WebGPU is not available/);
    assert.match(readout, /CPU kernels/);
    assert.deepEqual(b.consoleErrors, []);
  } finally { await b.close(); }
});

test('on a software WebGPU adapter auto picks the CPU and names the adapter; loading reports progress', async () => {
  const b = await launch({ webgpu: true });
  try {
    const { info, events, adapterName } = await createAndSample(b);
    console.log(`SwiftShader launch: adapter ${adapterName}; backend ${info.backend}: ${info.backendReason}`);
    assert.ok(adapterName, 'the page has no WebGPU adapter: this launch cannot test the software-adapter case');
    assert.equal(info.backend, 'cpu');
    // `auto` saw the adapter, found it a software fallback, and names it.
    assert.ok(info.backendReason.includes(`the WebGPU adapter (${adapterName}) is a software fallback`), info.backendReason);
    const last = events.at(-1);
    assert.ok(events.length >= 1 && last.phase === 'download');
    assert.ok(last.loaded > 1000 && (last.total === null || last.total === last.loaded), JSON.stringify(last));
  } finally { await b.close(); }
});

/** Max |a − b| over two arrays. */
const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

test('auto starts a 2-D model on the CPU, asks for the adapter after the first sample, then moves to a hardware adapter on a fresh canvas in the same place', async () => {
  const b = await launch({ webgpu: true });
  try {
    await b.page.goto(`${b.url}/?backend=cpu`);
    await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
    const r = await b.page.evaluate(async () => {
      const holder = document.createElement('div');
      const canvas = document.createElement('canvas');
      canvas.width = 160; canvas.height = 160; canvas.id = 'mine';
      holder.append(canvas);
      document.body.append(holder);
      const t0 = performance.now();
      const s = await window.pushforward.Sampler.create({
        model: 'models/moons.safetensors', canvas, testAdapterDelayMs: 3000, testFallbackAsHardware: true,
      });
      const createdMs = performance.now() - t0;
      const before = { backend: s.info().backend, reason: s.info().backendReason };
      const opts = { n: 512, steps: 4, seed: 3, returnSamples: true };
      const r1 = await s.sample(opts);
      const sameCanvasAfterFirst = s.canvas === canvas;
      // The answer comes 3 s after the adapter's. Two calls at once then do not move (neither
      // runs alone), and the answer must still be there for the next call.
      await new Promise((res) => setTimeout(res, 4500));
      const pair = await Promise.all([s.sample({ n: 64, steps: 1 }), s.sample({ n: 64, steps: 1 })]);
      await new Promise((res) => setTimeout(res, 200));
      const r2 = await s.sample(opts);
      const fresh = s.canvas;
      s.drawAt(0.5);
      const after = { backend: s.info().backend, reason: s.info().backendReason };
      const placed = { inHolder: fresh.parentNode === holder, oldDetached: canvas.parentNode === null, id: fresh.id, w: fresh.width };
      s.dispose();
      return { pair: pair.map((r) => r.backend), createdMs, before, after, r1: { backend: r1.backend, samples: Array.from(r1.samples) }, r2: { backend: r2.backend, samples: Array.from(r2.samples) }, sameCanvasAfterFirst, replaced: fresh !== canvas, placed };
    });
    console.log(`create ${r.createdMs.toFixed(0)} ms on ${r.before.backend} (${r.before.reason}); two calls at once on ${r.pair}; later ${r.after.backend}: ${r.after.reason}`);
    assert.equal(r.before.backend, 'cpu');
    assert.match(r.before.reason, /until WebGPU's adapter answers/);
    assert.ok(r.createdMs < 3000, `create waited for the delayed adapter (${r.createdMs} ms)`);
    assert.equal(r.r1.backend, 'cpu');
    assert.ok(r.sameCanvasAfterFirst);
    assert.equal(r.r2.backend, 'webgpu');
    assert.equal(r.after.backend, 'webgpu');
    assert.match(r.after.reason, /hardware WebGPU adapter .*answered after Sampler.create/);
    // The same request gives the same samples on both engines (float rounding apart).
    const d = maxDiff(r.r1.samples, r.r2.samples);
    assert.ok(r.r1.samples.length === 1024 && d <= 1e-3, `max abs difference ${d}`);
    // WebGPU needs a canvas without a 2-D context: a fresh one took the old one's place.
    assert.ok(r.replaced);
    assert.deepEqual(r.placed, { inHolder: true, oldDetached: true, id: 'mine', w: 160 });
    assert.deepEqual(b.consoleErrors, []);
  } finally { await b.close(); }
});

test('auto keeps a 2-D model on the CPU when a software adapter answers late, and says why; an image model waits for the answer', async () => {
  const b = await launch({ webgpu: true });
  try {
    await b.page.goto(`${b.url}/?backend=cpu`);
    await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
    const r = await b.page.evaluate(async () => {
      const { Sampler } = window.pushforward;
      const canvas = document.createElement('canvas');
      const s = await Sampler.create({ model: 'models/moons.safetensors', canvas, testAdapterDelayMs: 1500 });
      const before = s.info().backendReason;
      await s.sample({ n: 256, steps: 2 });
      await new Promise((res) => setTimeout(res, 2500));
      const later = s.info().backendReason;
      const r2 = await s.sample({ n: 256, steps: 2 });
      const stayed = { backend: r2.backend, sameCanvas: s.canvas === canvas };
      s.dispose();
      // Disposed while the answer is out: nothing breaks when it comes.
      const d = await Sampler.create({ model: 'models/moons.safetensors', testAdapterDelayMs: 1000, testFallbackAsHardware: true });
      d.dispose();
      await new Promise((res) => setTimeout(res, 1500));
      // An image model waits for the (hardware, here) answer.
      const t0 = performance.now();
      const m = await Sampler.create({ model: 'models/mnist.safetensors', testAdapterDelayMs: 800, testFallbackAsHardware: true });
      const mnist = { ms: performance.now() - t0, backend: m.info().backend };
      m.dispose();
      return { before, later, stayed, mnist };
    });
    console.log(`late software adapter: ${r.later}; mnist create ${r.mnist.ms.toFixed(0)} ms on ${r.mnist.backend}`);
    assert.match(r.before, /until WebGPU's adapter answers/);
    assert.match(r.later, /is a software fallback, far slower than wasm SIMD; using the wasm CPU kernels; \d+ workers?/);
    assert.deepEqual(r.stayed, { backend: 'cpu', sameCanvas: true });
    assert.equal(r.mnist.backend, 'webgpu');
    assert.ok(r.mnist.ms >= 800, `the image model did not wait for the adapter (${r.mnist.ms} ms)`);
    assert.deepEqual(b.consoleErrors, []);
  } finally { await b.close(); }
});
