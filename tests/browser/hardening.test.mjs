// Hardening through the JS API, in Chromium: bad sampling parameters are clear errors; a lost
// WebGPU device rejects the call in flight and the sampler recovers; batches over the binding
// limit are split and give the same samples; an AbortSignal stops a long Dopri5 solve on the
// GPU within a step; 1000 calls leave GPU buffers and the heap flat.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, watchDevices } from './harness.mjs';

let b;
before(async () => {
  b = await launch({ webgpu: true });
  await watchDevices(b.page);
  await b.page.goto(`${b.url}/?backend=cpu`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
});
after(async () => { await b?.close(); });

test('bad sampling parameters are clear errors, and the sampler keeps working', async () => {
  const cases = [
    ['moons', { steps: 0 }, /steps.*whole number in 1\.\.=/],
    ['moons', { steps: 1e7 }, /steps.*whole number in 1\.\.=/],
    ['moons', { n: 0 }, /`n`.*whole number in 1\.\.=/],
        ['moons', { n: 2.5 }, /`n`.*2\.5 must be a whole number/],
    ['moons', { n: 'many' }, /`n`.*"many" must be a whole number/],
    ['moons', { solver: 'rk45' }, /solver/],
    ['moons', { solver: 'dopri5', rtol: 0 }, /rtol|tolerance/],
    ['moons', { solver: 'dopri5', atol: -1 }, /atol|tolerance/],
    ['moons', { seed: -1 }, /seed/],
    ['moons', { label: 3 }, /unconditional/],
    ['moons', { trajectories: 0 }, /trajectories/],
    ['moons', { bogus: 1 }, /unknown sample option `bogus`/],
    ['moons', { n: 1e12 }, /`n`.*whole number in 1\.\.=/],
    ['mnist', { n: 2, guidance: NaN }, /guidance/],
    ['mnist', { n: 2, guidance: -1 }, /guidance/],
    ['mnist', { n: 2, label: 11 }, /label.*11 must be a class number in 0\.\.10/],
    ['mnist', { n: 2, label: 'seven' }, /label/],
  ];
  const out = await b.page.evaluate(async (cases) => {
    const res = [];
    const samplers = {};
    for (const backend of ['cpu', 'webgpu']) {
      for (const [model, opts] of cases) {
        const key = `${backend}/${model}`;
        samplers[key] ??= await window.pushforward.Sampler.create({ model: `models/${model}.safetensors`, backend, workers: 0 });
        try { await samplers[key].sample(opts); res.push({ backend, ok: true }); } catch (e) { res.push({ backend, message: String(e.message || e) }); }
      }
    }
    const after = await samplers['webgpu/moons'].sample({ n: 64, steps: 2, returnSamples: true });
    return { res, afterOk: after.samples.length === 128 && after.samples.every(Number.isFinite) };
  }, cases);
  out.res.forEach((r, i) => {
    const [model, opts, re] = cases[i % cases.length];
    if (i < cases.length) console.log(`${model} ${JSON.stringify(opts)} → ${r.message}`);
    assert.ok(!r.ok, `${r.backend} ${model} ${JSON.stringify(opts)} was accepted`);
    assert.match(r.message, re, `${r.backend} ${model} ${JSON.stringify(opts)}`);
  });
  assert.ok(out.afterOk);
});

test('batches over the storage-binding limit are split on WebGPU and give the same samples', async () => {
  const r = await b.page.evaluate(async () => {
    const opts = { n: 3000, solver: 'heun', steps: 2, seed: 6, returnSamples: true };
    const whole = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', backend: 'webgpu' });
    const split = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', backend: 'webgpu', maxBindingBytes: 65536 });
    // Progress restarts at step 0 for each chunk (src/sampler.rs), so its step-0 events count
    // the chunks a solve was split into.
    const chunks = async (s) => {
      let starts = 0;
      const out = await s.sample({ ...opts, onProgress: (p) => { if (p.step === 0) starts++; } });
      return { out, starts };
    };
    const a = await chunks(whole);
    const c = await chunks(split);
    let d = 0;
    for (let i = 0; i < a.out.samples.length; i++) d = Math.max(d, Math.abs(a.out.samples[i] - c.out.samples[i]));
    whole.dispose(); split.dispose();
    return { d, n: c.out.samples.length, wholeChunks: a.starts, splitChunks: c.starts, nfe: [a.out.nfe, c.out.nfe] };
  });
  console.log(`3000 points, bindings capped at 64 KiB: ${r.splitChunks} chunks (uncapped: ${r.wholeChunks}), NFE ${r.nfe[1]} vs ${r.nfe[0]}; max |split − whole| = ${r.d}`);
  assert.equal(r.wholeChunks, 1, 'the uncapped sampler split the batch');
  assert.ok(r.splitChunks >= 2, `the capped sampler did not split the batch (${r.splitChunks} chunk)`);
  assert.equal(r.n, 6000);
  assert.ok(r.d <= 1e-6, `split samples differ by ${r.d}`);
});

test('aborting a long Dopri5 solve on WebGPU stops within a step and leaves the sampler usable', async () => {
  const r = await b.page.evaluate(async () => {
    const s = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', backend: 'webgpu' });
    const ctrl = new AbortController();
    let abortedAt = null;
    let lastStep = 0;
    let message = null;
    try {
      await s.sample({ n: 256, solver: 'dopri5', rtol: 1e-7, atol: 1e-7, seed: 1, signal: ctrl.signal,
        onProgress: (p) => { lastStep = p.step; if (p.step >= 2 && abortedAt === null) { abortedAt = p.step; ctrl.abort(); } } });
    } catch (e) { message = String(e.message || e); }
    const after = await s.sample({ n: 128, solver: 'heun', steps: 2, seed: 2, returnSamples: true });
    return { message, abortedAt, lastStep, afterOk: after.samples.every(Number.isFinite) };
  });
  console.log(`GPU dopri5 abort at step ${r.abortedAt}, last step reported ${r.lastStep}: ${r.message}`);
  assert.match(r.message ?? '', /cancel/i);
  assert.ok(r.lastStep - r.abortedAt <= 1, 'stopped within one step');
  assert.ok(r.afterOk);
});

test('a lost WebGPU device rejects the call in flight; the next call reopens a device and works', async () => {
  const r = await b.page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 200; canvas.height = 200;
    const s = await window.pushforward.Sampler.create({ canvas, model: 'models/moons.safetensors', backend: 'webgpu' });
    const before = await s.sample({ n: 512, steps: 2, seed: 1, returnSamples: true });
    const opened = window.pushforward.Sampler.webgpuDevicesOpened();
    let message = null;
    try {
      await s.sample({ n: 2048, solver: 'heun', steps: 8, seed: 1,
        onProgress: (p) => { if (p.step === 1) for (const d of window.__gpuDevices) d.destroy(); } });
    } catch (e) { message = String(e.message || e); }
    const again = await s.sample({ n: 512, steps: 2, seed: 1, returnSamples: true });
    let d = 0;
    for (let i = 0; i < again.samples.length; i++) d = Math.max(d, Math.abs(again.samples[i] - before.samples[i]));
    const info = s.info();
    return { message, d, reason: info.backendReason, backend: info.backend, opened, openedAfter: window.pushforward.Sampler.webgpuDevicesOpened(), unhandled: window.__unhandled };
  });
  console.log(`device destroyed mid-sample → "${r.message}"; then ${r.backend}: ${r.reason}; devices opened ${r.opened} → ${r.openedAfter}`);
  assert.match(r.message ?? '', /lost/i);
  assert.equal(r.backend, 'webgpu');
  assert.match(r.reason, /lost and has been reopened/);
  assert.equal(r.openedAfter, r.opened + 1);
  assert.equal(r.d, 0, 'the reopened device samples what the first one did');
  assert.deepEqual(r.unhandled, []);
});

// The settings (and seeds) cycle every 420 calls (lcm of the 7 sizes, 5 solvers, 3 step counts,
// 4 and 10): after one cycle the buffer pool holds what the cycle needs, and repeating the same
// work allocates nothing more.
test('1000 calls with varying settings: GPU buffers, wasm memory and the JS heap stay flat', async () => {
  const cdp = await b.page.context().newCDPSession(b.page);
  const heap = async () => { await cdp.send('HeapProfiler.collectGarbage'); return (await cdp.send('Runtime.getHeapUsage')).usedSize; };
  await b.page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 160; canvas.height = 160;
    window.__long = await window.pushforward.Sampler.create({ canvas, model: 'models/moons.safetensors', backend: 'webgpu' });
    window.__calls = async (from, count) => {
      const solvers = ['euler', 'midpoint', 'heun', 'rk4', 'dopri5'];
      const ms = [];
      for (let i = from; i < from + count; i++) {
        const t0 = performance.now();
        await window.__long.sample({ n: 32 + (i % 7) * 16, solver: solvers[i % 5], steps: 1 + (i % 3), rtol: 1e-2, atol: 1e-2, seed: i % 420, trajectories: i % 4 === 0, returnSamples: i % 3 === 0 });
        if (i % 10 === 0) window.__long.drawAt((i % 7) / 7);
        ms.push(performance.now() - t0);
      }
      ms.sort((a, c) => a - c);
      return { median: ms[ms.length >> 1], stats: window.__long.stats() };
    };
  });
  const warm = await b.page.evaluate(() => window.__calls(0, 420));
  const heap0 = await heap();
  const cycle = await b.page.evaluate(() => window.__calls(420, 420));
  const heap1 = await heap();
  const rest = await b.page.evaluate(() => window.__calls(840, 160));
  const heap2 = await heap();
  console.log(`calls 1–420: median ${warm.median.toFixed(1)} ms, ${JSON.stringify(warm.stats)}, heap ${(heap0 / 1e6).toFixed(2)} MB`);
  console.log(`calls 421–840: median ${cycle.median.toFixed(1)} ms, ${JSON.stringify(cycle.stats)}, heap ${(heap1 / 1e6).toFixed(2)} MB`);
  console.log(`calls 841–1000: median ${rest.median.toFixed(1)} ms, ${JSON.stringify(rest.stats)}, heap ${(heap2 / 1e6).toFixed(2)} MB`);
  // The pool converges (its idle lists are capped per size class and in bytes): some growth in
  // the second cycle as the lists fill, none after; a leak would grow with every call.
  assert.ok(cycle.stats.gpuBuffersLive <= 2 * warm.stats.gpuBuffersLive, 'live GPU buffers grew over a repeated cycle');
  assert.equal(rest.stats.gpuBuffersLive, cycle.stats.gpuBuffersLive, 'live GPU buffers grew over the last 160 calls');
  assert.equal(rest.stats.wasmMemoryBytes, warm.stats.wasmMemoryBytes, 'wasm memory grew after warm-up');
  assert.ok(heap1 - heap0 < 2e6 && heap2 - heap0 < 2e6, `JS heap grew by ${((heap2 - heap0) / 1e6).toFixed(2)} MB`);
  assert.deepEqual(await b.page.evaluate(() => window.__unhandled), []);
});
