// Browser measurements on this machine (headless Chromium, the SwiftShader WebGPU flags of
// tests/browser/harness.mjs): bundle size, time to the demo's first drawn frame, and the
// side-by-side benchmark of issue #6 — our sampler (WebGPU and wasm CPU) against ONNX Runtime Web
// (WebGPU EP, wasm EP with 1 and 2 threads), TensorFlow.js (WebGPU, wasm) and a plain-JS MLP, on
// the same trained networks from identical noise, each checked against ours before it is timed.
// `npm run bench` (installs the pinned peers with scripts/bench-setup.sh first).
//
// Environment knobs (defaults in parentheses):
//   BENCH_RUNS (5)               timed runs per cell, after one warm-up run (3× as many for the
//                                4096- and 1024-point cells: calls of 0.05–0.5 s, whose medians
//                                over 5 runs swing with this shared VM's load; 2× for mnist)
//   BENCH_GPU_MAX_POINTS (1024)  cap on the 2-D workloads' points on WebGPU (SwiftShader ≈ 1 GFLOP/s)
//   BENCH_GPU_MAX_IMAGES (1)     cap on the mnist images on WebGPU
//   BENCH_GPU_MNIST_STEPS (2)    cap on the mnist Heun steps on WebGPU (and on its check's solve)
//   BENCH_PLAIN_MAX_POINTS (4096) cap on the plain-JS baseline's points
//   BENCH_ONLY (all)             comma-separated page ids (ours-cpu, ours-webgpu, ort-webgpu, ...)
//   BENCH_WORK (all)             comma-separated workload ids (2d-64k, 2d-16k, 2d-4k, 2d-1k, mnist)
//   BENCH_WRITE (1)              0: do not rewrite the generated section of BENCHMARKS.md
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, launchBrowser, root } from '../tests/browser/harness.mjs';
import { bundleSizes } from './bundle-size.mjs';

const env = (k, d) => (process.env[k] === undefined || process.env[k] === '' ? d : process.env[k]);
const RUNS = Number(env('BENCH_RUNS', 5));
const GPU_MAX_POINTS = Number(env('BENCH_GPU_MAX_POINTS', 1024));
const GPU_MAX_IMAGES = Number(env('BENCH_GPU_MAX_IMAGES', 1));
const GPU_MNIST_STEPS = Number(env('BENCH_GPU_MNIST_STEPS', 2));
const PLAIN_MAX_POINTS = Number(env('BENCH_PLAIN_MAX_POINTS', 4096));
const ONLY = env('BENCH_ONLY', '').split(',').filter(Boolean);
const ONLY_WORK = env('BENCH_WORK', '').split(',').filter(Boolean);
const WRITE = env('BENCH_WRITE', '1') !== '0' && !ONLY.length && !ONLY_WORK.length;
const started = Date.now();
const load0 = os.loadavg();

const WORKLOADS = [
  { id: '2d-64k', what: '2-D MLP (moons), 65536 points', model: 'moons', n: 65536, steps: 8 },
  { id: '2d-16k', what: '2-D MLP (moons), 16384 points', model: 'moons', n: 16384, steps: 8 },
  { id: '2d-4k', what: '2-D MLP (moons), 4096 points', model: 'moons', n: 4096, steps: 8, runs: 3 },
  { id: '2d-1k', what: '2-D MLP (moons), 1024 points (latency)', model: 'moons', n: 1024, steps: 8, runs: 3 },
  // 2× the runs: one slow spell of this shared VM over 3 of 5 runs moved ours' median by 29%
  // (2687–4766 ms, against ORT-web's 4824–5046) in one run.
  { id: 'mnist', what: 'mnist U-Net, 16 images, guidance w = 2', model: 'mnist', n: 16, steps: 10, guidance: 2, runs: 2 },
].filter((w) => !ONLY_WORK.length || ONLY_WORK.includes(w.id));
// Correctness check sizes: a 1-step solve (to 1e-4) and a short solve (reported).
const CHECKS = { moons: { n: 256, steps: 8 }, mnist: { n: 2, steps: 3, guidance: 2 } };

const PAGES = [
  { id: 'ours-webgpu', peer: 'ours', backend: 'webgpu', kind: 'gpu', label: 'ours, WebGPU' },
  { id: 'ort-webgpu', peer: 'ort', backend: 'webgpu', kind: 'gpu', label: 'ORT-web, WebGPU EP' },
  { id: 'tfjs-webgpu', peer: 'tfjs', backend: 'webgpu', kind: 'gpu', label: 'TF.js, webgpu' },
  { id: 'ours-cpu', peer: 'ours', backend: 'cpu', threads: 1, kind: 'cpu', label: 'ours, wasm CPU, 1 worker' },
  { id: 'ours-cpu-simd128', peer: 'ours', backend: 'cpu', threads: 1, kind: 'cpu', label: 'ours, wasm CPU, 1 worker, simd128 build', wasm: 'simd128' },
  { id: 'ours-cpu-all', peer: 'ours', backend: 'cpu', threads: 0, kind: 'cpu', label: `ours, wasm CPU, all workers (${os.cpus().length})` },
  { id: 'ort-wasm-1', peer: 'ort', backend: 'wasm', threads: 1, kind: 'cpu', label: 'ORT-web, wasm EP, 1 thread' },
  { id: 'ort-wasm-2', peer: 'ort', backend: 'wasm', threads: 2, kind: 'cpu', label: 'ORT-web, wasm EP, 2 threads' },
  { id: 'tfjs-wasm', peer: 'tfjs', backend: 'wasm', kind: 'cpu', label: 'TF.js, wasm (1 thread)' },
  { id: 'plain-js', peer: 'plain', backend: 'cpu', kind: 'cpu', label: 'plain JS (1 thread)', models: ['moons'] },
  // Issue #14: the same declared velocity network (.onnx) for us and for ORT.
  { id: 'ours-webgpu-onnx', peer: 'ours', backend: 'webgpu', kind: 'gpu', label: 'ours, WebGPU, from .onnx', format: 'onnx' },
  { id: 'ort-webgpu-onnx', peer: 'ort', backend: 'webgpu', kind: 'gpu', label: 'ORT-web, WebGPU EP, same .onnx', format: 'onnx' },
  { id: 'ours-cpu-onnx', peer: 'ours', backend: 'cpu', threads: 1, kind: 'cpu', label: 'ours, wasm CPU, 1 worker, from .onnx', format: 'onnx' },
  { id: 'ort-wasm-1-onnx', peer: 'ort', backend: 'wasm', threads: 1, kind: 'cpu', label: 'ORT-web, wasm EP, 1 thread, same .onnx', format: 'onnx' },
].filter((p) => !ONLY.length || ONLY.includes(p.id));

/** The size (and steps) a page actually runs for a workload, and why when it is capped. */
function sizeFor(page, w) {
  let cap = Infinity, why = '', steps = w.steps;
  if (page.kind === 'gpu') {
    [cap, why] = w.model === 'mnist' ? [GPU_MAX_IMAGES, 'WebGPU cap'] : [GPU_MAX_POINTS, 'WebGPU cap'];
    if (w.model === 'mnist') steps = Math.min(steps, GPU_MNIST_STEPS);
  }
  if (page.peer === 'plain') [cap, why] = [PLAIN_MAX_POINTS, 'plain-JS cap'];
  return w.n > cap || steps < w.steps ? { n: Math.min(w.n, cap), steps, capped: why || 'WebGPU cap' } : { n: w.n, steps, capped: '' };
}

const out = [];
const say = (s = '') => { console.log(s); out.push(s); };
// The first frame's lines, measured first and written after the tables.
const frameLines = [];

// --- bundle size, then the first frame
for (const { build, wasmBytes, gzipped } of bundleSizes()) {
  console.log(`bundle (${build}): wasm ${wasmBytes} B; with the JS bindings and snippets, each gzipped: ${gzipped} B (${(gzipped / 1000).toFixed(1)} KB)`);
}

// Background tabs must not be throttled: every library has a tab open for the whole run.
const b = await launch({
  webgpu: true, isolated: true,
  args: ['--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'],
});
const results = {}; // page id → { adapter, info, checks: {model: …}, cells: {model:n → …}, error }
let browser = '';
try {
  // First frame: cold loads of the default demo (nothing in the HTTP cache or the Cache API),
  // with the breakdown from the demo's performance marks; 5 of each kind:
  // - "running browser": each load in a new, empty context of a browser that is already up (a
  //   visitor with the browser open and the cache disabled: what #16 measures; one load before
  //   them, not counted, lets the browser finish starting);
  // - "fresh browser": each load in a browser started for it, whose own start-up shares the 2
  //   cores with the page (its first canvas write waits 20–300 ms for the GPU process).
  const demoMarks = async (page, url) => {
    await page.goto(`${url}/`);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
    return page.evaluate(() => {
      const m = (name) => performance.getEntriesByName(name)[0]?.startTime ?? NaN;
      const ms = document.getElementById('r-ms')?.textContent ?? '';
      const [solve, draw] = [/^([\d.]+) ms/, /\+([\d.]+) ms draw/].map((re) => Number(ms.match(re)?.[1] ?? NaN));
      return {
        script: m('pf:script'), wasm: m('pf:wasm'), createStart: m('pf:create-start'), created: m('pf:created'), drawn: m('pf:drawn'), firstDrawn: m('pf:first-drawn'),
        fetched: m('pushforward:model-fetched'), adapter: m('pushforward:adapter-answered'), workers: m('pushforward:workers-ready'), solve, draw,
      };
    });
  };
  // The first frame is the demo's preview (the request's first 1,024 points, drawn before the
  // whole 4,096); the whole frame follows.
  const frame = (l) => (Number.isFinite(l.firstDrawn) ? l.firstDrawn : l.drawn);
  const reportLoads = (what, loads) => {
    const whole = loads.map((l) => l.drawn).sort((x, y) => x - y);
    loads.sort((x, y) => frame(x) - frame(y));
    const med = loads[2];
    const firstFrame = frame(med);
    frameLines.push(`demo (moons, 4096 points, heun 8 steps), 5 cold loads, ${what}: first frame (the first 1024 points) ${loads.map((l) => frame(l).toFixed(0)).join(', ')} ms after navigation start; median ${firstFrame.toFixed(0)} ms; all 4096 points drawn: median ${whole[2].toFixed(0)} ms (${whole.map((x) => x.toFixed(0)).join(', ')}); first frame = `
      + `page and scripts ${med.script.toFixed(0)} + wasm download and compile ${(med.wasm - med.script).toFixed(0)} + `
      + `Sampler.create ${(med.created - med.createStart).toFixed(0)} (from its start: model fetched +${(med.fetched - med.createStart).toFixed(0)}, `
      + `workers ready +${(med.workers - med.createStart).toFixed(0)}, WebGPU adapter answered +${(med.adapter - med.createStart).toFixed(0)}; the three overlap) + `
      + `first frame's sample ${(firstFrame - med.created).toFixed(0)} ms (the whole request's: solve ${med.solve.toFixed(0)} + draw ${med.draw.toFixed(0)})`
      + ` (+ ${(med.createStart - med.wasm).toFixed(0)} between)`);
    console.log(frameLines.at(-1));
  };
  // `count` loads of the demo, each in a page that `open()` gives ({ page, url, close }).
  const coldLoads = async (count, open) => {
    const loads = [];
    for (let i = 0; i < count; i++) {
      const cold = await open();
      try {
        loads.push(await demoMarks(cold.page, cold.url));
      } finally {
        await cold.close();
      }
    }
    return loads;
  };
  const running = await launchBrowser({ webgpu: true });
  try {
    const loads = await coldLoads(6, async () => ({ ...(await running.fresh()), url: running.url }));
    reportLoads('each in a new context of a running browser', loads.slice(1));
  } finally {
    await running.close();
  }
  reportLoads('each in a freshly started browser', await coldLoads(5, () => launch({ webgpu: true })));
  await b.page.goto(`${b.url}/`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
  browser = await b.page.evaluate(() => navigator.userAgent.match(/Chrom(e|ium)\/[\d.]+/)?.[0] || navigator.userAgent);
  const info = await b.page.evaluate(() => window.pushforward.sampler.info());
  console.log(`demo backend: ${info.backend} — ${info.backendReason}; wasm build: ${info.wasmBuild}\n`);

  // --- the peers: one tab per library/backend, all open at once; checks first, then each
  // workload's warm-up in every tab, then its timed runs interleaved (run 1 in every tab, run 2
  // in every tab, …) so that load from other processes on this shared machine falls on all alike.
  const tabs = [];
  for (const page of PAGES) {
    const r = (results[page.id] = { checks: {}, cells: {}, seconds: 0 });
    const tab = { page, r, p: await b.context.newPage() };
    tab.p.on('pageerror', (e) => console.log(`[${page.id}] page error: ${e}`));
    const tp = Date.now();
    try {
      const qs = new URLSearchParams({ peer: page.peer, backend: page.backend, threads: String(page.threads ?? 1), format: page.format || 'native', ...(page.wasm ? { wasm: page.wasm } : {}) });
      await tab.p.goto(`${b.url}/bench.html?${qs}`);
      await tab.p.waitForSelector('body[data-ready="1"]', { timeout: 60_000 });
      r.isolated = await tab.p.evaluate(() => window.bench.crossOriginIsolated);
      if (page.kind === 'gpu') r.gpu = await tab.p.evaluate(() => window.bench.adapterInfo());
      for (const model of [...new Set(WORKLOADS.map((w) => w.model))].filter((m) => !page.models || page.models.includes(m))) {
        const c = CHECKS[model];
        const gpuMnist = page.kind === 'gpu' && model === 'mnist';
        const checkN = gpuMnist ? Math.min(c.n, GPU_MAX_IMAGES) : c.n;
        const checkSteps = gpuMnist ? Math.min(c.steps, GPU_MNIST_STEPS) : c.steps;
        const ck = (r.checks[model] = await tab.p.evaluate((a) => window.bench.check(a), { model, ...c, n: checkN, steps: checkSteps }));
        console.log(`[${page.id}] check ${model} (n=${checkN}): 1-step heun rel ${ck.oneStep.rel.toExponential(2)}, ${ck.solve.steps}-step rel ${ck.solve.rel.toExponential(2)} → ${ck.pass ? 'PASS' : 'FAIL (cells void)'}`);
      }
      tabs.push(tab);
    } catch (e) {
      r.error = String(e.message || e).split('\n')[0];
      console.log(`[${page.id}] FAILED: ${r.error}`);
    }
    r.seconds += (Date.now() - tp) / 1000;
  }
  const guarded = async (tab, fn) => {
    if (tab.r.error) return null;
    const tp = Date.now();
    try { return await fn(); } catch (e) {
      tab.r.error = String(e.message || e).split('\n')[0];
      console.log(`[${tab.page.id}] FAILED: ${tab.r.error}`);
      return null;
    } finally { tab.r.seconds += (Date.now() - tp) / 1000; }
  };
  for (const w of WORKLOADS) {
    const todo = tabs
      .filter((t) => !t.page.models || t.page.models.includes(w.model))
      .map((t) => ({ t, ...sizeFor(t.page, w) }))
      .filter(({ t, n }) => !t.r.cells[`${w.model}:${n}`]);
    for (const x of todo) {
      const args = { model: w.model, n: x.n, steps: x.steps, guidance: w.guidance, runs: 0 };
      const cell = await guarded(x.t, () => x.t.p.evaluate((a) => window.bench.run(a), args));
      if (cell) { x.t.r.cells[`${w.model}:${x.n}`] = cell; x.t.r.adapter = cell.adapter; }
    }
    for (let i = 0; i < RUNS * (w.runs || 1); i++) {
      for (const x of todo) {
        const cell = x.t.r.cells[`${w.model}:${x.n}`];
        if (!cell) continue;
        const args = { model: w.model, n: x.n, steps: x.steps, guidance: w.guidance, runs: 1, warmup: false, seed: 2 + i };
        const one = await guarded(x.t, () => x.t.p.evaluate((a) => window.bench.run(a), args));
        if (one) cell.ms.push(...one.ms); else delete x.t.r.cells[`${w.model}:${x.n}`];
      }
    }
    for (const x of todo) {
      const cell = x.t.r.cells[`${w.model}:${x.n}`];
      if (!cell) continue;
      const s2 = [...cell.ms].sort((p, q) => p - q);
      console.log(`[${x.t.page.id}] ${w.model} n=${x.n}: median ${s2[s2.length >> 1].toFixed(0)} ms (${s2[0].toFixed(0)}–${s2[s2.length - 1].toFixed(0)}), first ${cell.firstMs.toFixed(0)} ms${cell.createMs != null ? `, create ${cell.createMs.toFixed(0)} ms` : ''}`);
    }
  }
  for (const tab of tabs.filter((t) => t.page.peer === 'tfjs')) {
    tab.r.matmul = await guarded(tab, () => tab.p.evaluate(() => window.bench.matmul(512)));
    if (tab.r.matmul) console.log(`[${tab.page.id}] tf.matMul ${tab.r.matmul.size}³: ${tab.r.matmul.gflops.toFixed(2)} GFLOP/s`);
  }
  for (const tab of tabs.filter((t) => t.page.id === 'ours-cpu')) {
    tab.r.peak = await guarded(tab, () => tab.p.evaluate(() => window.bench.fmaPeak()));
    if (tab.r.peak) console.log(`[${tab.page.id}] 4-lane peak: mul+add ${tab.r.peak.mulAdd?.toFixed(2)} GFLOP/s, relaxed_madd ${tab.r.peak.relaxedMadd?.toFixed(2) ?? 'not validated'} GFLOP/s`);
  }
  for (const tab of tabs) console.log(`[${tab.page.id}] ${tab.r.seconds.toFixed(0)} s in all`);
} finally {
  await b.close();
}

// --- the report
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const gpuAdapter = Object.values(results).map((r) => r.gpu).find(Boolean);
const adapterName = gpuAdapter ? `${[gpuAdapter.vendor, gpuAdapter.architecture, gpuAdapter.description].filter(Boolean).join(' / ') || 'unnamed'}${gpuAdapter.fallback ? ' (isFallbackAdapter: true)' : ''}` : 'none';
say(`Measured ${new Date().toISOString().slice(0, 10)} by \`npm run bench\` in headless ${browser} (SwiftShader WebGPU flags), ` +
  `${os.cpus().length} × ${os.cpus()[0]?.model || 'CPU'}; load average ${load0.map((v) => v.toFixed(1)).join(' / ')} at the start, ` +
  `${os.loadavg().map((v) => v.toFixed(1)).join(' / ')} at the end; ${((Date.now() - started) / 60000).toFixed(1)} min in all. ` +
  `WebGPU adapter: **${adapterName}**. Every page cross-origin isolated: ${Object.values(results).every((r) => r.isolated) ? 'yes' : 'no'}.`);
say();
say(`Median and spread of ${RUNS} timed runs (${WORKLOADS.filter((w) => w.runs > 1).map((w) => `${w.runs * RUNS} for ${w.model} ${w.n}`).join(', ')}) after one warm-up run (wall clock around the whole solve: upload, every step, the one readback), ` +
  'one tab per library and backend, the runs interleaved across tabs (run 1 everywhere, then run 2, …). ' +
  '"× ours" is this row\'s median over ours on the same kind of backend (WebGPU rows against ours on WebGPU, CPU rows against ours on the wasm CPU) at the same size: above 1, ours is faster. ' +
  'GFLOP/s counts the network only (2 · multiply-adds of linear layers and convolutions). "n run" below the workload\'s n means the cell was capped to fit SwiftShader / the time budget.');
say();
say('| workload | library, backend | n run | NFE | median ms | min–max ms | GFLOP/s | × ours | check (1 step / solve) |');
say('|---|---|---:|---:|---:|---:|---:|---:|---|');
const targets = [];
for (const w of WORKLOADS) {
  for (const page of PAGES) {
    const r = results[page.id];
    if (page.models && !page.models.includes(w.model)) continue;
    const { n, steps, capped } = sizeFor(page, w);
    const cell = r?.cells[`${w.model}:${n}`];
    const ck = r?.checks[w.model];
    const ckText = ck ? `${ck.pass ? 'ok' : '**FAIL**'} ${ck.oneStep.rel.toExponential(1)} / ${ck.solve.rel.toExponential(1)}` : '—';
    if (!cell) { say(`| ${w.what} | ${page.label} | ${n} | ${2 * steps} | — | — | — | — | ${r?.error ? `failed: ${r.error.slice(0, 80)}` : ckText} |`); continue; }
    const m = med(cell.ms), lo = Math.min(...cell.ms), hi = Math.max(...cell.ms);
    const ours = results[(page.kind === 'gpu' ? 'ours-webgpu' : 'ours-cpu') + (page.format === 'onnx' ? '-onnx' : '')]?.cells[`${w.model}:${n}`];
    const ratio = ours ? m / med(ours.ms) : null;
    const valid = ck?.pass;
    say(`| ${w.what} | ${page.label} | ${n}${capped ? ` (${capped})` : ''} | ${cell.nfe} | ${valid ? fmt(m) : `~~${fmt(m)}~~ void`} | ${fmt(lo)}–${fmt(hi)} | ${fmt(cell.flops / m / 1e6)} | ${ratio ? ratio.toFixed(2) : '—'} | ${ckText} |`);
    cell.median = m; cell.valid = valid; cell.ratio = ratio;
  }
}
say();
say('Warm-up (not in the medians): "create" is loading the library\'s model (our Sampler.create, ORT session creation, TF.js weight upload) on a fresh page; "first call" is the first solve at that size (includes shader / pipeline compilation on the first size of a page).');
say();
say('| library, backend | model | create ms | first call ms (n) |');
say('|---|---|---:|---|');
for (const page of PAGES) {
  const r = results[page.id];
  if (!r) continue;
  const byModel = {};
  for (const [key, c] of Object.entries(r.cells)) (byModel[key.split(':')[0]] ||= []).push([Number(key.split(':')[1]), c]);
  for (const [model, cells] of Object.entries(byModel)) {
    const create = cells.map(([, c]) => c.createMs).find((v) => v != null);
    say(`| ${page.label} | ${model} | ${create != null ? fmt(create) : '—'} | ${cells.map(([n, c]) => `${fmt(c.firstMs)} (${n})`).join(', ')} |`);
  }
}
const mm = Object.entries(results).filter(([, r]) => r.matmul).map(([id, r]) => `${PAGES.find((p) => p.id === id).label}: tf.matMul ${r.matmul.size}³ ${r.matmul.gflops.toFixed(2)} GFLOP/s`);
if (mm.length) { say(); say(`Dense matmul ceiling on the same backends (best of 3, incl. readback): ${mm.join('; ')}.`); }

// Targets: WebGPU ours ≥ 2× the best peer on 64k 2-D and ≥ 1.3× on mnist; CPU ours ≥ 1× TF.js wasm on both.
function bestPeer(kind, wid, peers, suffix = '') {
  const w = WORKLOADS.find((x) => x.id === wid);
  if (!w) return null;
  const oursId = (kind === 'gpu' ? 'ours-webgpu' : 'ours-cpu') + suffix;
  const ours = results[oursId];
  const oursCell = ours && ours.cells[`${w.model}:${sizeFor(PAGES.find((p) => p.id === oursId) || { kind }, w).n}`];
  const cand = PAGES.filter((p) => p.kind === kind && peers.includes(p.id)).map((p) => ({ p, c: results[p.id]?.cells[`${w.model}:${sizeFor(p, w).n}`] })).filter((x) => x.c?.valid);
  if (!oursCell || !cand.length) return null;
  const best = cand.reduce((a, b2) => (b2.c.median < a.c.median ? b2 : a));
  return { speedup: best.c.median / oursCell.median, peer: best.p.label };
}
say();
say('Targets (speed-up = best valid peer\'s median / ours, same size):');
for (const [kind, wid, peers, want, what, suffix] of [
  ['gpu', '2d-64k', ['ort-webgpu', 'tfjs-webgpu'], 2, 'WebGPU, 2-D 64k (capped size)'],
  ['gpu', 'mnist', ['ort-webgpu', 'tfjs-webgpu'], 1.3, 'WebGPU, mnist (capped size)'],
  ['cpu', '2d-64k', ['tfjs-wasm'], 1, 'CPU, 2-D 64k vs TF.js wasm'],
  ['cpu', 'mnist', ['tfjs-wasm'], 1, 'CPU, mnist vs TF.js wasm'],
  // Issue #14: on the same .onnx file, the whole solve.
  ['gpu', '2d-64k', ['ort-webgpu-onnx'], 2, 'same .onnx, WebGPU, 2-D 64k (capped size) vs ORT-web', '-onnx'],
  ['gpu', 'mnist', ['ort-webgpu-onnx'], 2, 'same .onnx, WebGPU, mnist (capped size) vs ORT-web', '-onnx'],
  ['cpu', '2d-64k', ['ort-wasm-1-onnx'], 1.2, 'same .onnx, wasm CPU 1 thread, 2-D 64k vs ORT-web', '-onnx'],
  ['cpu', 'mnist', ['ort-wasm-1-onnx'], 1.2, 'same .onnx, wasm CPU 1 thread, mnist vs ORT-web', '-onnx'],
]) {
  const r = bestPeer(kind, wid, peers, suffix);
  say(`- ${what}: ${r ? `${r.speedup.toFixed(2)}× over ${r.peer} (target ≥ ${want}×) — **${r.speedup >= want ? 'met' : 'missed'}**` : 'not measured'}`);
}

// Our GFLOP/s as a share of the best dense matmul measured on the same backend.
for (const [oursId, mmId] of [['ours-webgpu', 'tfjs-webgpu'], ['ours-cpu', 'tfjs-wasm']]) {
  const mmr = results[mmId]?.matmul, ours = results[oursId];
  if (!mmr || !ours) continue;
  const shares = Object.entries(ours.cells).map(([k, c]) => `${k.replace(':', ' n=')} ${(c.flops / med(c.ms) / 1e6).toFixed(2)} GFLOP/s = ${((100 * c.flops / med(c.ms) / 1e6) / mmr.gflops).toFixed(0)}%`);
  say(`- ${PAGES.find((p) => p.id === oursId).label} vs tf.matMul ${mmr.size}³ on the same backend (${mmr.gflops.toFixed(2)} GFLOP/s): ${shares.join('; ')}.`);
}

// Issue #16: one worker on the MLP at ≥ 70% of the core's 4-lane peak as wasm reaches it (an
// FMA-chain kernel in the same browser: the better of relaxed_madd and mul+add).
{
  const pk = results['ours-cpu']?.peak, ours = results['ours-cpu'];
  const best = pk && Math.max(pk.mulAdd ?? 0, pk.relaxedMadd ?? 0);
  if (best) {
    const shares = Object.entries(ours.cells).filter(([k]) => k.startsWith('moons')).map(([k, c]) => {
      const g = c.flops / med(c.ms) / 1e6;
      return `${k.replace(':', ' n=')} ${g.toFixed(2)} GFLOP/s = ${((100 * g) / best).toFixed(0)}%`;
    });
    say(`- ${PAGES.find((p) => p.id === 'ours-cpu').label} vs the 4-lane peak measured in the same browser (12 FMA chains: relaxed_madd ${pk.relaxedMadd?.toFixed(2) ?? '—'}, mul+add ${pk.mulAdd?.toFixed(2) ?? '—'} GFLOP/s; target ≥ 70% of the better): ${shares.join('; ')}.`);
  }
}

if (frameLines.length) {
  say();
  say('First frame of the default demo (`pf:first-drawn` after navigation start; breakdown of the median load from the demo\'s performance marks):');
  for (const line of frameLines) say(`- ${line}`);
}

if (WRITE) {
  const file = path.join(root, 'BENCHMARKS.md');
  const md = fs.readFileSync(file, 'utf8');
  const begin = '<!-- bench-peers:begin (generated by scripts/bench-browser.mjs) -->', end = '<!-- bench-peers:end -->';
  const i = md.indexOf(begin), j = md.indexOf(end);
  if (i >= 0 && j > i) {
    fs.writeFileSync(file, `${md.slice(0, i + begin.length)}\n${out.join('\n')}\n${md.slice(j)}`);
    console.log('\n(BENCHMARKS.md: generated section rewritten)');
  }
}
