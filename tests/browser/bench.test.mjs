// The benchmark page's own machinery, without the peers (npm test never installs them): the
// JS port of our Philox noise (www/bench/philox.js) against Random123's known answers and
// against the wasm sampler (a 1-step Heun solve from the same seed by the plain-JS MLP must
// agree to ~1e-6, which only identical x0 gives), and the static server's isolation headers
// and node_modules allow-list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './harness.mjs';
import { startServer } from '../../scripts/serve.mjs';
import { philox4x32_10 } from '../../www/bench/philox.js';

test('philox.js matches the Random123 known answers', () => {
  const hex = (a) => a.map((v) => v.toString(16).padStart(8, '0'));
  assert.deepEqual(hex(philox4x32_10(0, 0, 0, 0, 0, 0)), ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
  const f = 0xffffffff;
  assert.deepEqual(hex(philox4x32_10(f, f, f, f, f, f)), ['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
  assert.deepEqual(hex(philox4x32_10(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0)), ['d16cfe09', '94fdcceb', '5001e420', '24126ea1']);
});

test('serve.mjs: COOP/COEP when isolated; node_modules only for the bench peers', async () => {
  const server = await startServer(0, { isolated: true });
  try {
    const url = `http://127.0.0.1:${server.address().port}`;
    const page = await fetch(`${url}/bench.html`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('cross-origin-opener-policy'), 'same-origin');
    assert.equal(page.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.equal((await fetch(`${url}/node_modules/playwright-core/package.json`)).status, 403);
    assert.equal((await fetch(`${url}/node_modules/onnxruntime-web/../playwright-core/package.json`)).status, 403);
  } finally {
    server.close();
  }
});

test('bench page: the plain-JS peer integrates from our exact x0 (1-step agreement ≤ 1e-5)', async () => {
  const b = await launch({ webgpu: false, isolated: true });
  try {
    await b.page.goto(`${b.url}/bench.html?peer=plain`);
    await b.page.waitForSelector('body[data-ready="1"]', { timeout: 60_000 });
    const r = await b.page.evaluate(() => window.bench.check({ model: 'moons', n: 64, steps: 2 }));
    console.log(`bench page check (plain JS vs ours, moons n=64): 1-step rel ${r.oneStep.rel.toExponential(2)}, 2-step rel ${r.solve.rel.toExponential(2)}`);
    assert.ok(r.oneStep.rel <= 1e-5 && r.pass, JSON.stringify(r));
    assert.ok(await b.page.evaluate(() => window.bench.crossOriginIsolated));
    assert.deepEqual(b.consoleErrors, []);
  } finally {
    await b.close();
  }
});
