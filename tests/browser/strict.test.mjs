// Embedding in pages we do not control: the embed page under a strict Content-Security-Policy
// (`script-src 'self' 'wasm-unsafe-eval'`: no eval, no inline scripts, no cross-origin isolation)
// runs its samplers, including the CPU worker pool; and the sampler fetches nothing beyond the
// page's own files and the model URLs it is given.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './harness.mjs';

let b;
before(async () => { b = await launch({ webgpu: true }); });
after(async () => { await b?.close(); });

const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'";

test('the embed works under a strict CSP and requests only its own files and the models', async () => {
  const { page } = b;
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  // Serve every response of this origin with the strict policy as a real header.
  await page.route(`${b.url}/**`, async (route) => {
    const response = await route.fetch();
    await route.fulfill({ response, headers: { ...response.headers(), 'content-security-policy': CSP } });
  });
  await page.goto(`${b.url}/embed.html`);
  const violations = await page.evaluate(() => new Promise((resolve) => {
    const seen = [];
    document.addEventListener('securitypolicyviolation', (e) => seen.push(`${e.violatedDirective} ${e.blockedURI}`));
    const sampled = {};
    const els = [...document.querySelectorAll('pushforward-sampler')];
    for (const el of els) el.addEventListener('sampled', (e) => { sampled[el.id] = e.detail; });
    // Scroll through the post so every sampler starts.
    let i = 0;
    const next = () => {
      if (Object.keys(sampled).length === els.length) { resolve({ seen, sampled }); return; }
      els[Math.min(i++, els.length - 1)].scrollIntoView();
      setTimeout(next, 500);
    };
    next();
  }));
  await page.unroute(`${b.url}/**`);
  console.log(`under CSP: ${Object.keys(violations.sampled).length} samplers sampled, ${violations.seen.length} violations`);
  for (const [id, r] of Object.entries(violations.sampled)) console.log(`  ${id}: ${r.n} samples on ${r.backend}`);
  assert.deepEqual(violations.seen, []);
  assert.equal(Object.keys(violations.sampled).length, 4, 'every sampler of the post (three 2-D, one emoji)');
  assert.equal(await page.evaluate(() => window.crossOriginIsolated), false);

  const origin = new URL(b.url).origin;
  const foreign = requests.filter((u) => !u.startsWith(origin) && !u.startsWith('data:') && !u.startsWith('blob:'));
  assert.deepEqual(foreign, [], 'no request leaves the page origin');
  const paths = [...new Set(requests.map((u) => new URL(u).pathname))].sort();
  console.log(`requests: ${paths.join(', ')}`);
  const allowed = [/^\/embed\.html$/, /^\/pushforward-sampler\.js$/, /^\/pkg\/pushforward(_bg\.wasm|_relaxed_bg\.wasm|\.js)$/,
    /^\/pkg\/snippets\/pushforward-[0-9a-f]+\/src\/(cpu_workers|model_cache)\.js$/, /^\/models\/(f16\/)?[a-z0-9_]+\.safetensors$/, /^\/style\.css$/, /^\/favicon\.ico$/];
  const unexpected = paths.filter((p) => !allowed.some((re) => re.test(p)));
  assert.deepEqual(unexpected, [], 'only the page, the bundle, its snippets and the models are fetched');
  const models = paths.filter((p) => p.startsWith('/models/'));
  const attrs = await page.evaluate(() => [...document.querySelectorAll('pushforward-sampler')].map((el) => new URL(el.getAttribute('model'), document.baseURI).pathname));
  assert.deepEqual(models, [...new Set(attrs)].sort(), 'exactly the models the page named');
});

test('the embed works inside a sandboxed iframe (opaque origin: workers fall back to the page thread)', async () => {
  const { page } = b;
  // A blog platform's sandboxed frame; static hosts such as GitHub Pages answer with
  // `Access-Control-Allow-Origin: *`, which an opaque-origin frame needs for module scripts.
  await page.route(`${b.url}/**`, async (route) => {
    if (new URL(route.request().url()).pathname === '/sandboxed.html') {
      await route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>host</title><iframe sandbox="allow-scripts" src="/embed.html" width="900" height="700"></iframe>' });
      return;
    }
    const response = await route.fetch();
    await route.fulfill({ response, headers: { ...response.headers(), 'access-control-allow-origin': '*' } });
  });
  await page.goto(`${b.url}/sandboxed.html`);
  const frame = await (await page.waitForSelector('iframe')).contentFrame();
  await frame.waitForFunction(() => document.querySelector('pushforward-sampler') !== null, null, { timeout: 30_000 });
  const r = await frame.evaluate(() => new Promise((resolve, reject) => {
    const el = document.getElementById('moons');
    const timer = setTimeout(() => reject(new Error(`no sample; status: ${el.shadowRoot?.querySelector('.status')?.textContent}`)), 60_000);
    el.addEventListener('sampled', (e) => { clearTimeout(timer); resolve({ detail: e.detail, reason: el.sampler?.info().backendReason, origin: self.origin }); });
    el.scrollIntoView();
    // The embed may have sampled before this listener existed: ask for one more (a no-op
    // while a sample is in flight or before the sampler exists; that one fires the event).
    el.run();
  }));
  await page.unroute(`${b.url}/**`);
  console.log(`sandboxed frame (origin ${r.origin}): ${r.detail.n} samples on ${r.detail.backend}; ${r.reason}`);
  assert.equal(r.origin, 'null');
  assert.ok(r.detail.n > 0 && r.detail.nfe > 0);
});
