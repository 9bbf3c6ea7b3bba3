// The one-tag embed on a realistic blog page: four samplers (three 2-D, one colour image model)
// initialise lazily as they scroll into view, share one wasm module, and all draw.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, screenshotPath } from './harness.mjs';

let b;
before(async () => { b = await launch({ webgpu: true }); });
after(async () => { await b?.close(); });

test('embed page runs four samplers, lazily, with no console errors', async () => {
  const { page } = b;
  await page.goto(`${b.url}/embed.html`);
  await page.evaluate(() => {
    window.__sampled = {};
    for (const el of document.querySelectorAll('pushforward-sampler')) {
      el.addEventListener('sampled', (e) => { window.__sampled[el.id] = e.detail; });
    }
  });
  await page.waitForFunction(() => window.__sampled.moons, null, { timeout: 60_000 });
  // The samplers below the fold have not started yet.
  const before = await page.evaluate(() => Object.keys(window.__sampled));
  assert.deepEqual(before, ['moons']);
  // Scroll to each sampler in turn, as a reader would.
  for (const id of ['checker', 'spirals', 'emoji']) {
    await page.evaluate((id) => document.getElementById(id).scrollIntoView(), id);
    await page.waitForFunction((id) => window.__sampled[id], id, { timeout: 60_000 }).catch(async (e) => {
      const status = await page.evaluate((id) => document.getElementById(id).shadowRoot.querySelector('.status').textContent, id);
      throw new Error(`${id} never sampled (status: "${status}"): ${e.message}`);
    });
  }
  const results = await page.evaluate(() => window.__sampled);
  for (const [id, r] of Object.entries(results)) {
    console.log(`${id}: ${r.n} samples, ${r.nfe} NFE, ${r.sampleMs.toFixed(0)} ms on ${r.backend}`);
    assert.ok(r.nfe > 0 && r.n > 0);
  }
  assert.equal(results.checker.nfe, 4);
  // The emoji embed: Adams–Bashforth 2 at 8 steps (8 NFE), 2 images per category.
  assert.equal(results.emoji.nfe, 8);
  assert.equal(results.emoji.n, 18);
  // The spirals embed asks for Dopri5: its step counts must be those of a real adaptive solve,
  // nfe = 1 + 1 (initial step selection) + 6 per attempted step (src/ode/adaptive.rs).
  const sp = results.spirals;
  assert.ok(sp.acceptedSteps > 0 && Number.isInteger(sp.rejectedSteps), JSON.stringify(sp));
  assert.equal(sp.nfe, 2 + 6 * (sp.acceptedSteps + sp.rejectedSteps), `Dopri5 counts ${JSON.stringify(sp)}`);
  const lit = await page.evaluate(() => [...document.querySelectorAll('pushforward-sampler')].map((el) => {
    const c = el.shadowRoot.querySelector('canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 40 || d[i + 1] > 40 || d[i + 2] > 60) n++;
    return n;
  }));
  assert.ok(lit.every((n) => n > 500), `blank canvas among ${lit}`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: screenshotPath('embed.png'), fullPage: true });
  assert.deepEqual(b.consoleErrors, []);
});
