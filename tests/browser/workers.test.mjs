// The CPU backend's worker pool (src/cpu_workers.js): a request split over workers gives the
// samples of the single-thread solve, bit for bit; progress and cancellation work across
// workers; a cancelled pool recovers on the next call; concurrent calls on one sampler each get
// their own samples, one call's abort never touches another, a pool never runs more workers
// than its size, an adaptive solve with trajectories is never split, and a first small solve
// runs on the page's thread while the workers boot (or for good, when they cannot start).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './harness.mjs';

let b;
before(async () => {
  b = await launch({ webgpu: false });
  // Count the page's workers (the pool's are named 'pushforward-cpu') and the requests they are
  // sent, so the tests can see how the pool uses them whatever the sampler exposes.
  await b.page.addInitScript(() => {
    const w = { live: 0, maxLive: 0, made: 0, solves: [] };
    window.__workers = w;
    const Base = window.Worker;
    window.Worker = class extends Base {
      constructor(url, options) {
        // `refuse`: what a page whose policy forbids workers does to the pool's.
        if (w.refuse && options?.name === 'pushforward-cpu') throw new DOMException('workers are refused here', 'SecurityError');
        super(url, options);
        this.__cpu = options?.name === 'pushforward-cpu';
        if (this.__cpu) { w.made++; w.live++; w.maxLive = Math.max(w.maxLive, w.live); }
      }
      postMessage(m, transfer) {
        if (this.__cpu && m?.type === 'solve') w.solves.push({ start: m.start, end: m.end, solver: m.opts?.solver });
        return super.postMessage(m, transfer);
      }
      terminate() {
        if (this.__cpu && !this.__dead) { this.__dead = true; w.live--; }
        return super.terminate();
      }
    };
    /** Resets the high-water mark and the request log to now. */
    w.mark = () => { w.maxLive = w.live; w.solves = []; return w.live; };
    /** `p`, or a rejection after `ms`: a call that never settles fails the test, not hangs it. */
    window.__within = (p, ms, what) => Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} never settled`)), ms))]);
  });
  await b.page.goto(`${b.url}/?backend=cpu`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
});
after(async () => { await b?.close(); });

async function compare(model, opts) {
  return b.page.evaluate(async ({ model, opts }) => {
    const run = async (workers) => {
      const s = await window.pushforward.Sampler.create({ model: `models/${model}.safetensors`, backend: 'cpu', workers });
      const steps = [];
      window.__workers.mark();
      const r = await s.sample({ ...opts, returnSamples: true, onProgress: (p) => steps.push(p.step) });
      // The row ranges the workers were sent: the evidence that the request was split.
      const ranges = window.__workers.solves.map((x) => [x.start, x.end]);
      const reason = s.info().backendReason;
      s.dispose();
      return { samples: Array.from(r.samples), labels: Array.from(r.labels), nfe: r.nfe, ms: r.sampleMs, steps, reason, ranges };
    };
    return { one: await run(0), pool: await run(2) };
  }, { model, opts });
}

// 3,003 points: the page thread runs the MLP in row blocks of 1,024, 1,024 and 955 rows; each
// worker in blocks from its own first row (1,024 + 477 and 1,024 + 478), so the 4-row groups of
// the wasm GEMM fall elsewhere in every block: the same bits all the same.
test('moons split over 2 workers equals the single-thread solve (ragged row blocks)', async () => {
  const { one, pool } = await compare('moons', { n: 3003, solver: 'heun', steps: 8, seed: 3, trajectories: 4 });
  console.log(`moons 3003 heun 8: page thread ${one.ms.toFixed(0)} ms, 2 workers ${pool.ms.toFixed(0)} ms (${pool.reason})`);
  assert.match(pool.reason, /2 workers/);
  assert.deepEqual(pool.ranges, [[0, 1501], [1501, 3003]], 'the request was not split over the 2 workers');
  assert.deepEqual(one.ranges, []);
  assert.equal(pool.nfe, one.nfe);
  assert.equal(pool.samples.length, one.samples.length);
  const diff = pool.samples.reduce((m, v, i) => Math.max(m, Math.abs(v - one.samples[i])), 0);
  assert.equal(diff, 0, `samples differ by ${diff}`);
  assert.ok(pool.steps.length >= 8 && pool.steps.at(-1) === 8, `progress ${pool.steps}`);
});

test('guided mnist split over workers equals the single-thread solve (labels by sample index)', async () => {
  const { one, pool } = await compare('mnist', { n: 5, solver: 'euler', steps: 2, seed: 4, label: 'all', guidance: 2 });
  assert.deepEqual(pool.ranges, [[0, 2], [2, 5]], 'the request was not split over the 2 workers');
  assert.deepEqual(pool.labels, [0, 1, 2, 3, 4]);
  assert.deepEqual(pool.labels, one.labels);
  const diff = pool.samples.reduce((m, v, i) => Math.max(m, Math.abs(v - one.samples[i])), 0);
  assert.equal(diff, 0, `samples differ by ${diff}`);
});

test('profile: per-kernel calls and times, summed over the workers, and each worker\'s rows and busy time', async () => {
  const r = await b.page.evaluate(async () => {
    const out = {};
    for (const [model, workers, opts] of [
      ['moons', 2, { n: 4096, solver: 'heun', steps: 8 }],
      ['moons', 0, { n: 3003, solver: 'heun', steps: 8 }],
      ['mnist', 2, { n: 3, solver: 'euler', steps: 2, guidance: 2 }],
    ]) {
      const s = await window.pushforward.Sampler.create({ model: `models/${model}.safetensors`, backend: 'cpu', workers });
      const plain = await s.sample(opts);
      const r = await s.sample({ ...opts, profile: true });
      s.dispose();
      out[`${model}/${workers}`] = { plain: plain.profile ?? null, profile: r.profile, ms: r.sampleMs };
    }
    return out;
  });
  const calls = (p, name) => p.kernels.find((k) => k.name === name)?.calls;
  for (const [key, { plain, profile, ms }] of Object.entries(r)) {
    assert.equal(plain, null, `${key}: a profile without asking`);
    const busy = profile.workers.reduce((a, w) => a + w.busyMs, 0);
    const kernels = profile.kernels.reduce((a, k) => a + k.ms, 0);
    console.log(`${key}: ${ms.toFixed(0)} ms; workers ${profile.workers.map((w) => `${w.start}-${w.end} ${w.busyMs.toFixed(0)} ms`).join(', ')}; kernels ${profile.kernels.slice(0, 4).map((k) => `${k.name} ${k.calls}x ${k.ms.toFixed(1)} ms`).join(', ')}`);
    // Kernels run inside the workers' busy time, and the busy time inside the call.
    assert.ok(kernels > 0 && kernels <= busy + 1, `${key}: kernels ${kernels} ms, busy ${busy} ms`);
    assert.ok(profile.workers.every((w) => w.busyMs > 0 && w.busyMs <= ms + 1), `${key}: ${JSON.stringify(profile.workers)}`);
    for (let i = 1; i < profile.kernels.length; i++) assert.ok(profile.kernels[i - 1].ms >= profile.kernels[i].ms, `${key}: not slowest first`);
  }
  // Rows: contiguous ranges covering the request; calls: every layer of every evaluation.
  assert.deepEqual(r['moons/2'].profile.workers.map((w) => [w.start, w.end]), [[0, 2048], [2048, 4096]]);
  assert.deepEqual(r['moons/0'].profile.workers.map((w) => [w.start, w.end]), [[0, 3003]]);
  assert.deepEqual(r['mnist/2'].profile.workers.map((w) => [w.start, w.end]), [[0, 1], [1, 3]]);
  // The moons MLP: 5 linear layers and the one-row product of the embeddings' share of the
  // first layer (its folded bias, src/model/mlp.rs) × 16 evaluations (Heun 8), in each row
  // block of 1,024 (128 floats a row: 512 KiB of activations): 2 in each worker's 2,048 rows,
  // 3 in the page thread's 3,003.
  assert.equal(calls(r['moons/2'].profile, 'linear'), 2 * 2 * 6 * 16);
  assert.equal(calls(r['moons/0'].profile, 'linear'), 3 * 6 * 16);
  assert.equal(calls(r['moons/0'].profile, 'slice_rows'), 3 * 16);
  assert.equal(r['moons/0'].profile.kernels[0].name, 'linear');
  // The U-Net's convolutions dominate it; 2 Euler evaluations in each of the 2 workers.
  assert.equal(r['mnist/2'].profile.kernels[0].name, 'conv2d');
  assert.equal(calls(r['mnist/2'].profile, 'guidance_mix'), 2 * 2);
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

/** Max |a − b| over two equal-length arrays (Infinity when the lengths differ). */
const maxDiff = (a, b) => (a.length !== b.length ? Infinity : a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0));

test('two sample() calls at once on one sampler both settle, each with its own samples', async () => {
  const r = await b.page.evaluate(async () => {
    const s = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu', workers: 2 });
    const opts = (seed) => ({ n: 4096, solver: 'heun', steps: 8, seed, returnSamples: true });
    const seqA = await s.sample(opts(11));
    const seqB = await s.sample(opts(12));
    const [a, c] = await window.__within(Promise.all([s.sample(opts(11)), s.sample(opts(12))]), 60_000, 'a concurrent call');
    s.dispose();
    return { a: Array.from(a.samples), c: Array.from(c.samples), seqA: Array.from(seqA.samples), seqB: Array.from(seqB.samples) };
  });
  assert.equal(maxDiff(r.a, r.seqA), 0, 'the first call got other samples than its sequential run');
  assert.equal(maxDiff(r.c, r.seqB), 0, 'the second call got other samples than its sequential run');
  assert.ok(maxDiff(r.seqA, r.seqB) > 0.1, 'the two seeds give different samples');
});

test("aborting one call leaves another call's work alone (queued behind it, or running ahead of it)", async () => {
  const r = await b.page.evaluate(async () => {
    const s = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu', workers: 2 });
    const long = { n: 16384, solver: 'dopri5', rtol: 1e-7, atol: 1e-7, seed: 1 };
    const short = { n: 4096, solver: 'heun', steps: 4, seed: 2, returnSamples: true };
    const expected = Array.from((await s.sample(short)).samples);
    const settle = (p) => p.then((v) => ({ v }), (e) => ({ message: String(e.message || e) }));

    // 1. A (long) runs, B waits; A is aborted at its first step: A rejects, B resolves.
    const ctrl = new AbortController();
    const a = settle(s.sample({ ...long, signal: ctrl.signal, onProgress: (p) => { if (p.step >= 1) ctrl.abort(); } }));
    const bOut = settle(s.sample(short));
    const [ra, rb] = await window.__within(Promise.all([a, bOut]), 120_000, 'a call next to an aborted one');

    // 2. C (short, not aborted) runs, D is queued behind it and aborted at C's first step (so
    //    D has reached the pool): D rejects before C is done, and C resolves with its samples.
    const ctrl2 = new AbortController();
    let cDone = false, dRejectedFirst = null;
    const c = settle(s.sample({ ...short, onProgress: (p) => { if (p.step >= 1) ctrl2.abort(); } }).then((v) => { cDone = true; return v; }));
    const d = settle(s.sample({ ...long, signal: ctrl2.signal })).then((o) => { dRejectedFirst = !cDone; return o; });
    const [rc, rd] = await window.__within(Promise.all([c, d]), 120_000, 'a call next to an aborted queued one');
    s.dispose();
    return {
      expected, a: ra.message, b: rb.message ?? Array.from(rb.v.samples),
      c: rc.message ?? Array.from(rc.v.samples), d: rd.message, dRejectedFirst,
    };
  });
  assert.match(r.a ?? '', /cancel/, 'the aborted call rejects as cancelled');
  assert.ok(Array.isArray(r.b), `the waiting call failed: ${r.b}`);
  assert.equal(maxDiff(r.b, r.expected), 0, 'the waiting call got other samples');
  assert.match(r.d ?? '', /cancel/, 'the aborted queued call rejects as cancelled');
  assert.ok(r.dRejectedFirst, 'the aborted queued call waited for the running one');
  assert.ok(Array.isArray(r.c), `the running call failed: ${r.c}`);
  assert.equal(maxDiff(r.c, r.expected), 0, 'the running call got other samples');
});

test('two calls after a cancel restart the pool once: never more live workers than its size', async () => {
  const r = await b.page.evaluate(async () => {
    const w = window.__workers;
    const base = w.mark();
    const s = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu', workers: 2 });
    const ctrl = new AbortController();
    let message = null;
    try {
      await s.sample({ n: 16384, solver: 'dopri5', rtol: 1e-7, atol: 1e-7, seed: 1, signal: ctrl.signal,
        onProgress: (p) => { if (p.step >= 1) ctrl.abort(); } });
    } catch (e) { message = String(e.message || e); }
    const opts = (seed) => ({ n: 2048, solver: 'heun', steps: 4, seed, returnSamples: true });
    const [x, y] = await window.__within(Promise.all([s.sample(opts(5)), s.sample(opts(6))]), 60_000, 'two calls after a cancel');
    const afterTwo = w.live - base;
    const again = await s.sample(opts(5));
    const result = { message, maxLive: w.maxLive - base, afterTwo, made: w.made, xOk: x.samples.length === 4096 && y.samples.length === 4096,
      same: x.samples.every((v, i) => v === again.samples[i]) };
    s.dispose();
    result.afterDispose = w.live - base;
    return result;
  });
  console.log(`pool of 2: cancel then two calls → at most ${r.maxLive} live workers, ${r.afterTwo} after, ${r.afterDispose} after dispose`);
  assert.match(r.message ?? '', /cancel/);
  assert.ok(r.maxLive <= 2, `${r.maxLive} workers were alive at once for a pool of 2`);
  assert.equal(r.afterTwo, 2);
  assert.ok(r.xOk && r.same);
  assert.equal(r.afterDispose, 0, 'dispose() left workers running');
});

test("'Dopri5' (any case) with trajectories runs in one worker and equals the page-thread solve", async () => {
  const r = await b.page.evaluate(async () => {
    const opts = { n: 2048, solver: 'Dopri5', rtol: 1e-4, atol: 1e-4, seed: 8, trajectories: 8, returnSamples: true };
    const one = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu', workers: 0 });
    const pool = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu', workers: 2 });
    const r1 = await one.sample(opts);
    window.__workers.mark();
    const r2 = await pool.sample(opts);
    const solves = window.__workers.solves.slice();
    // The same request as a fixed-step solve is split (so the pool did have 2 workers to use).
    window.__workers.mark();
    await pool.sample({ ...opts, solver: 'Heun', steps: 4 });
    const heunSolves = window.__workers.solves.slice();
    one.dispose(); pool.dispose();
    return { solves, heunSolves, nfe: [r1.nfe, r2.nfe], accepted: [r1.acceptedSteps, r2.acceptedSteps],
      d: Array.from(r1.samples).reduce((m, v, i) => Math.max(m, Math.abs(v - r2.samples[i])), 0) };
  });
  assert.deepEqual(r.solves.map((x) => [x.start, x.end]), [[0, 2048]], `Dopri5 was split: ${JSON.stringify(r.solves)}`);
  assert.equal(r.heunSolves.length, 2, 'the fixed-step solve was not split');
  assert.equal(r.nfe[1], r.nfe[0]);
  assert.equal(r.accepted[1], r.accepted[0]);
  assert.equal(r.d, 0, `samples differ by ${r.d}`);
});

test('guidance on an interval of t and CFG-Zero★ reach the workers: the workers give the page thread\'s samples, and the options change them', async () => {
  const r = await b.page.evaluate(async () => {
    const { Sampler } = window.pushforward;
    const model = 'models/mnist.safetensors';
    const [pool, page] = await Promise.all([Sampler.create({ model, backend: 'cpu', workers: 2 }), Sampler.create({ model, backend: 'cpu', workers: 0 })]);
    const base = { n: 4, solver: 'euler', steps: 2, seed: 5, label: 'all', guidance: 3, returnSamples: true };
    const get = async (s, o) => Array.from((await s.sample({ ...base, ...o })).samples);
    const star = { guidanceFrom: 0.2, guidanceTo: 1, cfgZeroStar: true };
    const out = {
      starPool: await get(pool, star), starPage: await get(page, star),
      plain: await get(pool, {}), unguided: await get(pool, { guidance: 1 }),
      // Euler evaluates at t = 0 and ½: none in [0.6, 1], so no guidance at all.
      outside: await get(pool, { guidanceFrom: 0.6, guidanceTo: 1 }),
      zeroInit: await get(pool, { zeroInitSteps: 1 }),
    };
    let bad = '';
    try { await pool.sample({ ...base, guidanceFrom: 0.8, guidanceTo: 0.2 }); } catch (e) { bad = String(e.message || e); }
    pool.dispose(); page.dispose();
    return { ...out, bad };
  });
  assert.deepEqual(r.starPool, r.starPage, 'split over workers = one thread');
  assert.notDeepEqual(r.starPool, r.plain);
  assert.deepEqual(r.outside, r.unguided);
  assert.notDeepEqual(r.zeroInit, r.plain);
  assert.match(r.bad, /guidanceFrom, guidanceTo/);
});

test("workers that cannot start: the sampler solves on the page's thread, gives the same samples, and info() says why", async () => {
  const r = await b.page.evaluate(async () => {
    const run = async (workers, refuse, opts) => {
      window.__workers.refuse = refuse;
      try {
        const s = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu', workers });
        // The first call is small enough for the page's thread while workers boot, the second
        // (65,536 evaluations) waits for them: both end on this thread when they fail.
        const small = await window.__within(s.sample({ ...opts, n: 512, returnSamples: true }), 60_000, 'the small solve');
        const large = await window.__within(s.sample({ ...opts, n: 4096, returnSamples: true }), 60_000, 'the large solve');
        const reason = s.info().backendReason;
        s.dispose();
        return { small: Array.from(small.samples), large: Array.from(large.samples), reason };
      } finally { window.__workers.refuse = false; }
    };
    const opts = { seed: 11, steps: 8, solver: 'heun' };
    const made = window.__workers.made;
    const refused = await run(2, true, opts);
    const started = window.__workers.made - made;
    return { refused, alone: await run(0, false, opts), started };
  });
  console.log(`workers refused → "${r.refused.reason}"`);
  assert.equal(r.started, 0);
  assert.match(r.refused.reason, /workers unavailable \(.*workers are refused here.*\), solving on the page's thread/);
  assert.doesNotMatch(r.refused.reason, /; 2 workers/);
  assert.equal(r.refused.small.length, 512 * 2);
  assert.deepEqual(r.refused.small, r.alone.small);
  assert.deepEqual(r.refused.large, r.alone.large);
});

test("the first small solve runs on the page's thread while the workers boot, with the workers' samples", async () => {
  const r = await b.page.evaluate(async () => {
    const opts = { seed: 5, steps: 8, solver: 'heun', n: 1024, returnSamples: true };
    const ready = () => performance.getEntriesByName('pushforward:workers-ready').length;
    const before = ready();
    const s = await window.pushforward.Sampler.create({ model: 'models/moons.safetensors', backend: 'cpu', workers: 2 });
    window.__workers.mark();
    const first = await s.sample(opts);
    const sentFirst = window.__workers.solves.length;
    // Once they are up (the pool marks it), the same request goes to them.
    await window.__within((async () => { while (ready() === before) await new Promise((r) => setTimeout(r, 20)); })(), 30_000, 'the workers');
    window.__workers.mark();
    const again = await s.sample(opts);
    const sentAgain = window.__workers.solves.length;
    s.dispose();
    return { first: Array.from(first.samples), again: Array.from(again.samples), sentFirst, sentAgain };
  });
  assert.equal(r.sentAgain, 2, 'the second solve was split over the two workers');
  console.log(`first solve: ${r.sentFirst} worker requests; after boot: ${r.sentAgain}`);
  assert.deepEqual(r.first, r.again);
});
