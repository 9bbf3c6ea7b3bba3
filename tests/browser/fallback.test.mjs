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
