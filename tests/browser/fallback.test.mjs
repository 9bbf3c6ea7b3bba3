// Backend choice: with WebGPU unavailable the CPU kernels run and the page says why; on
// SwiftShader (a software WebGPU adapter) `auto` also picks the CPU, naming the adapter.
// Model loading reports progress.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './harness.mjs';

async function createAndSample(b) {
  await b.page.goto(`${b.url}/`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
  return b.page.evaluate(async () => {
    const events = [];
    const s = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', onProgress: (e) => events.push(e) });
    const info = s.info();
    const r = await s.sample({ n: 256, steps: 2 });
    const hasGpu = !!navigator.gpu;
    s.dispose();
    return { info, r, events, hasGpu, readout: document.getElementById('r-reason').textContent };
  });
}

test('without WebGPU the CPU fallback runs and says so', async () => {
  const b = await launch({ webgpu: false });
  try {
    const { info, r, readout, hasGpu } = await createAndSample(b);
    console.log(`no-WebGPU launch: navigator.gpu=${hasGpu}; backend ${info.backend}: ${info.backendReason}`);
    assert.equal(info.backend, 'cpu');
    assert.equal(r.backend, 'cpu');
    assert.equal(r.nfe, 4);
    if (!hasGpu) assert.match(info.backendReason, /WebGPU is not available/);
    else assert.match(info.backendReason, /no adapter|software fallback/);
    assert.match(readout, /CPU kernels/);
    assert.deepEqual(b.consoleErrors, []);
  } finally { await b.close(); }
});

test('on a software WebGPU adapter auto picks the CPU and names the adapter; loading reports progress', async () => {
  const b = await launch({ webgpu: true });
  try {
    const { info, events } = await createAndSample(b);
    console.log(`SwiftShader launch: backend ${info.backend}: ${info.backendReason}`);
    assert.equal(info.backend, 'cpu');
    assert.match(info.backendReason, /software fallback|no adapter/);
    const last = events.at(-1);
    assert.ok(events.length >= 1 && last.phase === 'download');
    assert.ok(last.loaded > 1000 && (last.total === null || last.total === last.loaded), JSON.stringify(last));
  } finally { await b.close(); }
});
