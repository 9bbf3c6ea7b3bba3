// A sampler's life on a page it does not control (issue #13 items 4, 5, 8, 11): dispose is safe
// during a call (the call rejects as disposed, nothing leaks, the page's other samplers carry
// on), abort stops a page-thread CPU solve within a step while the page keeps running, model
// downloads are capped, timed out and cancellable, and option values of the wrong type are
// refused by name.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './harness.mjs';

let b;
before(async () => {
  b = await launch({ webgpu: true });
  await b.page.addInitScript(() => {
    window.__unhandled = [];
    window.addEventListener('unhandledrejection', (e) => window.__unhandled.push(String(e.reason?.message ?? e.reason)));
  });
  // A model URL that never answers (download timeout and abort).
  await b.page.route('**/models/never.safetensors', () => {});
  await b.page.goto(`${b.url}/?backend=cpu`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
});
after(async () => { await b?.close(); });

/** Runs `fn` in the page with `Sampler` bound. */
const inPage = (fn, arg) => b.page.evaluate(`(${fn})(window.pushforward.Sampler, ${JSON.stringify(arg ?? null)})`);

test('dispose during a call rejects that call as disposed, is idempotent, and frees the sampler (CPU page thread, CPU workers, WebGPU)', async () => {
  const out = await inPage(async (Sampler) => {
    const res = [];
    // Long enough to be in flight when dispose comes (SwiftShader runs ~1 GFLOP/s: the GPU's
    // work is sized to finish in seconds, since work already submitted runs to its end).
    for (const [backend, workers, n, steps] of [['cpu', 0, 4096, 400], ['cpu', 2, 4096, 400], ['webgpu', 0, 256, 10]]) {
      const s = await Sampler.create({ model: 'models/moons.safetensors', backend, workers, canvas: document.createElement('canvas') });
      const call = s.sample({ n, solver: 'rk4', steps, seed: 1 });
      await new Promise((r) => setTimeout(r, 30));
      const t0 = performance.now();
      s.dispose();
      s.dispose();
      const settled = await Promise.race([
        call.then(() => 'resolved', (e) => String(e.message || e)),
        new Promise((r) => setTimeout(() => r('still pending after 20 s'), 20_000)),
      ]);
      const settledMs = performance.now() - t0;
      let later;
      try { await s.sample({ n: 8 }); later = 'resolved'; } catch (e) { later = String(e.message || e); }
      let info;
      try { s.info(); info = 'ok'; } catch (e) { info = String(e.message || e); }
      // Another sampler on the page is unaffected.
      const other = await Sampler.create({ model: 'models/moons.safetensors', backend, workers });
      const r = await other.sample({ n: 64, steps: 2, returnSamples: true });
      other.dispose();
      res.push({ backend, workers, settled, settledMs, later, info, stats: s.stats(), otherOk: r.samples.length === 128 });
    }
    return res;
  });
  for (const r of out) {
    console.log(`${r.backend}/${r.workers} workers: in-flight call → ${r.settled} after ${r.settledMs.toFixed(0)} ms; after → ${r.later}`);
    assert.match(r.settled, /disposed/, `${r.backend}/${r.workers}: the call in flight rejects as disposed`);
    assert.ok(r.settledMs < 1000, `settled ${r.settledMs} ms after dispose`);
    assert.match(r.later, /disposed/);
    assert.match(r.info, /disposed/);
    assert.equal(r.stats.disposed, true);
    assert.ok(r.otherOk, 'another sampler still samples');
  }
  assert.deepEqual(await b.page.evaluate(() => window.__unhandled), []);
});

test('abort stops a page-thread CPU solve within a step, and the page keeps running during the solve', async () => {
  const r = await inPage(async (Sampler) => {
    const s = await Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu', workers: 0 });
    let ticks = 0;
    const timer = setInterval(() => { ticks++; }, 10);
    const ac = new AbortController();
    let steps = 0;
    const t0 = performance.now();
    setTimeout(() => ac.abort(), 200);
    let outcome;
    try {
      // A few ms a step (4 NFE of 250 points; 1000 points took ~25 ms a step on this 2-core VM,
      // too few yields in 200 ms for the tick count below): the solve yields between steps,
      // so the page's timers run.
      await s.sample({ n: 250, solver: 'rk4', steps: 5000, signal: ac.signal, onProgress: () => { steps++; } });
      outcome = 'resolved';
    } catch (e) { outcome = String(e.message || e); }
    const ms = performance.now() - t0;
    clearInterval(timer);
    // The sampler works after the abort.
    const again = await s.sample({ n: 256, steps: 2 });
    s.dispose();
    return { outcome, ms, ticks, steps, againNfe: again.nfe };
  });
  console.log(`aborted at 200 ms: settled after ${r.ms.toFixed(0)} ms, ${r.steps} steps, ${r.ticks} timer ticks ran during the solve`);
  assert.match(r.outcome, /cancelled/);
  // The full solve takes many seconds; one RK4 step of 250 points takes a few ms.
  assert.ok(r.ms < 1000, `settled ${r.ms} ms after start`);
  assert.ok(r.steps > 1 && r.steps < 5000);
  assert.ok(r.ticks >= 5, `the page's timers ran ${r.ticks} times during the solve`);
  assert.equal(r.againNfe, 4, 'Heun, 2 steps');
});

test('model downloads: a size cap, a timeout and the caller\'s abort each reject clearly', async () => {
  const r = await inPage(async (Sampler) => {
    const attempt = async (opts) => {
      const t0 = performance.now();
      try { await Sampler.create({ backend: 'cpu', workers: 0, ...opts }); return { ok: true }; } catch (e) {
        return { message: String(e.message || e), ms: performance.now() - t0 };
      }
    };
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 150);
    return {
      cap: await attempt({ model: 'models/moons.safetensors', maxDownloadBytes: 1000 }),
      timeout: await attempt({ model: 'models/never.safetensors', downloadTimeoutMs: 300 }),
      abort: await attempt({ model: 'models/never.safetensors', signal: ac.signal }),
      badCap: await attempt({ model: 'models/moons.safetensors', maxDownloadBytes: '1000' }),
      fine: await attempt({ model: 'models/moons.safetensors', maxDownloadBytes: 10_000_000 }),
    };
  });
  console.log(r);
  assert.match(r.cap.message, /bytes are over the 1000-byte cap \(maxDownloadBytes\)/);
  assert.match(r.timeout.message, /within 0\.3 s/);
  assert.ok(r.timeout.ms < 5000);
  assert.match(r.abort.message, /cancelled/);
  assert.ok(r.abort.ms < 5000);
  assert.match(r.badCap.message, /maxDownloadBytes/);
  assert.equal(r.fine.ok, true);
});

test('options of the wrong type are refused by name; solver names are case-insensitive', async () => {
  const r = await inPage(async (Sampler) => {
    const s = await Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu', workers: 0 });
    const msg = async (p) => { try { await p; return 'resolved'; } catch (e) { return String(e.message || e); } };
    const out = {
      densityString: await msg(s.density({ resolution: '128' })),
      densityUnknown: await msg(s.density({ resolutoin: 32 })),
      fieldString: await msg(s.velocityField({ t: '0.5' })),
      stepsString: await msg(s.sample({ steps: '8' })),
      pathsSteps: await msg(s.pathsFrom(new Float32Array([0, 0]), { steps: 'many' })),
      animateBad: await msg(s.animate({ duration: -1 })),
      upper: await msg(s.sample({ solver: 'Dopri5', n: 256 })),
      defaults: s.defaults(),
    };
    s.dispose();
    return out;
  });
  console.log(r);
  assert.match(r.densityString, /resolution.*"128".*whole number/);
  assert.match(r.densityUnknown, /unknown density option `resolutoin`/);
  assert.match(r.fieldString, /`t`/);
  assert.match(r.stepsString, /steps/);
  assert.match(r.pathsSteps, /steps/);
  assert.match(r.animateBad, /duration/);
  assert.equal(r.upper, 'resolved');
  assert.equal(r.defaults.n, 4096);
  assert.equal(r.defaults.solver, 'heun');
  assert.deepEqual(r.defaults.limits.steps, [1, 100000]);
});
