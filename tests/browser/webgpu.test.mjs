// The WebGPU backend in the browser, on SwiftShader: samples equal the wasm CPU backend's for
// the same seed (within 1e-3), for a 2-D model and the guided mnist U-Net. Small sizes: the
// software adapter runs ~1 GFLOP/s.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './harness.mjs';

let b;
before(async () => {
  b = await launch({ webgpu: true });
  await b.page.goto(`${b.url}/`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
});
after(async () => { await b?.close(); });

async function both(model, opts) {
  return b.page.evaluate(async ({ model, opts }) => {
    const run = async (backend) => {
      const s = await window.pushforward.Sampler.create({ model: `models/${model}.safetensors`, backend });
      const info = s.info();
      const r = await s.sample({ ...opts, returnSamples: true });
      s.dispose();
      return { info, nfe: r.nfe, backend: r.backend, ms: r.sampleMs, samples: Array.from(r.samples) };
    };
    return { gpu: await run('webgpu'), cpu: await run('cpu') };
  }, { model, opts });
}

function maxAbs(a, b) {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

for (const solver of ['heun', 'dopri5']) {
  test(`moons on WebGPU (SwiftShader) equals the CPU backend, ${solver}`, async () => {
    const { gpu, cpu } = await both('moons', { n: 256, solver, steps: 4, seed: 5, rtol: 1e-3, atol: 1e-3 });
    console.log(`adapter: ${gpu.info.adapter} (${gpu.info.backendReason})`);
    assert.equal(gpu.backend, 'webgpu');
    assert.equal(cpu.backend, 'cpu');
    assert.equal(gpu.nfe, cpu.nfe);
    const d = maxAbs(gpu.samples, cpu.samples);
    console.log(`moons ${solver}: max |gpu − cpu| = ${d.toExponential(2)}; gpu ${gpu.ms.toFixed(0)} ms, cpu ${cpu.ms.toFixed(0)} ms`);
    assert.ok(d <= 1e-3, `max abs difference ${d}`);
  });
}

test('guided mnist U-Net on WebGPU equals the CPU backend', async () => {
  const { gpu, cpu } = await both('mnist', { n: 2, solver: 'euler', steps: 2, seed: 1, label: 'all', guidance: 2 });
  const d = maxAbs(gpu.samples, cpu.samples);
  console.log(`mnist: max |gpu − cpu| = ${d.toExponential(2)}; gpu ${gpu.ms.toFixed(0)} ms, cpu ${cpu.ms.toFixed(0)} ms`);
  assert.ok(d <= 1e-3, `max abs difference ${d}`);
  assert.deepEqual(b.consoleErrors, []);
});
