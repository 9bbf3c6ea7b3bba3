// The CPU kernels' wasm-only code — the simd128 4×8 micro-kernel that reads A in place, its SIMD
// epilogue for full and ragged tiles, the SIMD SiLU — against the kernels' own f64 oracles, in
// the browser's engine, in both builds (simd128; relaxed-SIMD, whose multiply-adds are fused).
// Natively those paths are not compiled, so `cargo test` cannot reach them. The kernels are built
// alone (tests/wasm_kernels/) and run here on pseudo-random shapes: rows and columns that do and
// do not fill the register tile, depths past one block, strided and padded convolutions. The
// seed is logged; WASM_KERNEL_SEED repeats a run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { launch, root, BROWSER } from './harness.mjs';

// f32 products against f64 sums: ~1e-6 of the output's scale is the rounding; 1e-5 leaves room
// for a different summation order, and catches any wrong or missing term (≥ 1e-3 here).
const PRODUCT_BOUND = 1e-5;
// exp_neg's docs and its native test: SiLU within 3 ulp.
const SILU_ULPS = 3;
const BUILDS = { simd128: '+simd128', relaxed: '+simd128,+relaxed-simd' };

function build(name) {
  const targetDir = path.join(root, 'target', 'wasm-kernel-checks', name);
  execFileSync('cargo', ['build', '--release', '--target', 'wasm32-unknown-unknown',
    '--manifest-path', path.join(root, 'tests/wasm_kernels/Cargo.toml')], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, CARGO_TARGET_DIR: targetDir, RUSTFLAGS: `-C target-feature=${BUILDS[name]}` },
  });
  return fs.readFileSync(path.join(targetDir, 'wasm32-unknown-unknown/release/pushforward_wasm_kernel_checks.wasm'));
}

let b;
before(async () => { b = await launch({ webgpu: false }); await b.page.goto(`${b.url}/`); });
after(async () => { await b?.close(); });

const seed = Number(process.env.WASM_KERNEL_SEED ?? Math.floor(Math.random() * 2 ** 31));

for (const name of Object.keys(BUILDS)) {
  test(`${BROWSER}: the ${name} build's GEMM, convolution and SiLU match the f64 oracles (seed ${seed})`, async () => {
    const bytes = build(name).toString('base64');
    const r = await b.page.evaluate(async ({ bytes, seed }) => {
      const wasm = Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0));
      if (!WebAssembly.validate(wasm)) return { invalid: true };
      const { instance } = await WebAssembly.instantiate(wasm, {});
      const e = instance.exports;
      return {
        products: e.check_products(300, BigInt(seed)),
        convolutions: e.check_convolutions(150, BigInt(seed + 1)),
        siluUlps: e.silu_worst_ulps((1 << 20) + 3),
      };
    }, { bytes, seed });
    // Chromium and Firefox both have relaxed SIMD; a browser without it would get the simd128
    // build (scripts/choose-wasm-build.mjs), but these two must run both.
    assert.ok(!r.invalid, `${BROWSER} did not validate the ${name} module`);
    console.log(`${name}: products ${r.products.toExponential(2)}, convolutions ${r.convolutions.toExponential(2)} (bound ${PRODUCT_BOUND}); SiLU ${r.siluUlps} ulp (bound ${SILU_ULPS})`);
    assert.ok(r.products <= PRODUCT_BOUND, `products off by ${r.products}`);
    assert.ok(r.convolutions <= PRODUCT_BOUND, `convolutions off by ${r.convolutions}`);
    assert.ok(r.siluUlps <= SILU_ULPS, `SiLU ${r.siluUlps} ulp off`);
  });
}
