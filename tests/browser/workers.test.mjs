// The CPU backend's worker pool (src/cpu_workers.js): a request split over workers gives the
// samples of the single-thread solve, bit for bit; progress and cancellation work across
// workers; a cancelled pool recovers on the next call.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './harness.mjs';

let b;
before(async () => {
  b = await launch({ webgpu: false });
  await b.page.goto(`${b.url}/?backend=cpu`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
});
after(async () => { await b?.close(); });

async function compare(model, opts) {
  return b.page.evaluate(async ({ model, opts }) => {
    const run = async (workers) => {
      const s = await window.pushforward.Sampler.create({ model: `models/${model}.safetensors`, backend: 'cpu', workers });
      const steps = [];
      const r = await s.sample({ ...opts, returnSamples: true, onProgress: (p) => steps.push(p.step) });
      const reason = s.info().backendReason;
      s.dispose();
      return { samples: Array.from(r.samples), labels: Array.from(r.labels), nfe: r.nfe, ms: r.sampleMs, steps, reason };
    };
    return { one: await run(0), pool: await run(2) };
  }, { model, opts });
}

test('moons split over 2 workers equals the single-thread solve', async () => {
  const { one, pool } = await compare('moons', { n: 4096, solver: 'heun', steps: 8, seed: 3, trajectories: 4 });
  console.log(`moons 4096 heun 8: page thread ${one.ms.toFixed(0)} ms, 2 workers ${pool.ms.toFixed(0)} ms (${pool.reason})`);
  assert.match(pool.reason, /2 workers/);
  assert.equal(pool.nfe, one.nfe);
  assert.equal(pool.samples.length, one.samples.length);
  const diff = pool.samples.reduce((m, v, i) => Math.max(m, Math.abs(v - one.samples[i])), 0);
  assert.equal(diff, 0, `samples differ by ${diff}`);
  assert.ok(pool.steps.length >= 8 && pool.steps.at(-1) === 8, `progress ${pool.steps}`);
});

test('guided mnist split over workers equals the single-thread solve (labels by sample index)', async () => {
  const { one, pool } = await compare('mnist', { n: 5, solver: 'euler', steps: 2, seed: 4, label: 'all', guidance: 2 });
  assert.deepEqual(pool.labels, [0, 1, 2, 3, 4]);
  assert.deepEqual(pool.labels, one.labels);
  const diff = pool.samples.reduce((m, v, i) => Math.max(m, Math.abs(v - one.samples[i])), 0);
  assert.equal(diff, 0, `samples differ by ${diff}`);
});

test('aborting a long Dopri5 solve in the workers rejects promptly, and the next call works', async () => {
  const r = await b.page.evaluate(async () => {
    const s = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu', workers: 2 });
    const ctrl = new AbortController();
    let firstStep = null;
    const t0 = performance.now();
    let message = null;
    try {
      await s.sample({ n: 16384, solver: 'dopri5', rtol: 1e-7, atol: 1e-7, seed: 1, signal: ctrl.signal,
        onProgress: (p) => { if (p.step >= 1 && firstStep === null) { firstStep = performance.now() - t0; ctrl.abort(); } } });
    } catch (e) { message = String(e.message || e); }
    const cancelMs = performance.now() - t0;
    const after = await s.sample({ n: 512, solver: 'heun', steps: 4, seed: 2, returnSamples: true });
    s.dispose();
    return { message, firstStep, cancelMs, afterN: after.samples.length };
  });
  console.log(`abort: first step at ${r.firstStep?.toFixed(0)} ms, rejected at ${r.cancelMs.toFixed(0)} ms: ${r.message}`);
  assert.match(r.message ?? '', /cancel/);
  assert.ok(r.cancelMs - r.firstStep < 1000, 'rejects soon after abort()');
  assert.equal(r.afterN, 1024);
});
