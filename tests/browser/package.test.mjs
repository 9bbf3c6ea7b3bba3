// The npm package as a user meets it (issue #15): `npm pack` of packages/pushforward
// (scripts/build-package.sh) installed from the tarball into fresh apps, with no network:
// (a) a TypeScript app built by Vite for production, type-checked by `tsc --strict` against the
//     package's types (and a misuse of the API refused by them), served, sampling in Chromium on
//     the page thread and in the bundled CPU workers, and using the element;
// (b) a plain page that loads the element from the unpacked package, with no bundler.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { root } from './harness.mjs';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

/** A static server of `dir` on a free port (what any host does with the built files). */
function serve(dir) {
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = path.join(dir, rel.endsWith('/') ? `${rel}index.html` : rel);
    if (!file.startsWith(dir) || !fs.existsSync(file) || !fs.statSync(file).isFile()) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const bin = (name) => path.join(root, 'node_modules/.bin', name);

let work, tgz, browser;
before(async () => {
  console.log(run('bash', [path.join(root, 'scripts/build-package.sh')], root).trim());
  tgz = path.join(root, 'target/package', fs.readdirSync(path.join(root, 'target/package')).find((f) => f.endsWith('.tgz')));
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pushforward-package-'));
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-background-networking'] });
});
after(async () => {
  await browser?.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('npm pack is at most 400 KB and holds only what the package lists', () => {
  const size = fs.statSync(tgz).size;
  const files = run('tar', ['tzf', tgz], root).trim().split('\n').sort();
  console.log(`${path.basename(tgz)}: ${size} bytes; ${files.join(', ')}`);
  assert.ok(size <= 400 * 1024, `${size} bytes`);
  assert.ok(files.includes('package/pkg/pushforward_bg.wasm') && files.includes('package/index.d.ts'));
  assert.ok(files.every((f) => !/\.(safetensors|onnx)$/.test(f)), 'no models in the package');
});

/** A fresh app with the tarball installed by npm (offline: the tarball has no dependencies). */
function app(name, files) {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }));
  run('npm', ['install', '--offline', '--no-audit', '--no-fund', tgz], dir);
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), text);
  }
  fs.mkdirSync(path.join(dir, 'public/models'), { recursive: true });
  fs.copyFileSync(path.join(root, 'models/moons.safetensors'), path.join(dir, 'public/models/moons.safetensors'));
  return dir;
}

const MAIN_TS = `
import init, { Sampler, type SampleResult, type ModelInfo } from 'pushforward';
import 'pushforward/element';

declare global { interface Window { result?: unknown; failure?: string } }

async function main(): Promise<void> {
  await init();
  const runs: Record<string, { samples: number[]; info: ModelInfo; nfe: number }> = {};
  for (const workers of [0, 2]) {
    const canvas = document.createElement('canvas');
    const s = await Sampler.create({ canvas, model: '/models/moons.safetensors', backend: 'cpu', workers });
    const r: SampleResult = await s.sample({ n: 512, solver: 'heun', steps: 4, seed: 3, returnSamples: true });
    runs[String(workers)] = { samples: Array.from(r.samples ?? []), info: s.info(), nfe: r.nfe };
    s.dispose();
  }
  const el = document.createElement('pushforward-sampler');
  const sampled = new Promise<number>((resolve, reject) => {
    el.addEventListener('sampled', (e) => resolve(e.detail.n));
    el.addEventListener('error', (e) => reject(new Error(e.detail)));
  });
  el.setAttribute('model', '/models/moons.safetensors');
  el.setAttribute('points', '300');
  el.setAttribute('backend', 'cpu');
  document.body.append(el);
  window.result = { runs, element: await sampled };
}
main().catch((e: unknown) => { window.failure = String(e instanceof Error ? e.message : e); });
`;

const TSCONFIG = JSON.stringify({
  compilerOptions: { strict: true, noEmit: true, target: 'ES2022', module: 'ESNext', moduleResolution: 'bundler', lib: ['ES2022', 'DOM', 'DOM.Iterable'], types: [], skipLibCheck: false },
  include: ['src/main.ts'],
});

async function open(url) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  await page.waitForFunction(() => window.result || window.failure, null, { timeout: 120_000 });
  const out = await page.evaluate(() => ({ result: window.result, failure: window.failure }));
  await page.close();
  return { ...out, errors };
}

test('a Vite production build of a strict TypeScript app samples with the package, on the page thread, in workers and through the element', async () => {
  const dir = app('vite-app', {
    'index.html': '<!doctype html><html><head><link rel="icon" href="data:,"></head><body><script type="module" src="/src/main.ts"></script></body></html>',
    'src/main.ts': MAIN_TS,
    'tsconfig.json': TSCONFIG,
    // Module workers: the CPU pool's worker imports the bindings (code-split), which iife workers cannot.
    'vite.config.js': "export default { worker: { format: 'es' }, logLevel: 'warn' };",
    // Misuses the types must refuse (not `any`).
    'src/bad.ts': "import { Sampler } from 'pushforward';\nconst s = await Sampler.create({ model: 1 });\nawait s.sample({ solver: 'eulr', n: '5' });\n",
  });
  run('node', [bin('tsc'), '-p', dir], dir);
  let refused = '';
  try {
    run('node', [bin('tsc'), '--strict', '--noEmit', '--module', 'esnext', '--target', 'es2022', '--moduleResolution', 'bundler', '--lib', 'es2022,dom', path.join(dir, 'src/bad.ts')], dir);
  } catch (e) {
    refused = String(e.stdout);
  }
  console.log(`tsc on the misuse: ${refused.trim().split('\n').length} errors`);
  assert.match(refused, /bad\.ts\(2,\d+\): error TS2322: Type 'number' is not assignable/, 'a number as the model is refused');
  assert.match(refused, /'"eulr"' is not assignable to type 'Solver/, 'an unknown solver is refused');
  assert.match(refused, /bad\.ts\(3,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/, 'n as a string is refused');
  run('node', [bin('vite'), 'build', '--outDir', 'dist', dir], dir);
  const assets = fs.readdirSync(path.join(dir, 'dist/assets'));
  console.log(`vite build: ${assets.join(', ')}`);
  assert.ok(assets.some((f) => f.endsWith('.wasm')), 'the wasm is emitted as an asset');
  const server = await serve(path.join(dir, 'dist'));
  try {
    const { result, failure, errors } = await open(`http://127.0.0.1:${server.address().port}/`);
    assert.equal(failure, undefined, failure);
    const page = result.runs['0'], workers = result.runs['2'];
    console.log(`built app: ${page.info.wasmBuild} build, ${page.samples.length / 2} samples, ${page.nfe} NFE; workers equal: ${page.samples.every((v, i) => v === workers.samples[i])}; element sampled ${result.element}`);
    assert.equal(page.samples.length, 1024);
    assert.ok(page.samples.every(Number.isFinite));
    assert.deepEqual(workers.samples, page.samples, 'the bundled workers compute the page thread\'s rows');
    assert.equal(result.element, 300);
    assert.deepEqual(errors, []);
  } finally {
    server.close();
  }
});

test('a plain page uses the element from the unpacked package, with no bundler', async () => {
  const dir = app('plain-page', {
    'public/index.html': `<!doctype html><html><head><link rel="icon" href="data:,"></head><body>
<script type="module" src="/node_modules/pushforward/pushforward-sampler.js"></script>
<pushforward-sampler model="/models/moons.safetensors" points="400" steps="4" controls></pushforward-sampler>
<script type="module">
  const el = document.querySelector('pushforward-sampler');
  el.addEventListener('sampled', (e) => { window.result = { n: e.detail.n, backend: e.detail.backend }; });
  el.addEventListener('error', (e) => { window.failure = e.detail; });
</script></body></html>`,
  });
  fs.cpSync(path.join(dir, 'node_modules'), path.join(dir, 'public/node_modules'), { recursive: true });
  const server = await serve(path.join(dir, 'public'));
  try {
    const { result, failure, errors } = await open(`http://127.0.0.1:${server.address().port}/`);
    console.log('plain page:', result ?? failure);
    assert.equal(failure, undefined, failure);
    assert.equal(result.n, 400);
    assert.deepEqual(errors, []);
  } finally {
    server.close();
  }
});
