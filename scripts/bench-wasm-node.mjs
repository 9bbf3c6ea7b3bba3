// The browser bundle's wasm CPU backend timed in Node, on one thread (`workers: 0`): what a
// visitor without WebGPU gets from one core, measured on a machine that has no browser (the
// device machine of issue #17, beside `pushforward bench gpu`). The same module, glue and
// Sampler API as the page; only the thread is Node's instead of a worker's.
//
//   node scripts/bench-wasm-node.mjs [www/pkg]     (after bash scripts/build-web.sh)
//
// Prints, per workload, the median and spread of 3 timed solves after one warm-up solve, and
// which wasm build ran (relaxed-SIMD where this V8 validates it, else simd128).
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const pkg = path.resolve(process.argv[2] || 'www/pkg');
const glue = await import(pathToFileURL(path.join(pkg, 'pushforward.js')).href);
// The glue's own choice is made from its URL in a browser; here the same test by hand
// (scripts/choose-wasm-build.mjs): a function using f32x4.relaxed_madd validates only where the
// engine has relaxed SIMD.
const relaxedProbe = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 123, 123, 123, 1, 123, 3, 2, 1, 0,
  10, 13, 1, 11, 0, 32, 0, 32, 1, 32, 2, 253, 133, 2, 11]);
const relaxed = WebAssembly.validate(relaxedProbe);
const wasm = fs.readFileSync(path.join(pkg, relaxed ? 'pushforward_relaxed_bg.wasm' : 'pushforward_bg.wasm'));
glue.initSync({ module: wasm });

const models = path.resolve(path.dirname(process.argv[1]), '..', 'models');
const work = [
  { what: 'moons MLP, 4096 points, heun 8', model: 'moons', opts: { n: 4096, steps: 8 } },
  { what: 'moons MLP, 65536 points, heun 8', model: 'moons', opts: { n: 65536, steps: 8 } },
  { what: 'mnist U-Net, 16 images, w=2, heun 10', model: 'mnist', opts: { n: 16, steps: 10, label: 'all', guidance: 2 } },
];
console.log(`wasm CPU in Node ${process.version}, 1 thread, build: ${relaxed ? 'relaxed' : 'simd128'}`);
console.log('\n| workload | wasm CPU ms (median, min-max of 3) |\n|---|---:|');
for (const w of work) {
  const s = await glue.Sampler.create({ model: fs.readFileSync(path.join(models, `${w.model}.safetensors`)), backend: 'cpu', workers: 0 });
  const opts = { solver: 'heun', seed: 1, ...w.opts };
  await s.sample(opts);
  const ms = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await s.sample(opts);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  console.log(`| ${w.what} | ${ms[1].toFixed(0)} (${ms[0].toFixed(0)}-${ms[2].toFixed(0)}) |`);
  s.dispose();
}
// The solve's yields to the event loop leave a MessageChannel port open, which keeps Node
// running: exit once the table is out.
process.exit(0);
