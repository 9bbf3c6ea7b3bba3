// The CPU worker pool (src/cpu_workers.js) in real module workers, with a stub in place of the
// wasm bindings: what the Node tests' fake Worker cannot show. The worker loads the same file
// from pkg/snippets/…/src/ and imports pkg/pushforward.js three directories up, as in the
// built bundle; the stub's solveRows answers from its seed and rows, can take its time, and can
// fail the ways the wasm can: an uncaught RuntimeError (a trap inside a spawned future — its
// promise never settles), or a RuntimeError thrown to the caller.
// Runs without the wasm build (www/pkg).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { root } from './harness.mjs';

const STUB = `
export default async function init() {}
export class Sampler {
  static async create() { return new Sampler(); }
  async solveRows(opts, start, end) {
    if (opts.mode === 'trap') {
      // What a wasm trap in a future polled from a microtask looks like: an uncaught error, and a
      // promise that never settles.
      queueMicrotask(() => { throw new WebAssembly.RuntimeError('unreachable'); });
      return new Promise(() => {});
    }
    if (opts.mode === 'throw-trap') throw new WebAssembly.RuntimeError('unreachable executed');
    const steps = opts.steps ?? 2;
    for (let s = 0; s <= steps; s++) {
      opts.onProgress?.({ step: s, totalSteps: steps, t: s / steps, nfe: s });
      await new Promise((r) => setTimeout(r, (opts.delayMs ?? 10) / steps));
    }
    const rows = end - start;
    const samples = new Float32Array(2 * rows);
    for (let i = 0; i < rows; i++) { samples[2 * i] = opts.seed * 1e4 + start + i; samples[2 * i + 1] = -(start + i); }
    return { samples, labels: new Uint32Array(rows), frames: [], nfe: steps, acceptedSteps: steps, rejectedSteps: 0 };
  }
}`;

const PAGE = `<!doctype html><meta charset="utf-8"><script type="module">
  const w = { live: 0, maxLive: 0, made: 0 };
  window.__workers = w;
  window.Worker = class extends Worker {
    constructor(url, options) { super(url, options); w.made++; w.live++; w.maxLive = Math.max(w.maxLive, w.live); }
    terminate() { if (!this.__dead) { this.__dead = true; w.live--; } return super.terminate(); }
  };
  const { CpuPool } = await import('./pkg/snippets/stub/src/cpu_workers.js');
  window.CpuPool = CpuPool;
  document.body.dataset.ready = '1';
</script>`;

let dir, server, browser, page, url;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushforward-pool-'));
  fs.mkdirSync(path.join(dir, 'pkg/snippets/stub/src'), { recursive: true });
  fs.copyFileSync(path.join(root, 'src/cpu_workers.js'), path.join(dir, 'pkg/snippets/stub/src/cpu_workers.js'));
  fs.writeFileSync(path.join(dir, 'pkg/pushforward.js'), STUB);
  fs.writeFileSync(path.join(dir, 'index.html'), PAGE);
  server = http.createServer((req, res) => {
    const file = path.join(dir, new URL(req.url, 'http://x').pathname);
    if (!file.startsWith(dir + path.sep) || !fs.existsSync(file)) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': file.endsWith('.html') ? 'text/html' : 'text/javascript' }).end(fs.readFileSync(file));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${server.address().port}/index.html`;
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
  page = await browser.newPage();
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]', { state: 'attached', timeout: 30_000 });
});
after(async () => {
  await browser?.close();
  server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs `fn` in the page with a fresh pool of 2 stub workers, disposed after. */
const withPool = (fn) => page.evaluate(async (src) => {
  const within = (p, ms, what) => Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} never settled`)), ms))]);
  const settle = (p) => p.then((v) => ({ v }), (e) => ({ message: String(e.message || e) }));
  const workers = window.__workers;
  const liveBefore = workers.live;
  const pool = window.CpuPool.start(new Uint8Array(16), 2);
  await pool.started;
  workers.maxLive = workers.live;
  try {
    return await (0, eval)(`(${src})`)(pool, { within, settle, workers, liveBefore });
  } finally { pool.terminate(); }
}, fn.toString());

const rowsOf = (seed, n) => Array.from({ length: n }, (_, i) => [seed * 1e4 + i, -i]).flat();

test('real module workers: two solves at once each get their own rows, through the ids', async () => {
  const r = await withPool(async (pool, { within }) => {
    const [a, b] = await within(Promise.all([
      pool.solve({ seed: 1, delayMs: 60 }, 600, 1), pool.solve({ seed: 2, delayMs: 5 }, 400, 1)]), 10_000, 'a concurrent solve');
    return { a: Array.from(a.samples), b: Array.from(b.samples) };
  });
  assert.deepEqual(r.a, rowsOf(1, 600));
  assert.deepEqual(r.b, rowsOf(2, 400));
});

test('an uncaught RuntimeError in a worker rejects its request with the cause; the next request runs on a new worker', async () => {
  const r = await withPool(async (pool, { within, settle, workers }) => {
    const made = workers.made;
    const crashed = await within(settle(pool.solve({ seed: 1, mode: 'trap' }, 512, 1)), 10_000, 'the trapped request');
    const next = await within(pool.solve({ seed: 3 }, 512, 1), 10_000, 'the request after a trap');
    const thrown = await within(settle(pool.solve({ seed: 4, mode: 'throw-trap' }, 512, 1)), 10_000, 'the request that threw');
    const after = await within(pool.solve({ seed: 5 }, 512, 1), 10_000, 'the request after a thrown trap');
    return { crashed: crashed.message, next: Array.from(next.samples), thrown: thrown.message, after: Array.from(after.samples),
      started: workers.made - made, stats: pool.stats() };
  });
  console.log(`trap in a worker → "${r.crashed}"; thrown trap → "${r.thrown}"`);
  assert.match(r.crashed ?? '', /a CPU worker failed: .*RuntimeError: unreachable/);
  assert.deepEqual(r.next, rowsOf(3, 512));
  assert.match(r.thrown ?? '', /unreachable executed/);
  assert.deepEqual(r.after, rowsOf(5, 512));
  // Both workers replaced after each failure (the other one was still busy with the request).
  assert.equal(r.started, 4);
  assert.equal(r.stats.workers, 2);
});

test('an abort ends only its own request; dispose rejects what is left and stops every worker', async () => {
  const r = await withPool(async (pool, { within, settle, workers, liveBefore }) => {
    const ctrl = new AbortController();
    const a = settle(pool.solve({ seed: 1, delayMs: 2000 }, 512, 1, (p) => { if (p.step >= 1) ctrl.abort(); }, ctrl.signal));
    const b = settle(pool.solve({ seed: 2 }, 512, 1));
    const [ra, rb] = await within(Promise.all([a, b]), 10_000, 'abort next to a queued request');
    const maxLive = workers.maxLive - liveBefore;
    const c = settle(pool.solve({ seed: 3, delayMs: 2000 }, 512, 1));
    const d = settle(pool.solve({ seed: 4 }, 512, 1));
    pool.terminate();
    const [rc, rd] = await within(Promise.all([c, d]), 10_000, 'requests at dispose');
    const later = await settle(pool.solve({ seed: 5 }, 512, 1));
    return { a: ra.message, b: rb.message ?? Array.from(rb.v.samples), maxLive, c: rc.message, d: rd.message,
      later: later.message, liveAfter: workers.live - liveBefore };
  });
  assert.match(r.a ?? '', /cancelled/);
  assert.deepEqual(r.b, rowsOf(2, 512));
  assert.ok(r.maxLive <= 2, `${r.maxLive} workers alive at once for a pool of 2`);
  assert.equal(r.c, 'the sampler was disposed');
  assert.equal(r.d, 'the sampler was disposed');
  assert.equal(r.later, 'the sampler was disposed');
  assert.equal(r.liveAfter, 0, 'workers left running after dispose');
});
