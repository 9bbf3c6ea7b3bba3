// The browser bundle stays within its budget (issues #14 and #16: ≤ 300 KB gzip for each of the
// two wasm builds, with the ONNX executor): the module, the JS bindings and the snippets, each
// gzipped on its own at level 9 as a static host serves them. A size is deterministic, so this
// is a test (a speed target would be a benchmark). scripts/build-web.sh builds www/pkg first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bundleSizes } from '../../scripts/bundle-size.mjs';

const BUDGET = 300_000;

test('each wasm build with its JS is at most 300 KB gzipped', () => {
  const sizes = bundleSizes();
  assert.equal(sizes.length, 2);
  for (const { build, wasmBytes, gzipped } of sizes) {
    console.log(`${build}: ${wasmBytes} B raw; with the bindings and snippets ${gzipped} B gzipped (budget ${BUDGET} B)`);
    assert.ok(gzipped <= BUDGET, `${build}: ${gzipped} B gzipped, over the ${BUDGET} B budget`);
  }
});
