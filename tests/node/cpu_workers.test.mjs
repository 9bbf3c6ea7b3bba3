// The CPU worker pool's scheduling (src/cpu_workers.js) without wasm: `Worker` is replaced by a
// fake that speaks the pool's message protocol ({ id, type } in, { id, type: progress | done |
// error } out) and answers each solve with numbers derived from its seed and rows, after
// `opts.delayMs`. The browser tests (tests/browser/workers.test.mjs) check the same behaviour
// against real workers and the real sampler; these run in a second, with exact control over
// timing, crashes and the order of replies.
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Every fake worker constructed, in order. */
let made = [];
/** What a solve's `opts.crashAfterMs` / `opts.fatal` / `opts.failMessage` asks for is simulated. */
class FakeWorker {
  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.terminated = false;
    this.received = [];
    this.timers = new Set();
    made.push(this);
  }
  later(ms, fn) {
    const t = setTimeout(() => { this.timers.delete(t); if (!this.terminated) fn(); }, ms);
    this.timers.add(t);
  }
  reply(data) { this.onmessage?.({ data }); }
  postMessage(m) {
    this.received.push(m);
    if (m.type === 'init') { this.later(1, () => this.reply({ id: m.id, type: 'done', result: null })); return; }
    const { opts, start, end, id } = m;
    if (opts.crashAfterMs !== undefined) {
      // An uncaught error in the worker (what a wasm trap in a spawned future becomes).
      this.later(opts.crashAfterMs, () => this.onerror?.({ message: 'Uncaught RuntimeError: unreachable', preventDefault() {} }));
      return;
    }
    if (opts.failMessage) { this.later(1, () => this.reply({ id, type: 'error', message: opts.failMessage, fatal: !!opts.fatal })); return; }
    const steps = opts.steps ?? 2;
    const delay = opts.delayMs ?? 5;
    for (let s = 1; s <= steps; s++) {
      this.later((delay * s) / steps, () => this.reply({ id, type: 'progress', progress: { step: s, steps, t: s / steps } }));
    }
    this.later(delay + 1, () => {
      const rows = end - start;
      const samples = new Float32Array(rows * 2);
      for (let i = 0; i < rows; i++) { samples[2 * i] = opts.seed * 1e4 + start + i; samples[2 * i + 1] = -(start + i); }
      // A Dopri5 solve's time grid depends on its rows (adaptive steps): frames of different
      // ranges would not line up, which is why such solves must not be split.
      const adaptive = String(opts.solver).toLowerCase() === 'dopri5';
      const frames = opts.trajectories
        ? [0, 1, 2].map((k) => ({ t: adaptive ? k / (2 + start) : k / 2, data: samples.slice() }))
        : [];
      // Adaptive step counts differ by range: (accepted, rejected) = (5, 2) for the first range,
      // (6, 0) for the others, each with Dopri5's nfe = 2 + 6·(accepted + rejected).
      const [acc, rej] = adaptive ? (start === 0 ? [5, 2] : [6, 0]) : [steps, 0];
      const nfe = adaptive ? 2 + 6 * (acc + rej) : steps;
      this.reply({ id, type: 'done', result: { samples, labels: new Uint32Array(rows), frames, nfe, acceptedSteps: acc, rejectedSteps: rej } });
    });
  }
  terminate() {
    this.terminated = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
globalThis.Worker = FakeWorker;
// Imported from a .mjs copy: the package is not "type": "module", and Node warns when it has to
// guess that a .js file is a module.
const source = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cpu_workers.js');
const copy = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pushforward-pool-')), 'cpu_workers.mjs');
fs.copyFileSync(source, copy);
const { CpuPool } = await import(pathToFileURL(copy).href);
fs.rmSync(path.dirname(copy), { recursive: true, force: true });

const live = () => made.filter((w) => !w.terminated).length;
const solves = (w) => w.received.filter((m) => m.type === 'solve');
const expected = (seed, n) => Array.from({ length: n }, (_, i) => [seed * 1e4 + i, -i]).flat();
const model = new Uint8Array([1, 2, 3]);
/** A pool whose workers are up (`CpuPool.start` returns before they are). */
const started = async (...args) => {
  const pool = CpuPool.start(...args);
  await pool.started;
  assert.equal(pool.state(), 'ready');
  return pool;
};

beforeEach(() => { made = []; });

test('every message to a worker carries a request id, each one new', async () => {
  const pool = await started(model, 2);
  await pool.solve({ seed: 1 }, 512, 1);
  await pool.solve({ seed: 2 }, 512, 1);
  const ids = made.flatMap((w) => w.received.map((m) => m.id));
  assert.ok(ids.every(Number.isInteger), JSON.stringify(ids));
  assert.equal(new Set(ids).size, ids.length, 'ids are reused');
  pool.terminate();
});

test('two solves at once on one pool both settle, each with its own samples', async () => {
  const pool = await started(model, 2);
  const [a, b] = await Promise.all([
    pool.solve({ seed: 1, delayMs: 30 }, 600, 1),
    pool.solve({ seed: 2, delayMs: 5 }, 400, 1),
  ]);
  assert.deepEqual(Array.from(a.samples), expected(1, 600));
  assert.deepEqual(Array.from(b.samples), expected(2, 400));
  assert.equal(made.length, 2);
  pool.terminate();
});

test('requests run one at a time in call order; stats() shows the queue', async () => {
  const pool = await started(model, 2);
  const order = [];
  const calls = [1, 2, 3].map((seed) => pool.solve({ seed, delayMs: 10 }, 256, 1).then(() => order.push(seed)));
  assert.deepEqual(pool.stats(), { workers: 2, spawned: 2, queued: 2 });
  // While the first runs, the workers have been sent its two parts and nothing of the others.
  await new Promise((r) => setTimeout(r, 3));
  assert.deepEqual(made.map((w) => solves(w).map((m) => m.opts.seed)), [[1], [1]]);
  await Promise.all(calls);
  assert.deepEqual(order, [1, 2, 3]);
  assert.deepEqual(pool.stats(), { workers: 2, spawned: 2, queued: 0 });
  pool.terminate();
});

test('aborting the running request rejects only it; the queued one resolves with its own samples', async () => {
  const pool = await started(model, 2);
  const ctrl = new AbortController();
  const a = pool.solve({ seed: 1, delayMs: 200 }, 512, 1, undefined, ctrl.signal);
  const b = pool.solve({ seed: 2, delayMs: 5 }, 512, 1);
  setTimeout(() => ctrl.abort(), 20);
  await assert.rejects(a, /sampling was cancelled/);
  const rb = await b;
  assert.deepEqual(Array.from(rb.samples), expected(2, 512));
  // A's two workers were terminated and replaced: 4 started in all, 2 alive.
  assert.equal(made.length, 4);
  assert.equal(live(), 2);
  pool.terminate();
});

test('aborting a queued request removes it at once and leaves the running one alone', async () => {
  const pool = await started(model, 2);
  const ctrl = new AbortController();
  const a = pool.solve({ seed: 1, delayMs: 50 }, 512, 1);
  const b = pool.solve({ seed: 2 }, 512, 1, undefined, ctrl.signal);
  assert.equal(pool.stats().queued, 1);
  ctrl.abort();
  await assert.rejects(b, /sampling was cancelled/);
  assert.equal(pool.stats().queued, 0);
  assert.deepEqual(Array.from((await a).samples), expected(1, 512));
  assert.equal(made.length, 2, 'no worker was terminated');
  assert.equal(live(), 2);
  pool.terminate();
});

test('an already-aborted signal rejects without touching the pool', async () => {
  const pool = await started(model, 2);
  await assert.rejects(pool.solve({ seed: 1 }, 512, 1, undefined, AbortSignal.abort()), /cancelled/);
  assert.equal(made.reduce((s, w) => s + solves(w).length, 0), 0);
  pool.terminate();
});

test('two calls after a cancel start the missing workers once: never more than the pool size', async () => {
  const pool = await started(model, 2);
  const ctrl = new AbortController();
  const a = pool.solve({ seed: 1, delayMs: 100 }, 512, 1, undefined, ctrl.signal);
  setTimeout(() => ctrl.abort(), 10);
  await assert.rejects(a, /cancelled/);
  assert.equal(pool.stats().workers, 0);
  const [b, c] = await Promise.all([pool.solve({ seed: 2 }, 512, 1), pool.solve({ seed: 3 }, 512, 1)]);
  assert.deepEqual(Array.from(b.samples), expected(2, 512));
  assert.deepEqual(Array.from(c.samples), expected(3, 512));
  assert.deepEqual(pool.stats(), { workers: 2, spawned: 4, queued: 0 });
  assert.equal(live(), 2);
  // Concurrent spawns share one start.
  pool.workers[0].kill(new Error('test'));
  await Promise.all([pool.spawn(), pool.spawn(), pool.spawn()]);
  assert.deepEqual(pool.stats(), { workers: 2, spawned: 5, queued: 0 });
  pool.terminate();
});

test('a worker that dies (error event) rejects its request with the cause; the queued one runs on new workers', async () => {
  const pool = await started(model, 2);
  const crashing = pool.solve({ seed: 1, crashAfterMs: 5 }, 512, 1);
  const queued = pool.solve({ seed: 9 }, 512, 1);
  await assert.rejects(crashing, /a CPU worker failed: Uncaught RuntimeError: unreachable/);
  assert.deepEqual(Array.from((await queued).samples), expected(9, 512));
  assert.equal(made.length, 4);
  assert.equal(live(), 2);
  pool.terminate();
});

test('a crash rejects the request (not a hang), a fatal error reply replaces the worker, a plain one keeps it', async () => {
  const pool = await started(model, 2);
  await assert.rejects(pool.solve({ seed: 1, crashAfterMs: 5 }, 512, 1), /a CPU worker failed: Uncaught RuntimeError: unreachable/);
  assert.deepEqual(Array.from((await pool.solve({ seed: 2 }, 512, 1)).samples), expected(2, 512));
  assert.equal(made.length, 4);
  await assert.rejects(pool.solve({ seed: 3, failMessage: 'bad rows' }, 512, 1), /bad rows/);
  assert.equal(made.length, 4, 'an ordinary error reply does not cost the workers');
  await assert.rejects(pool.solve({ seed: 3, failMessage: 'RuntimeError: unreachable', fatal: true }, 512, 1), /unreachable/);
  assert.equal(live(), 0);
  assert.deepEqual(Array.from((await pool.solve({ seed: 4 }, 512, 1)).samples), expected(4, 512));
  assert.equal(live(), 2);
  pool.terminate();
});

test('terminate() rejects the running and queued requests as disposed, and later calls too', async () => {
  const pool = await started(model, 2);
  const a = pool.solve({ seed: 1, delayMs: 100 }, 512, 1);
  const b = pool.solve({ seed: 2 }, 512, 1);
  setTimeout(() => pool.terminate(), 10);
  await assert.rejects(a, /^Error: the sampler was disposed$/);
  await assert.rejects(b, /^Error: the sampler was disposed$/);
  await assert.rejects(pool.solve({ seed: 3 }, 512, 1), /the sampler was disposed/);
  assert.equal(live(), 0);
  assert.equal(made.length, 2, 'nothing was respawned after dispose');
  pool.terminate(); // idempotent
});

test('terminate() while the workers are still starting stops them too', async () => {
  const pool = new CpuPool(model, 2);
  const spawn = pool.spawn();
  const a = pool.solve({ seed: 1 }, 512, 1);
  pool.terminate();
  await assert.rejects(spawn, /disposed/);
  await assert.rejects(a, /disposed/);
  assert.equal(live(), 0);
  assert.equal(pool.stats().workers, 0);
});

test('Dopri5 with trajectories is not split, whatever the case of its name; fixed-step solves are', async () => {
  for (const solver of ['dopri5', 'Dopri5', 'DOPRI5']) {
    made = [];
    const pool = await started(model, 2);
    const r = await pool.solve({ seed: 1, solver, trajectories: 4 }, 1024, 256);
    assert.equal(made.reduce((s, w) => s + solves(w).length, 0), 1, `${solver}: split over workers`);
    assert.deepEqual(r.frames.map((f) => f.t), [0, 1 / 2, 2 / 2]);
    pool.terminate();
  }
  made = [];
  const pool = await started(model, 2);
  await pool.solve({ seed: 1, solver: 'Heun', trajectories: 4 }, 1024, 256);
  assert.deepEqual(made.map((w) => solves(w).map((m) => [m.start, m.end])), [[[0, 512]], [[512, 1024]]]);
  pool.terminate();
});

test('split adaptive solves report the step counts of one worker, the one with the most evaluations', async () => {
  const pool = await started(model, 2);
  const r = await pool.solve({ seed: 1, solver: 'dopri5' }, 1024, 256);
  assert.equal(made.reduce((s, w) => s + solves(w).length, 0), 2);
  // Per-field maxima would give (nfe 44, accepted 6, rejected 2): no single solve's counts.
  assert.deepEqual([r.nfe, r.acceptedSteps, r.rejectedSteps], [44, 5, 2]);
  pool.terminate();
});

test('progress is the slowest worker\'s, and a throwing callback does not break the request', async () => {
  const pool = await started(model, 2);
  const seen = [];
  const r = await pool.solve({ seed: 1, steps: 4 }, 512, 1, (p) => { seen.push(p.step); throw new Error('callback'); });
  assert.deepEqual(Array.from(r.samples), expected(1, 512));
  assert.equal(seen.at(-1), 4);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `${seen}`);
  pool.terminate();
});

test('start() returns before the workers are up; a request waits for them; state() says how far they are', async () => {
  const pool = CpuPool.start(model, 2);
  assert.equal(pool.state(), 'starting');
  const a = pool.solve({ seed: 1 }, 512, 1);
  await pool.started;
  assert.equal(pool.state(), 'ready');
  assert.deepEqual(Array.from((await a).samples), expected(1, 512));
  pool.terminate();
});

test('a deferred boot waits for the page-thread solves that hold it, or for a request that needs the workers', async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // Held: nothing boots past deferMs; the last release boots the workers.
  let pool = CpuPool.start(model, 2, undefined, 'simd128', undefined, 20);
  pool.hold();
  pool.hold();
  await sleep(60);
  assert.equal(made.length, 0, 'no worker while a page-thread solve holds the boot');
  assert.equal(pool.state(), 'starting');
  pool.release();
  assert.equal(made.length, 0, 'one solve still holds it');
  pool.release();
  assert.equal(made.length, 2);
  await pool.started;
  assert.equal(pool.state(), 'ready');
  pool.terminate();
  // Not held: the timer boots them.
  made = [];
  pool = CpuPool.start(model, 2, undefined, 'simd128', undefined, 20);
  assert.equal(made.length, 0);
  await sleep(60);
  assert.equal(made.length, 2);
  await pool.started;
  pool.terminate();
  // A request that needs the workers boots them at once, held or not; nothing boots twice.
  made = [];
  pool = CpuPool.start(model, 2, undefined, 'simd128', undefined, 10_000);
  pool.hold();
  const a = pool.solve({ seed: 3 }, 512, 1);
  await sleep(0);
  assert.equal(made.length, 2);
  assert.deepEqual(Array.from((await a).samples), expected(3, 512));
  pool.release();
  assert.equal(made.length, 2);
  pool.terminate();
  // Disposed before the timer: no worker, ever.
  made = [];
  pool = CpuPool.start(model, 2, undefined, 'simd128', undefined, 10);
  pool.terminate();
  await sleep(40);
  assert.equal(made.length, 0);
});

test('workers that cannot start: state() gives the cause, waiting and later requests reject with it', async () => {
  const original = FakeWorker.prototype.postMessage;
  FakeWorker.prototype.postMessage = function (m) {
    if (m.type === 'init') { this.later(1, () => this.reply({ id: m.id, type: 'error', message: 'no memory for the model', fatal: true })); return; }
    return original.call(this, m);
  };
  try {
    const pool = CpuPool.start(model, 2);
    const waiting = pool.solve({ seed: 1 }, 512, 1);
    await pool.started;
    assert.match(pool.state(), /no memory for the model/);
    await assert.rejects(waiting, /no memory for the model/);
    await assert.rejects(pool.solve({ seed: 2 }, 512, 1), /no memory for the model/);
    assert.equal(live(), 0);
  } finally {
    FakeWorker.prototype.postMessage = original;
  }
});

test('a compiled module that cannot be posted (DataCloneError): the workers start without it', async () => {
  const original = FakeWorker.prototype.postMessage;
  FakeWorker.prototype.postMessage = function (m) {
    if (m.type === 'init' && m.module) { const e = new Error('could not clone'); e.name = 'DataCloneError'; throw e; }
    return original.call(this, m);
  };
  try {
    const pool = await started(model, 2, undefined, 'simd128', { compiled: true });
    assert.equal(pool.module, undefined);
    assert.ok(made.every((w) => w.received.some((m) => m.type === 'init' && m.module === undefined)));
    assert.deepEqual(Array.from((await pool.solve({ seed: 1 }, 256, 1)).samples), expected(1, 256));
    pool.terminate();
  } finally {
    FakeWorker.prototype.postMessage = original;
  }
});
