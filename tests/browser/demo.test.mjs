// The demo page in real headless Chromium: loads clean, draws, samples the data distribution,
// reproduces by seed, and survives a corrupt model. Run by `npm test` after the wasm build.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launch, readSafetensors, slicedW2, screenshotPath, root } from './harness.mjs';

let b;
before(async () => {
  b = await launch({ webgpu: true });
  await b.page.goto(`${b.url}/`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
});
after(async () => { await b?.close(); });

test('demo loads with no console errors and draws a non-blank canvas', async () => {
  const lit = await b.page.evaluate(() => {
    const c = document.getElementById('canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 40 || d[i + 1] > 40 || d[i + 2] > 60) n++;
    return { n, total: d.length / 4 };
  });
  console.log(`canvas: ${lit.n} of ${lit.total} pixels lit`);
  assert.ok(lit.n > 500, `canvas looks blank (${lit.n} lit pixels)`);
  const info = await b.page.evaluate(() => window.pushforward.sampler.info());
  console.log(`backend: ${info.backend} (${info.backendReason})`);
  await b.page.screenshot({ path: screenshotPath('demo.png') });
  assert.deepEqual(b.consoleErrors, []);
});

async function sampleMoons(opts) {
  return b.page.evaluate(async (o) => {
    const s = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu' });
    const r = await s.sample({ ...o, returnSamples: true });
    s.dispose();
    return { ...r, samples: Array.from(r.samples) };
  }, opts);
}

test('the first frame is a preview of the request\'s first 1024 points, drawn before the whole request, whose first points they are', async () => {
  const r = await b.page.evaluate(async () => {
    const m = (n) => performance.getEntriesByName(n)[0]?.startTime;
    const s = window.pushforward.sampler;
    const o = { n: 4096, steps: 8, seed: 0, returnSamples: true };
    const whole = await s.sample(o);
    const first = await s.sample({ ...o, n: 1024 });
    let same = true;
    for (let i = 0; i < first.samples.length; i++) if (first.samples[i] !== whole.samples[i]) same = false;
    return { created: m('pf:created'), preview: m('pf:first-drawn'), drawn: m('pf:drawn'), same, len: first.samples.length };
  });
  console.log(`created ${r.created.toFixed(0)} ms, preview drawn ${r.preview.toFixed(0)} ms, whole request drawn ${r.drawn.toFixed(0)} ms after navigation`);
  assert.ok(r.created < r.preview && r.preview < r.drawn, JSON.stringify(r));
  assert.ok(r.same && r.len === 2048, 'the preview\'s points are the first points of the whole request');
});

test('moons samples match the data distribution (sliced W2 vs the data-vs-data floor)', async () => {
  // SW2 at a few thousand points is noisy, so (as in tests/shipped_models.rs) the floor is the
  // mean over all pairs of the fixture's independent data draws and the model's figure the mean
  // against every draw.
  const fx = readSafetensors(path.join(root, 'tests/fixtures/moons_data.safetensors'));
  const n = 4096;
  const draws = Object.keys(fx).sort().map((k) => fx[k].data.subarray(0, 2 * n));
  const pairs = [];
  for (let i = 0; i < draws.length; i++) for (let j = i + 1; j < draws.length; j++) pairs.push(slicedW2(draws[i], draws[j]));
  const floor = pairs.reduce((a, v) => a + v, 0) / pairs.length;
  let sw = 0;
  let r;
  const seeds = [11, 12, 13, 14];
  for (const seed of seeds) {
    r = await sampleMoons({ n, solver: 'heun', steps: 4, seed });
    assert.equal(r.nfe, 8);
    const samples = Float32Array.from(r.samples);
    sw += draws.reduce((a, d) => a + slicedW2(samples, d), 0) / draws.length / seeds.length;
  }
  console.log(`moons ${n} points, heun 8 NFE: SW2 ${sw.toFixed(4)} vs floor ${floor.toFixed(4)} (${(sw / floor).toFixed(2)}x), ${r.sampleMs.toFixed(0)} ms on ${r.backend}`);
  assert.ok(sw <= 1.5 * floor, `SW2 ${sw} > 1.5 × floor ${floor}`);
});

test('same seed reproduces exactly; seed, solver and steps change the result', async () => {
  const base = { n: 512, solver: 'heun', steps: 4, seed: 3 };
  const r1 = await sampleMoons(base);
  const r2 = await sampleMoons(base);
  assert.deepEqual(r1.samples, r2.samples);
  const diff = (x, y) => Math.max(...x.map((v, i) => Math.abs(v - y[i])));
  assert.ok(diff(r1.samples, (await sampleMoons({ ...base, seed: 4 })).samples) > 0.1);
  const euler = await sampleMoons({ ...base, solver: 'euler' });
  assert.equal(euler.nfe, 4);
  assert.ok(diff(r1.samples, euler.samples) > 1e-4);
  const rk4 = await sampleMoons({ ...base, solver: 'rk4', steps: 8 });
  assert.equal(rk4.nfe, 32);
  // Heun at 8 NFE is already close to the converged flow: RK4 at 32 NFE moves points little
  // on average (a few points near a decision boundary may switch moons, so not the max).
  const meanDiff = r1.samples.reduce((s, v, i) => s + Math.abs(v - rk4.samples[i]), 0) / r1.samples.length;
  console.log(`mean |heun 8 NFE - rk4 32 NFE| = ${meanDiff.toFixed(4)}`);
  assert.ok(meanDiff < 0.1, `mean difference ${meanDiff}`);
  const dopri = await sampleMoons({ ...base, solver: 'dopri5', rtol: 1e-3, atol: 1e-3 });
  assert.ok(dopri.nfe > 6 && dopri.acceptedSteps >= 1);
});

test('a corrupt model file gives a readable error and the page keeps working', async () => {
  const msg = await b.page.evaluate(async () => {
    try {
      await window.pushforward.Sampler.create({ model: new Uint8Array([16, 0, 0, 0, 0, 0, 0, 0, 123, 125]) });
      return 'no error';
    } catch (e) { return String(e.message || e); }
  });
  console.log(`corrupt model: ${msg}`);
  assert.match(msg, /invalid weights file/);
  const bad = await b.page.evaluate(async () => {
    try { await window.pushforward.sampler.sample({ steps: 0 }); return 'no error'; } catch (e) { return String(e.message || e); }
  });
  assert.match(bad, /steps/);
  const ok = await b.page.evaluate(async () => (await window.pushforward.sampler.sample({ n: 256, steps: 2 })).nfe);
  assert.equal(ok, 4);
  assert.deepEqual(b.consoleErrors, []);
});

test('the flow animates from noise to data and the time slider redraws', async () => {
  const r = await b.page.evaluate(async () => {
    const s = window.pushforward.sampler;
    const c = document.getElementById('canvas');
    const spread = () => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] > 40 || d[i + 1] > 40 || d[i + 2] > 60) n++;
      return n;
    };
    await s.sample({ n: 2000, steps: 4 });
    const t0 = performance.now();
    await s.animate({ duration: 300 });
    const ms = performance.now() - t0;
    s.drawAt(0); const atNoise = spread();
    s.drawAt(1); const atData = spread();
    let err = '';
    try { s.drawAt(NaN); } catch (e) { err = String(e.message || e); }
    return { ms, atNoise, atData, err };
  });
  console.log(`animate: ${r.ms.toFixed(0)} ms; lit pixels at t=0: ${r.atNoise}, t=1: ${r.atData}`);
  assert.ok(r.ms >= 300);
  // Noise covers the plane more evenly than the two thin moons do.
  assert.notEqual(r.atNoise, r.atData);
  assert.match(r.err, /t must be/);
  assert.deepEqual(b.consoleErrors, []);
});

test('interactive paths: pathsFrom starts at the given point; the flow field is its Euler step; a click draws a path', async () => {
  const r = await b.page.evaluate(async () => {
    const s = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu', workers: 0 });
    const p0 = await s.pathsFrom(new Float32Array([0.3, -0.7]), { solver: 'euler', steps: 1 });
    const field = await s.velocityField({ t: 0, resolution: 4 });
    const centre = [-3 + 6 * (0.5 / 4), 3 - 6 * (0.5 / 4)];
    const step = await s.pathsFrom(new Float32Array(centre), { solver: 'euler', steps: 1 });
    return { p0: Array.from(p0.paths), times: Array.from(p0.times), field: Array.from(field.slice(0, 2)), step: Array.from(step.paths), centre };
  });
  assert.deepEqual(r.times, [0, 1]);
  assert.deepEqual(r.p0.slice(0, 2).map((v) => Math.fround(v)), [Math.fround(0.3), Math.fround(-0.7)]);
  // Euler, one step of h = 1: x1 = x0 + v(x0, 0), and the field's first cell is that point.
  assert.ok(Math.abs(r.step[2] - r.step[0] - r.field[0]) < 1e-5 && Math.abs(r.step[3] - r.step[1] - r.field[1]) < 1e-5, JSON.stringify(r));
  // A click on the demo's overlay follows a point: a white path appears and the status says where it went.
  const box = await b.page.locator('#overlay').boundingBox();
  await b.page.mouse.click(box.x + box.width * 0.3, box.y + box.height * 0.6);
  await b.page.waitForFunction(() => /noise \(.*\) → data/.test(document.getElementById('status').textContent), null, { timeout: 30_000 });
  const white = await b.page.evaluate(() => {
    const o = document.getElementById('overlay');
    const d = o.getContext('2d').getImageData(0, 0, o.width, o.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 240 && d[i + 1] > 240 && d[i + 2] > 240 && d[i + 3] > 200) n++;
    return n;
  });
  console.log(`click → ${await b.page.locator('#status').textContent()}; ${white} white path pixels`);
  assert.ok(white > 20, 'the path is drawn');
  assert.deepEqual(b.consoleErrors, []);
});

test('the demo loads a model by URL (?model=…), e.g. your own trained file on any host', async () => {
  await b.page.goto(`${b.url}/?model=models/checkerboard.safetensors`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
  const info = await b.page.evaluate(() => window.pushforward.sampler.info());
  assert.equal(info.config.provenance.dataset, 'checkerboard');
  assert.equal(await b.page.locator('#url').inputValue(), 'models/checkerboard.safetensors');
  // The model menu names the user's model, not a shipped one.
  assert.equal(await b.page.locator('#model option:checked').textContent(), 'your URL: models/checkerboard.safetensors');
  // Picking a shipped model again loads its F16 copy (half the download).
  await b.page.selectOption('#model', 'spirals');
  await b.page.waitForFunction(() => window.pushforward.sampler?.info().config.provenance.dataset === 'spirals', null, { timeout: 60_000 });
  const weights = await b.page.evaluate(() => window.pushforward.sampler.info().config.provenance.weights);
  assert.equal(weights, 'f16, rounded from the f32 file');
  assert.equal(await b.page.locator('#model option[data-own]').count(), 0);
});

test('picking a one-step flow map sets Euler with 1 step, and its first drawing took 1 NFE', async () => {
  await b.page.goto(`${b.url}/?backend=cpu`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
  await b.page.selectOption('#model', 'checkerboard_meanflow');
  await b.page.waitForFunction(() => window.pushforward.sampler?.info().config.arch.flow_map === true && document.querySelector('#status').textContent.includes('samples'), null, { timeout: 60_000 });
  assert.equal(await b.page.locator('#solver').inputValue(), 'euler');
  assert.equal(await b.page.locator('#steps').inputValue(), '1');
  assert.match(await b.page.locator('#status').textContent(), /\b1 NFE\b/);
  assert.deepEqual(b.consoleErrors, []);
});

test('switching between 2-D and image models applies that kind\'s defaults: ab2 at 8 steps (8 NFE) for digits, Heun at 8 for moons', async () => {
  await b.page.goto(`${b.url}/?backend=cpu`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
  assert.equal(await b.page.locator('#solver').inputValue(), 'heun');
  await b.page.selectOption('#model', 'mnist');
  await b.page.waitForFunction(() => window.pushforward.sampler?.info().config.data.kind === 'image' && document.querySelector('#status').textContent.includes('samples'), null, { timeout: 120_000 });
  assert.equal(await b.page.locator('#solver').inputValue(), 'ab2');
  assert.equal(await b.page.locator('#steps').inputValue(), '8');
  assert.match(await b.page.locator('#status').textContent(), /\b8 NFE\b/);
  await b.page.selectOption('#model', 'moons');
  await b.page.waitForFunction(() => window.pushforward.sampler?.info().config.data.kind === 'points2d' && document.querySelector('#status').textContent.includes('samples'), null, { timeout: 120_000 });
  assert.equal(await b.page.locator('#solver').inputValue(), 'heun');
  assert.match(await b.page.locator('#status').textContent(), /\b16 NFE\b/);
  assert.deepEqual(b.consoleErrors, []);
});

test('the colour emoji model: category names in the picker and over the grid, in colour', async () => {
  await b.page.goto(`${b.url}/?backend=cpu`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
  await b.page.fill('#steps', '2');
  await b.page.selectOption('#model', 'emoji');
  await b.page.waitForFunction(() => window.pushforward.sampler?.info().config.provenance.dataset?.startsWith('emoji') && document.querySelector('#status').textContent.includes('samples'), null, { timeout: 120_000 });
  const options = await b.page.locator('#label option').allTextContents();
  assert.deepEqual(options.slice(0, 3), ['all (one row each)', 'Smileys & Emotion', 'People & Body']);
  assert.equal(options.length, 10);
  const r = await b.page.evaluate(() => {
    const read = (c) => {
      const c2 = document.createElement('canvas');
      c2.width = c.width; c2.height = c.height;
      const ctx = c2.getContext('2d');
      ctx.drawImage(c, 0, 0);
      return ctx.getImageData(0, 0, c2.width, c2.height).data;
    };
    const d = read(window.pushforward.sampler.canvas);
    let colour = 0;
    for (let i = 0; i < d.length; i += 4) if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) colour++;
    const o = read(document.getElementById('overlay'));
    let orange = 0;
    for (let i = 0; i < o.length; i += 4) if (o[i] > 200 && o[i + 1] > 120 && o[i + 1] < 190 && o[i + 2] < 140 && o[i + 3] > 100) orange++;
    return { colour, orange, px: d.length / 4 };
  });
  console.log(`emoji grid: ${r.colour} of ${r.px} pixels saturated colour; ${r.orange} caption pixels`);
  assert.ok(r.colour > 500, 'the grid is drawn in colour');
  assert.ok(r.orange > 30, 'category captions are drawn');
  // One category asked for: its name is the caption.
  await b.page.selectOption('#label', '8');
  await b.page.click('#run');
  await b.page.waitForFunction(() => document.querySelector('#status').textContent.includes('samples') && !document.querySelector('#run').disabled, null, { timeout: 120_000 });
  assert.equal(await b.page.locator('#label option:checked').textContent(), 'Flags');
  await b.page.fill('#steps', '8');
  assert.deepEqual(b.consoleErrors, []);
});

test('image grids fit the canvas with their class labels; a long run shows a progress bar that cancels it', async () => {
  await b.page.goto(`${b.url}/?backend=cpu`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
  await b.page.selectOption('#model', 'mnist');
  await b.page.waitForFunction(() => window.pushforward.sampler?.info().config.provenance.dataset?.startsWith('mnist') && document.querySelector('#status').textContent.includes('samples'), null, { timeout: 60_000 });
  const r = await b.page.evaluate(async () => {
    const s = window.pushforward.sampler;
    const c = s.canvas;
    const res = await s.sample({ n: 40, steps: 2, label: 'all' });
    const g = res.grid;
    // Orange caption pixels on the overlay (the demo labels the last run's grid).
    await window.pushforward.run();
    const o = document.getElementById('overlay');
    const d = o.getContext('2d').getImageData(0, 0, o.width, o.height).data;
    let orange = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] > 120 && d[i + 1] < 190 && d[i + 2] < 140 && d[i + 3] > 100) orange++;
    return { g, w: c.width, h: c.height, orange };
  });
  console.log(`grid ${JSON.stringify(r.g)} on ${r.w}×${r.h}; ${r.orange} label pixels`);
  assert.ok(r.g.x >= 0 && r.g.y >= 0, 'the grid starts inside the canvas');
  assert.ok(r.g.x + r.g.cols * r.g.cellWidth <= r.w && r.g.y + r.g.rows * r.g.cellHeight <= r.h, 'and ends inside it');
  assert.equal(r.g.cols % 10, 0, 'a column per class');
  assert.ok(r.orange > 30, 'class labels are drawn');
  // A long run: the bar appears, and cancel ends it.
  await b.page.fill('#steps', '400');
  await b.page.click('#run');
  await b.page.waitForSelector('#busy:not([hidden])', { timeout: 30_000 });
  await b.page.click('#cancel');
  await b.page.waitForFunction(() => document.querySelector('#busy').hidden && !document.querySelector('#run').disabled, null, { timeout: 10_000 });
  assert.equal(await b.page.locator('#status').textContent(), 'cancelled');
  await b.page.fill('#steps', '8');
});
