// Browser measurements on this machine (headless Chromium): bundle size, time to first drawn
// frame of the demo, and per-call sampling time. `npm run bench`. Peers (ONNX Runtime Web,
// TF.js) join this table with the benchmark issue.
import fs from 'node:fs';
import zlib from 'node:zlib';
import path from 'node:path';
import { launch, root } from '../tests/browser/harness.mjs';

const pkg = path.join(root, 'www/pkg');
const wasm = fs.readFileSync(path.join(pkg, 'pushforward_bg.wasm'));
const js = fs.readFileSync(path.join(pkg, 'pushforward.js'));
const gz = zlib.gzipSync(Buffer.concat([wasm, js]), { level: 9 }).length;
console.log(`bundle: wasm ${wasm.length} B, js ${js.length} B, wasm+js gzipped ${gz} B (${(gz / 1024).toFixed(1)} KiB)`);

const b = await launch({ webgpu: true });
try {
  const t0 = Date.now();
  await b.page.goto(`${b.url}/`);
  await b.page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
  const firstFrame = await b.page.evaluate(() => performance.now());
  console.log(`demo (moons, 4096 points, heun 8 steps): first frame drawn ${firstFrame.toFixed(0)} ms after navigation start (wall ${Date.now() - t0} ms)`);
  const info = await b.page.evaluate(() => window.pushforward.sampler.info());
  console.log(`backend: ${info.backend} — ${info.backendReason}`);
  const cases = [
    { model: 'moons', n: 1024, solver: 'heun', steps: 8 },
    { model: 'moons', n: 4096, solver: 'heun', steps: 8 },
    { model: 'moons', n: 16384, solver: 'heun', steps: 8 },
    { model: 'moons', n: 65536, solver: 'heun', steps: 8 },
    { model: 'mnist', n: 16, solver: 'heun', steps: 10, label: 'all', guidance: 2 },
  ];
  console.log('\n| model | n | solver | NFE | backend | median ms | min ms | max ms | runs |');
  console.log('|---|---:|---|---:|---|---:|---:|---:|---:|');
  for (const c of cases) {
    const r = await b.page.evaluate(async (c) => {
      const s = await window.pushforward.Sampler.create({ model: `models/${c.model}.safetensors`, backend: 'cpu' });
      const { model, ...opts } = c;
      await s.sample(opts); // warm-up
      const ms = [];
      let nfe = 0;
      for (let i = 0; i < 5; i++) { const r = await s.sample({ ...opts, seed: i }); ms.push(r.sampleMs); nfe = r.nfe; }
      s.dispose();
      ms.sort((a, b) => a - b);
      return { ms, nfe };
    }, c);
    console.log(`| ${c.model} | ${c.n} | ${c.solver} | ${r.nfe} | wasm cpu (1 thread) | ${r.ms[2].toFixed(0)} | ${r.ms[0].toFixed(0)} | ${r.ms[4].toFixed(0)} | 5 |`);
  }
} finally {
  await b.close();
}
