// The WebGPU backend in the browser, on SwiftShader: samples equal the wasm CPU backend's for
// the same seed (within 1e-3), for a 2-D model and the guided mnist U-Net, with each linear
// kernel variant forced in turn (the tuner must not hide a broken one). Small sizes: the
// software adapter runs ~1 GFLOP/s.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launch, readSafetensors, root } from './harness.mjs';

let b;
before(async () => {
  b = await launch({ webgpu: true });
  await b.page.goto(`${b.url}/`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
});
after(async () => { await b?.close(); });

const VARIANTS = ['registers4x4', 'tiled64', 'tiled128'];

async function both(model, opts, variant = 'tuned') {
  return b.page.evaluate(async ({ model, opts, variant }) => {
    const run = async (backend) => {
      const gpuOnly = backend === 'webgpu' ? { testLinearVariant: variant } : {};
      const s = await window.pushforward.Sampler.create({ model: `models/${model}.safetensors`, backend, ...gpuOnly });
      const info = s.info();
      const r = await s.sample({ ...opts, returnSamples: true });
      s.dispose();
      return { info, nfe: r.nfe, backend: r.backend, ms: r.sampleMs, samples: Array.from(r.samples) };
    };
    return { gpu: await run('webgpu'), cpu: await run('cpu') };
  }, { model, opts, variant });
}

function maxAbs(a, b) {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

for (const variant of VARIANTS) {
  for (const solver of ['heun', 'ab2', 'dopri5']) {
    test(`moons on WebGPU (SwiftShader, linear ${variant}) equals the CPU backend, ${solver}`, async () => {
      const { gpu, cpu } = await both('moons', { n: 256, solver, steps: 4, seed: 5, rtol: 1e-3, atol: 1e-3 }, variant);
      console.log(`adapter: ${gpu.info.adapter} (${gpu.info.backendReason})`);
      assert.equal(gpu.backend, 'webgpu');
      assert.equal(cpu.backend, 'cpu');
      assert.equal(gpu.nfe, cpu.nfe);
      const d = maxAbs(gpu.samples, cpu.samples);
      console.log(`moons ${variant} ${solver}: max |gpu − cpu| = ${d.toExponential(2)}; gpu ${gpu.ms.toFixed(0)} ms, cpu ${cpu.ms.toFixed(0)} ms`);
      assert.ok(d <= 1e-3, `max abs difference ${d}`);
    });
  }

  test(`guided mnist U-Net on WebGPU (linear ${variant}) equals the CPU backend`, async () => {
    const { gpu, cpu } = await both('mnist', { n: 2, solver: 'euler', steps: 2, seed: 1, label: 'all', guidance: 2 }, variant);
    const d = maxAbs(gpu.samples, cpu.samples);
    console.log(`mnist ${variant}: max |gpu − cpu| = ${d.toExponential(2)}; gpu ${gpu.ms.toFixed(0)} ms, cpu ${cpu.ms.toFixed(0)} ms`);
    assert.ok(d <= 1e-3, `max abs difference ${d}`);
    assert.deepEqual(b.consoleErrors, []);
  });
}

test('a one-step flow map (moons_meanflow) samples in 1 NFE by default, and 2 with steps: 2, equally on WebGPU and the CPU', async () => {
  for (const opts of [{}, { steps: 2 }]) {
    const { gpu, cpu } = await both('moons_meanflow', { n: 512, seed: 3, ...opts });
    const want = opts.steps || 1;
    assert.equal(gpu.nfe, want);
    assert.equal(cpu.nfe, want);
    assert.equal(gpu.info.config.arch.flow_map, true);
    const d = maxAbs(gpu.samples, cpu.samples);
    console.log(`moons_meanflow ${want} NFE: max |gpu − cpu| = ${d.toExponential(2)}`);
    assert.ok(d <= 1e-3, `max abs difference ${d}`);
    // Samples, not noise: the moons lie within |y| < 1.5 (noise: ~13% of N(0, 1) points outside).
    const ys = gpu.samples.filter((_, i) => i % 2 === 1);
    assert.ok(ys.filter((y) => Math.abs(y) > 1.5).length < 0.01 * ys.length);
  }
  assert.deepEqual(b.consoleErrors, []);
});

test('info() names the linear kernel: registers on SwiftShader by default, the forced variant otherwise', async () => {
  const kernels = await b.page.evaluate(async (variants) => {
    const { Sampler } = window.pushforward;
    const out = {};
    for (const v of ['tuned', ...variants]) {
      const s = await Sampler.create({ model: 'models/moons.safetensors', backend: 'webgpu', testLinearVariant: v });
      out[v] = s.info().linearKernel;
      s.dispose();
    }
    const cpu = await Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu', workers: 0 });
    out.cpu = cpu.info().linearKernel;
    cpu.dispose();
    return out;
  }, VARIANTS);
  assert.deepEqual(kernels, { tuned: 'registers4x4', registers4x4: 'registers4x4', tiled64: 'tiled64', tiled128: 'tiled128', cpu: null });
});

test('mnist draws a grid, and its samples are the reference digits (wasm CPU; WebGPU is compared to it above)', async () => {
  const ref = readSafetensors(path.join(root, 'tests/fixtures/mnist_reference.safetensors')).samples.data;
  const opts = { n: 10, solver: 'heun', steps: 5, seed: 3, label: 'all', guidance: 2 };
  const out = await b.page.evaluate(async (opts) => {
    const res = {};
    for (const backend of ['cpu']) {
      const canvas = document.createElement('canvas');
      canvas.width = 400; canvas.height = 100;
      const s = await window.pushforward.Sampler.create({ canvas, model: 'models/mnist.safetensors', backend });
      const r = await s.sample({ ...opts, returnSamples: true });
      const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let bright = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] > 128) bright++;
      s.dispose();
      res[backend] = { samples: Array.from(r.samples), labels: Array.from(r.labels), bright };
    }
    return res;
  }, opts);
  for (const [backend, r] of Object.entries(out)) {
    const d = maxAbs(r.samples, Array.from(ref));
    console.log(`mnist ${backend}: max |browser − PyTorch reference| = ${d.toExponential(2)}, ${r.bright} bright grid pixels`);
    assert.deepEqual(r.labels, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.ok(d <= 1e-3, `${backend}: ${d}`);
    assert.ok(r.bright > 500, 'the digit grid is drawn');
  }
});

test('every WebGPU sampler on a page shares one device, also when created at once', async () => {
  // A fresh page (the demo itself picks the CPU on SwiftShader, so no device is open yet).
  await b.page.reload();
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
  const r = await b.page.evaluate(async () => {
    const before = window.pushforward.Sampler.webgpuDevicesOpened();
    if (before !== 0) throw new Error(`a device was already open: ${before}`);
    const { Sampler } = window.pushforward;
    const make = (m) => Sampler.create({ model: `models/${m}.safetensors`, backend: 'webgpu' });
    const samplers = await Promise.all([make('moons'), make('spirals'), make('checkerboard')]);
    const nfe = [];
    for (const s of samplers) { nfe.push((await s.sample({ n: 64, steps: 2 })).nfe); s.dispose(); }
    const again = await make('8gaussians');
    const last = (await again.sample({ n: 64, steps: 1, solver: 'euler' })).nfe;
    again.dispose();
    return { opened: Sampler.webgpuDevicesOpened(), nfe, last };
  });
  console.log(`WebGPU devices opened by the page: ${r.opened}`);
  assert.equal(r.opened, 1);
  assert.deepEqual(r.nfe, [4, 4, 4]);
  assert.equal(r.last, 1);
});

// The WebGPU canvas is drawn from the GPU buffers (shaders/render.wgsl); the CPU backend
// rasterises the same picture on a 2-D canvas. Same seed → the same pixels, up to the few
// that float rounding moves (samples differ by ~1e-6 between the backends).
async function pictures(model, opts, { t, density, size = [300, 240] } = {}) {
  return b.page.evaluate(async ({ model, opts, t, density, size }) => {
    const read = (canvas) => {
      // Works for both context types: copy into a 2-D canvas and read that.
      const c2 = document.createElement('canvas');
      c2.width = canvas.width; c2.height = canvas.height;
      const ctx = c2.getContext('2d');
      ctx.drawImage(canvas, 0, 0);
      return Array.from(ctx.getImageData(0, 0, c2.width, c2.height).data);
    };
    const out = {};
    for (const backend of ['webgpu', 'cpu']) {
      const canvas = document.createElement('canvas');
      [canvas.width, canvas.height] = size;
      const s = await window.pushforward.Sampler.create({ canvas, model: `models/${model}.safetensors`, backend, workers: 0 });
      await s.sample(opts);
      const d = density ? await s.density(density) : null;
      const final = read(canvas);
      let mid = null;
      if (t !== undefined) { s.drawAt(t); mid = read(canvas); }
      out[backend] = { final, mid, backend: s.info().backend, logp: d && Array.from(d.logDensity), integral: d?.integral, ms: d?.ms };
      s.dispose();
    }
    return out;
  }, { model, opts, t, density, size });
}

function comparePixels(what, a, c) {
  let bad = 0, worst = 0, lit = 0;
  for (let i = 0; i < a.length; i += 4) {
    const d = Math.max(Math.abs(a[i] - c[i]), Math.abs(a[i + 1] - c[i + 1]), Math.abs(a[i + 2] - c[i + 2]));
    worst = Math.max(worst, d);
    if (d > 2) bad++;
    if (c[i] + c[i + 1] + c[i + 2] > 60) lit++;
  }
  const px = a.length / 4;
  console.log(`${what}: ${bad} of ${px} pixels differ by > 2 levels (worst ${worst}); ${lit} lit`);
  assert.ok(bad <= px * 0.005, `${what}: ${bad} pixels differ`);
  assert.ok(lit > 500, `${what}: the picture is blank`);
}

test('the WebGPU canvas shows the CPU picture: moons with trajectories, and drawAt(0.4)', async () => {
  const r = await pictures('moons', { n: 1500, solver: 'heun', steps: 3, seed: 2, trajectories: true }, { t: 0.4 });
  assert.equal(r.webgpu.backend, 'webgpu');
  comparePixels('moons final', r.webgpu.final, r.cpu.final);
  comparePixels('moons t=0.4', r.webgpu.mid, r.cpu.mid);
});

test('the WebGPU canvas shows the CPU picture: mnist grid', async () => {
  const r = await pictures('mnist', { n: 10, solver: 'euler', steps: 2, seed: 1, label: 'all', guidance: 2 });
  comparePixels('mnist grid', r.webgpu.final, r.cpu.final);
  assert.deepEqual(b.consoleErrors, []);
});

test('colour emoji U-Net on WebGPU equals the CPU backend (guided, one per category), and draws the same colour grid', async () => {
  const opts = { n: 9, solver: 'euler', steps: 2, seed: 1, label: 'all', guidance: 2 };
  const { gpu, cpu } = await both('emoji', opts);
  assert.equal(gpu.backend, 'webgpu');
  assert.equal(gpu.samples.length, 9 * 3 * 32 * 32);
  assert.equal(gpu.info.config.class_names.length, 9);
  const d = maxAbs(gpu.samples, cpu.samples);
  console.log(`emoji: max |gpu − cpu| = ${d.toExponential(2)}; gpu ${gpu.ms.toFixed(0)} ms, cpu ${cpu.ms.toFixed(0)} ms`);
  assert.ok(d <= 1e-3, `max abs difference ${d}`);
  const r = await pictures('emoji', opts);
  comparePixels('emoji grid', r.webgpu.final, r.cpu.final);
  let colour = 0;
  const c = r.cpu.final;
  for (let i = 0; i < c.length; i += 4) if (Math.max(c[i], c[i + 1], c[i + 2]) - Math.min(c[i], c[i + 1], c[i + 2]) > 60) colour++;
  assert.ok(colour > 200, `only ${colour} coloured pixels: the RGB grid is drawn grey`);
  assert.deepEqual(b.consoleErrors, []);
});

test('log-density on WebGPU equals the CPU backend, integrates to ≈ 1, and draws the same picture', async () => {
  const r = await pictures('checkerboard', { n: 800, steps: 4, seed: 1 }, { density: { resolution: 24, steps: 8 }, size: [200, 200] });
  const diff = r.webgpu.logp.reduce((m, v, i) => Math.max(m, Math.abs(v - r.cpu.logp[i])), 0);
  console.log(`checkerboard log p on 24×24: ∫p = ${r.cpu.integral.toFixed(3)} (cpu) / ${r.webgpu.integral.toFixed(3)} (webgpu); max |gpu − cpu| = ${diff.toExponential(2)}; ${r.webgpu.ms.toFixed(0)} / ${r.cpu.ms.toFixed(0)} ms`);
  assert.ok(diff < 1e-3, `log-densities differ by ${diff}`);
  assert.ok(Math.abs(r.cpu.integral - 1) < 0.15, `∫p = ${r.cpu.integral}`);
  comparePixels('checkerboard with its density layer', r.webgpu.final, r.cpu.final);
});
