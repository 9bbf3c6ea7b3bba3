// The two wasm builds (scripts/build-web.sh): `simd128` and `relaxed` (relaxed-SIMD multiply-
// adds, f32x4.relaxed_madd: one FMA where the CPU has one). The bindings pick `relaxed` where
// the browser validates a relaxed-SIMD module; `?wasm=` (PUSHFORWARD_WASM_BUILD) forces either.
// Both builds sample the same pictures within the stated bound (an FMA skips the product's
// rounding, ≤ 2^-24 relative per multiply-add, so samples move by ~1e-5 after a whole solve:
// the bound is 1e-4), and the CPU workers run the page's build (their rows equal the page
// thread's bit for bit).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './harness.mjs';

let b;
before(async () => { b = await launch({ webgpu: false }); });
after(async () => { await b?.close(); });

async function run(build) {
  await b.page.goto(`${b.url}/?backend=cpu${build ? `&wasm=${build}` : ''}`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
  return b.page.evaluate(async () => {
    const { Sampler } = window.pushforward;
    const out = {};
    for (const [model, opts] of [
      ['moons', { n: 4096, solver: 'heun', steps: 8, seed: 5 }],
      ['mnist', { n: 4, solver: 'heun', steps: 4, seed: 5, label: 'all', guidance: 2 }],
    ]) {
      for (const workers of [0, 2]) {
        const s = await Sampler.create({ model: `models/${model}.safetensors`, backend: 'cpu', workers });
        const r = await s.sample({ ...opts, returnSamples: true });
        out[`${model}/${workers}`] = { samples: Array.from(r.samples), build: s.info().wasmBuild };
        s.dispose();
      }
    }
    // The page's own check of what the bindings test for.
    const probe = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 123, 123, 123, 1, 123, 3, 2, 1, 0,
      10, 13, 1, 11, 0, 32, 0, 32, 1, 32, 2, 253, 133, 2, 11]);
    out.relaxedSupported = WebAssembly.validate(probe);
    return out;
  });
}

const maxDiff = (a, c) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - c[i])), 0);

test('both wasm builds load when forced, agree within 1e-4, and the workers run the page\'s build', async () => {
  const auto = await run('');
  const simd = await run('simd128');
  const relaxed = await run('relaxed');
  console.log(`browser validates relaxed SIMD: ${auto.relaxedSupported}; default build: ${auto['moons/0'].build}`);
  assert.equal(auto['moons/0'].build, auto.relaxedSupported ? 'relaxed' : 'simd128');
  for (const key of ['moons/0', 'moons/2', 'mnist/0', 'mnist/2']) {
    assert.equal(simd[key].build, 'simd128', key);
    assert.equal(relaxed[key].build, 'relaxed', key);
  }
  for (const model of ['moons', 'mnist']) {
    // The workers' rows are the page thread's, on each build.
    assert.equal(maxDiff(simd[`${model}/2`].samples, simd[`${model}/0`].samples), 0, `${model}: simd128 workers`);
    assert.equal(maxDiff(relaxed[`${model}/2`].samples, relaxed[`${model}/0`].samples), 0, `${model}: relaxed workers`);
    const d = maxDiff(relaxed[`${model}/0`].samples, simd[`${model}/0`].samples);
    console.log(`${model}: relaxed vs simd128 build, max |Δ| over the samples = ${d.toExponential(2)}`);
    assert.ok(d <= 1e-4, `${model}: the builds differ by ${d}`);
  }
});
